"""``manage.py model_prepare MODEL dp_base|reference [--subject UUID | --records 1,2] [--purpose ...]``.

The same service as ``POST /api/v1/models/{id}/prepare/``: a preparation job on the ``gpu`` queue
(in-process in embedded mode); waits for it unless ``--no-wait``.
"""
import json

from django.core.management.base import BaseCommand, CommandError

from requests_app import services
from requests_app.models import TargetModel

from ._onboarding import wait_for_preparation


class Command(BaseCommand):
    help = "Prepare a registered model: train its DP base (dp_base) or an exact-retrain reference (reference)."

    def add_arguments(self, parser):
        parser.add_argument("model", help="model name")
        parser.add_argument("kind", choices=["dp_base", "reference"])
        parser.add_argument("--subject", default="", help="reference: data subject public id (its records)")
        parser.add_argument("--records", default="", help="reference: comma-separated record ids")
        parser.add_argument("--purpose", default="request", choices=["request", "calibration"])
        parser.add_argument("--seeds", type=int, default=None,
                            help="reference: number of exact retrains with different seeds (1-8)")
        parser.add_argument("--dp-base", default="", help="JSON overrides of the dp_base recipe")
        parser.add_argument("--no-wait", action="store_true")
        parser.add_argument("--timeout", type=float, default=24 * 3600.0)
        parser.add_argument("--actor", default="cli:ml_operator")

    def handle(self, *args, **opts):
        model = TargetModel.objects.filter(name=opts["model"]).first()
        if model is None:
            raise CommandError(f"no model named '{opts['model']}'")
        params = {"purpose": opts["purpose"]}
        if opts["subject"]:
            params["subject_id"] = opts["subject"]
        if opts["records"]:
            params["record_ids"] = [int(x) for x in opts["records"].split(",") if x.strip()]
        if opts["seeds"] is not None:
            params["seeds"] = opts["seeds"]
        if opts["dp_base"]:
            params["dp_base"] = json.loads(opts["dp_base"])
        try:
            job = services.model_prepare(actor=opts["actor"], model=model, kind=opts["kind"], params=params)
        except services.ServiceError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"queued preparation {job.public_id} ({job.kind}) on the gpu queue")
        if not opts["no_wait"]:
            job = wait_for_preparation(job, timeout=opts["timeout"], write=self.stdout.write)
            self.stdout.write(json.dumps(job.result, indent=1, default=str))
