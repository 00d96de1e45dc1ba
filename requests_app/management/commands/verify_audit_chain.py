"""``manage.py verify_audit_chain``: recompute the audit hash chain; exit 1 at the first broken event."""
import sys

from django.core.management.base import BaseCommand

from requests_app.audit import audit_chain_verify


class Command(BaseCommand):
    help = "Verify the append-only audit trail's hash chain (exit 0 intact, 1 broken)."

    def handle(self, *args, **opts):
        result = audit_chain_verify()
        if result.valid:
            self.stdout.write(f"audit chain intact: {result.checked} events")
            return
        self.stderr.write(f"audit chain BROKEN at event {result.first_bad_id}: {result.reason}")
        sys.exit(1)
