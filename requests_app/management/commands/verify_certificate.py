"""``manage.py verify_certificate FILE``: exit 0 for a valid certificate, 1 with the reason otherwise."""
import json
import sys

from django.core.management.base import BaseCommand

from requests_app.certificates import certificate_verify_document


class Command(BaseCommand):
    help = "Verify a certificate's Ed25519 signature against the published keys (exit 0 valid, 1 invalid)."

    def add_arguments(self, parser):
        parser.add_argument("file", help="certificate JSON file ('-' for standard input)")

    def handle(self, *args, **opts):
        try:
            raw = sys.stdin.read() if opts["file"] == "-" else open(opts["file"], encoding="utf-8").read()
            document = json.loads(raw)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            self.stderr.write(f"INVALID: cannot read certificate: {exc}")
            sys.exit(1)
        if not isinstance(document, dict):
            self.stderr.write("INVALID: a certificate is a JSON object")
            sys.exit(1)
        result = certificate_verify_document(document)
        if not result.valid:
            self.stderr.write(f"INVALID: {result.reason}")
            sys.exit(1)
        payload = document.get("payload", {})
        self.stdout.write(
            f"VALID: certificate {payload.get('certificate_id')} issued {payload.get('issued_at')} "
            f"by {payload.get('issuer')} (key {document.get('key_id')})"
        )
