"""Dashboard pages of the operator onboarding (issue 14): preparation jobs (corpus ingestion, DP
base, exact-retrain reference) with progress and outcome. Models and versions: ``dashboard.py``."""
from __future__ import annotations

from django.shortcuts import get_object_or_404

from ..models import PreparationJob, TargetModel
from .dashboard import staff_required
from .labels import ledger_rows
from .presentation import page


@staff_required
def preparations_list(request):
    jobs = PreparationJob.objects.select_related("model", "corpus").order_by("-id")
    model = None
    if request.GET.get("model", "").isdigit():
        model = get_object_or_404(TargetModel, pk=int(request.GET["model"]))
        jobs = jobs.filter(model=model)
    return page(request, "dashboard/preparations.html", {"jobs": jobs[:200], "model": model})


@staff_required
def preparation_detail(request, public_id):
    job = get_object_or_404(PreparationJob.objects.select_related("model", "corpus"), public_id=public_id)
    report = (job.result or {}).get("report") or {}
    return page(request, "dashboard/preparation_detail.html", {
        "job": job, "report": report, "bad_lines": report.get("bad_lines", []),
        "ledger": ledger_rows((job.result or {}).get("privacy_ledger") or {}),
    })
