"""``manage.py ingest_tofu``: ingest TOFU as a corpus, one data subject per author."""
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from requests_app.ingestion import IngestionError, corpus_ingest_tofu

DEFAULT_DIR = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "tofu"


class Command(BaseCommand):
    help = "Ingest TOFU JSONL (rows 20·i … 20·i+19 = author i) with an optional holdout file."

    def add_arguments(self, parser):
        parser.add_argument("--name", default="tofu")
        parser.add_argument("--full", default=str(DEFAULT_DIR / "full.json"))
        parser.add_argument("--holdout", default=str(DEFAULT_DIR / "holdout01.json"))
        parser.add_argument("--authors", type=int, default=None, help="only the first N authors")

    def handle(self, *args, **opts):
        try:
            corpus = corpus_ingest_tofu(name=opts["name"], full_path=Path(opts["full"]),
                                        holdout_path=Path(opts["holdout"]) if opts["holdout"] else None,
                                        authors=opts["authors"])
        except (IngestionError, OSError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"ingested corpus '{corpus.name}': {corpus.record_count} records, "
                          f"{corpus.records.values('subject').distinct().count()} data subjects")
