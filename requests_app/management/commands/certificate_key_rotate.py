"""``manage.py certificate_key_rotate``: a new current signing key; the old one is retired (its
public key stays published with ``valid_until`` = now, so the certificates it signed still verify;
its private key is destroyed). See :mod:`requests_app.certificate_keys`."""
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from requests_app.audit import audit_event_record
from requests_app.certificate_keys import SigningKeyError, keyring_path, signing_key_rotate


class CertificateKey:
    """The audited object of a rotation: a signing key, identified by its key id."""

    def __init__(self, key_id: str):
        self.public_id = self.pk = key_id


class Command(BaseCommand):
    help = "Rotate the certificate signing key (the old public key stays published as retired)."

    def handle(self, *args, **opts):
        try:
            new, old = signing_key_rotate()
        except (SigningKeyError, OSError, ValueError) as exc:
            raise CommandError(f"rotation failed: {exc}") from exc
        with transaction.atomic():
            audit_event_record(actor="system:certificate_key_rotate", verb="certificate_key.rotated",
                               obj=CertificateKey(new.key_id),
                               after={"current": new.key_id, "retired": old.key_id if old else None})
        self.stdout.write(f"current key {new.key_id} valid from {new.valid_from.isoformat()}"
                          + (f"; retired {old.key_id} (valid until {old.valid_until.isoformat()})" if old else "")
                          + f"; key set {keyring_path()}")
