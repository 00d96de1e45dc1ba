"""``manage.py audit_log_seal``: append the unsealed audit events to the log and sign a tree head."""
import json

from django.core.management.base import BaseCommand, CommandError

from requests_app.audit_log import AuditLogError, audit_log_seal


class Command(BaseCommand):
    help = "Seal new audit events into the Merkle log and sign a tree head (prints it as JSON)."

    def add_arguments(self, parser):
        parser.add_argument("--max-leaves", type=int, default=None, help="append at most this many events")

    def handle(self, *args, **opts):
        try:
            head = audit_log_seal(max_leaves=opts["max_leaves"])
        except AuditLogError as exc:
            raise CommandError(str(exc)) from None
        if head is None:
            self.stdout.write("the audit log is empty: nothing to seal")
            return
        self.stdout.write(json.dumps(head.as_document(), indent=2, sort_keys=True))
