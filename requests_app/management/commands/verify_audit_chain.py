"""``manage.py verify_audit_chain [--tree-head FILE ...]``: check the audit trail against its signed
tree heads (and the tree heads embedded in certificates or kept by an auditor); exit 1 when broken."""
import json
import sys

from django.core.management.base import BaseCommand, CommandError

from evaluation.strict_json import StrictJSONError, strict_loads
from requests_app.audit import audit_chain_verify


def _tree_head(path: str) -> dict:
    try:
        with open(path, "rb") as fh:
            document = strict_loads(fh.read())
    except (OSError, StrictJSONError) as exc:
        raise CommandError(f"cannot read the tree head {path}: {exc}") from None
    if isinstance(document, dict) and isinstance(document.get("transparency"), dict):
        document = document["transparency"].get("tree_head")  # a certificate: its embedded head
    if not isinstance(document, dict):
        raise CommandError(f"{path} is neither a signed tree head nor a certificate with one")
    return document


class Command(BaseCommand):
    help = "Verify the audit log against its signed tree heads (exit 0 intact, 1 broken)."

    def add_arguments(self, parser):
        parser.add_argument("--tree-head", action="append", default=[], metavar="FILE",
                            help="a signed tree head (or a certificate embedding one) to check the log against")
        parser.add_argument("--json", action="store_true", help="print the full report as JSON")

    def handle(self, *args, **opts):
        result = audit_chain_verify(anchors=[_tree_head(p) for p in opts["tree_head"]])
        if opts["json"]:
            self.stdout.write(json.dumps(result.to_dict(), indent=2))
        if result.valid:
            self.stdout.write(f"audit chain intact: {result.checked} events, tree size {result.tree_size}, "
                              f"{result.unsealed} not sealed yet")
            return
        self.stderr.write(f"audit chain BROKEN at event {result.first_bad_id}: {result.reason}")
        for problem in result.problems[1:]:
            self.stderr.write(f"  also: {problem}")
        sys.exit(1)
