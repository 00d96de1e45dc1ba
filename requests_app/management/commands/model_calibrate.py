"""``manage.py model_calibrate MODEL METHOD [--space JSON] [--subjects UUID,UUID | --k N] [--strategy grid|random]
[--max-trials N] [--max-seconds S] [--seed N] [--no-wait]``.

The same service as ``POST /api/v1/models/{id}/calibrate/``: a ``calibration`` preparation job on the
``gpu`` queue (in-process in embedded mode); waits for it unless ``--no-wait`` and prints the trials.
"""
import json

from django.core.management.base import BaseCommand, CommandError

from requests_app import services
from requests_app.models import TargetModel

from ._onboarding import wait_for_preparation


def _table(report: dict) -> str:
    head = "trial  status     steps  wall s  KnowMem_f  KnowMem_r  PrivLeak  hyper-parameters"
    lines = [head]
    for t in report.get("trials", []):
        m = t.get("metrics") or {}

        def f(x):
            return "-" if x is None else f"{x:.1f}"
        lines.append(f"{t['index']:>5}  {t['status']:<9} {t.get('steps') or '-':>6} {f(t.get('wall_seconds')):>7}"
                     f" {f(m.get('knowmem_forget')):>10} {f(m.get('knowmem_retain')):>10} {f(m.get('privleak')):>9}"
                     f"  {json.dumps(t['hyperparameters'], sort_keys=True)}")
    return "\n".join(lines)


class Command(BaseCommand):
    help = "Calibrate a method's hyper-parameters on a registered model (bounded search; stored as its defaults)."

    def add_arguments(self, parser):
        parser.add_argument("model", help="model name")
        parser.add_argument("method")
        parser.add_argument("--space", default="", help='JSON search space, e.g. {"lr": [1e-4, 5e-4], "epochs": [2, 5]}')
        parser.add_argument("--subjects", default="", help="comma-separated calibration subject public ids")
        parser.add_argument("--k", type=int, default=1, help="subjects to pick when --subjects is not given")
        parser.add_argument("--strategy", default="grid", choices=["grid", "random"])
        parser.add_argument("--max-trials", type=int, default=12)
        parser.add_argument("--max-seconds", type=float, default=3600.0)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--no-wait", action="store_true")
        parser.add_argument("--timeout", type=float, default=7 * 24 * 3600.0)
        parser.add_argument("--actor", default="cli:ml_operator")

    def handle(self, *args, **opts):
        model = TargetModel.objects.filter(name=opts["model"]).first()
        if model is None:
            raise CommandError(f"no model named '{opts['model']}'")
        try:
            space = json.loads(opts["space"]) if opts["space"] else None
        except json.JSONDecodeError as exc:
            raise CommandError(f"--space is not JSON: {exc}") from exc
        subjects = [s.strip() for s in opts["subjects"].split(",") if s.strip()] or None
        try:
            job = services.model_calibrate(actor=opts["actor"], model=model, method=opts["method"], search_space=space,
                                           subject_ids=subjects, subjects=opts["k"], strategy=opts["strategy"],
                                           max_trials=opts["max_trials"], max_seconds=opts["max_seconds"],
                                           seed=opts["seed"])
        except services.ServiceError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"queued calibration {job.public_id} of '{opts['method']}' on the gpu queue")
        if opts["no_wait"]:
            return
        try:
            job = wait_for_preparation(job, timeout=opts["timeout"], write=self.stdout.write)
        finally:
            job.refresh_from_db()
            if (job.result or {}).get("report"):
                self.stdout.write(_table(job.result["report"]))
                self.stdout.write(f"report: {job.result.get('report_uri')}")
        self.stdout.write("chosen: " + json.dumps(job.result.get("chosen_hyperparameters"), sort_keys=True))
