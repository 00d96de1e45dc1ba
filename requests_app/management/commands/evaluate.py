"""``manage.py evaluate --model DIR --profile muse_news|tofu|tofu_paper|restor [--reference-auc X | --retrained DIR]
[--limit N] [--out report.json]``: thin wrapper around :func:`evaluation.runner.run_evaluation`
(same arguments as ``python -m evaluation``); prints the metric table, writes the JSON report. With
``--profile restor`` ``--model`` is the clean model and the whole RESTOR protocol runs (figure
``<out>.png``, attachable to certificates with ``CERTIFICATE_RESTOR_REPORT``)."""
from django.core.management.base import BaseCommand, CommandError

from evaluation.runner import add_arguments, run_from_args


class Command(BaseCommand):
    help = "Evaluate a saved model with the MUSE-News, a TOFU or the RESTOR profile (table + JSON report)."

    def add_arguments(self, parser):
        add_arguments(parser)

    def handle(self, *args, **opts):
        from argparse import Namespace

        if opts.get("limit") is not None and opts["limit"] < 0:
            raise CommandError("--limit must be >= 0")
        try:
            run_from_args(Namespace(**opts), write=self.stdout.write)
        except (ValueError, FileNotFoundError) as exc:
            raise CommandError(str(exc)) from exc
