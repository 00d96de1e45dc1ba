"""``manage.py ingest_jsonl NAME FILE``: ingest a general JSONL corpus."""
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from requests_app.ingestion import IngestionError, corpus_ingest_jsonl


class Command(BaseCommand):
    help = "Ingest JSONL with 'text' or 'question'/'answer', optional 'subject_id'/'subject_name'."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("file")
        parser.add_argument("--holdout", default=None, help="JSONL of non-member records for PrivLeak")

    def handle(self, *args, **opts):
        try:
            corpus = corpus_ingest_jsonl(name=opts["name"], path=Path(opts["file"]),
                                         holdout_path=Path(opts["holdout"]) if opts["holdout"] else None)
        except (IngestionError, OSError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"ingested corpus '{corpus.name}': {corpus.record_count} records ({corpus.kind})")
