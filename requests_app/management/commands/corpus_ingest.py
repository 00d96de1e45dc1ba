"""``manage.py corpus_ingest SOURCE --name NAME [--dry-run]``: validate and ingest a JSONL corpus.

The same services as ``POST /api/v1/corpora/``: a validation report first, then a ``corpus_ingest``
preparation job (run in-process in embedded mode, else by a worker; ``--no-wait`` returns at once).
"""
import json

from django.core.management.base import BaseCommand, CommandError

from requests_app import services

from ._onboarding import wait_for_preparation


class Command(BaseCommand):
    help = "Validate a JSONL corpus (text or question/answer, optional subject_id/subject_name/aliases/email) and ingest it."

    def add_arguments(self, parser):
        parser.add_argument("source", help="s3://bucket/key.jsonl, or a local path (embedded mode)")
        parser.add_argument("--name", required=True)
        parser.add_argument("--description", default="")
        parser.add_argument("--dry-run", action="store_true", help="print the validation report only")
        parser.add_argument("--no-wait", action="store_true")
        parser.add_argument("--timeout", type=float, default=3600.0)
        parser.add_argument("--actor", default="cli:ml_operator")

    def handle(self, *args, **opts):
        try:
            uri = services.corpus_source_check(opts["source"])
            report = services.corpus_validate(uri)
            self.stdout.write(json.dumps(report, indent=1))
            if not report["valid"]:
                raise CommandError(f"{report['errors']} invalid line(s); see bad_lines")
            if opts["dry_run"]:
                return
            job = services.corpus_ingest_request(actor=opts["actor"], name=opts["name"], source_uri=uri,
                                                 description=opts["description"])
        except services.ServiceError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"queued preparation {job.public_id} (corpus_ingest)")
        if not opts["no_wait"]:
            job = wait_for_preparation(job, timeout=opts["timeout"], write=self.stdout.write)
            self.stdout.write(f"corpus '{opts['name']}' id {job.result.get('corpus')}")
