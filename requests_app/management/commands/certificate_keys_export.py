"""``manage.py certificate_keys_export FILE``: write the published key set (public keys only,
schema ``erasure-certificate-keys/1``) to FILE ('-' = standard output), e.g. to host it as
``/.well-known/erasure-certificate-keys.json`` or hand it to an auditor."""
import json
import os
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from evaluation.certificate_keys import KeySetError
from requests_app.certificate_keys import keys_document


class Command(BaseCommand):
    help = "Write the published certificate keys JSON (current and retired public keys) to FILE."

    def add_arguments(self, parser):
        parser.add_argument("file", help="output file ('-' for standard output)")

    def handle(self, *args, **opts):
        try:
            document = keys_document()
        except KeySetError as exc:
            raise CommandError(f"the key set is unusable: {exc}") from exc
        if not document["keys"]:
            raise CommandError("no certificate keys yet: nothing to export (a key is created at the first "
                               "certificate, or with manage.py certificate_key_rotate)")
        text = json.dumps(document, indent=2, sort_keys=True) + "\n"
        if opts["file"] == "-":
            sys.stdout.write(text)
            return
        path = Path(opts["file"])
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
        self.stdout.write(f"{len(document['keys'])} key(s) written to {path}")
