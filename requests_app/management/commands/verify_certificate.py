"""``manage.py verify_certificate FILE [--keys KEYS.json]``: exit 0 VALID, 1 INVALID (reason on
stderr), 2 when no usable published key set is available.

Calls the same code as the standalone verifier (``python -m evaluation.certificate verify``,
:func:`evaluation.certificate.verify_file`) with the published keys: ``--keys`` (a file from
``GET /api/v1/certificates/keys/``, ``/.well-known/erasure-certificate-keys.json`` or
``manage.py certificate_keys_export``), else this installation's published key set. It never
creates or reads a private key, so it is safe on an auditor's machine.
"""
import sys

from django.core.management.base import BaseCommand

from evaluation.certificate import verify_file
from evaluation.certificate_keys import KeySetError, keyset_load_file
from requests_app.certificate_keys import keyring_path, published_keys


class Command(BaseCommand):
    help = ("Verify a certificate's Ed25519 signature against the published keys (exit 0 valid, 1 invalid, "
            "2 no usable key set). Never creates a signing key.")

    def add_arguments(self, parser):
        parser.add_argument("file", help="certificate JSON file ('-' for standard input)")
        parser.add_argument("--keys", default=None,
                            help="published key set JSON (default: this installation's key set)")

    def handle(self, *args, **opts):
        try:
            keys = keyset_load_file(opts["keys"]) if opts["keys"] else published_keys()
        except KeySetError as exc:
            self.stderr.write(f"ERROR: unusable key set: {exc}")
            sys.exit(2)
        if not keys:
            self.stderr.write(f"ERROR: no published keys on this machine ({keyring_path()} does not exist); "
                              "pass --keys FILE with the issuer's published key set")
            sys.exit(2)
        status, line = verify_file(opts["file"], keys)
        if status:
            self.stderr.write(line)
            sys.exit(status)
        self.stdout.write(line)
