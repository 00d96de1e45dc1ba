"""Exact-retrain references with several training seeds (issue 12 follow-up): the reference
preparation trains one retrain per seed, the job evaluates every one of them and the PrivLeak
reference is their mean AUC with their seed-to-seed variation in the CI."""
from requests_app import selectors
from requests_app.models import EvaluationReport, JobStatus, PreparationJob, UnlearningJob

from .test_evaluation_manifest import _approve, _in_review
from .test_onboarding_models import _run_prepare, store  # noqa: F401  (fixture)


def test_reference_with_two_seeds_registers_two_retrains_and_the_job_uses_both(
        api, users, target_model, forget_subject, store, monkeypatch, django_capture_on_commit_callbacks):  # noqa: F811
    import evaluation.verdicts as verdicts_module

    real = verdicts_module.compute_verdicts
    seen = {}

    def spy(*a, **k):  # the test model is too small to pass; the references are what is checked
        seen["others"] = len(k.get("retrained_others") or ())
        return {**real(*a, **k), "passed": True}

    monkeypatch.setattr(verdicts_module, "compute_verdicts", spy)
    r = _run_prepare(api, target_model, django_capture_on_commit_callbacks, kind="reference",
                     subject_id=str(forget_subject.public_id), seeds=2)
    assert r.status_code == 202, r.content
    prep = PreparationJob.objects.get(public_id=r.json()["id"])
    assert prep.status == JobStatus.SUCCEEDED, prep.error
    assert [s["seed"] for s in prep.result["seeds"]] == [0, 1]
    versions = selectors.model_reference_versions(target_model, prep.params["forget_set_sha256"])
    assert len(versions) == 2 and versions[0].weights_sha256 != versions[1].weights_sha256

    tid = _in_review(api, forget_subject, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        job_id = _approve(api, tid).json()["id"]
    job = UnlearningJob.objects.get(public_id=job_id)
    assert job.status == JobStatus.SUCCEEDED, job.error
    roles = set(EvaluationReport.objects.filter(job=job).values_list("role", flat=True))
    assert roles == {"original", "retrained", "retrained_s1", "unlearned"} and seen["others"] == 1
    unlearned = EvaluationReport.objects.get(job=job, role="unlearned")
    pl = unlearned.verdicts["privleak"]
    aucs = [EvaluationReport.objects.get(job=job, role=role).metrics["mink_auc"]["value"]
            for role in ("retrained", "retrained_s1")]
    usable = [a for a in aucs if a and a > 0]
    if aucs[0] and aucs[0] > 0:  # the newest retrain's AUC is the primary reference
        assert pl["reference_type"] == "retrain" and pl["retrain_aucs"] == usable
        assert abs(pl["reference"] - sum(usable) / len(usable)) < 1e-12
    else:  # AUC 0 or undefined: no relative PrivLeak against the retrains (ideal reference, flagged)
        assert pl["reference_type"] == "ideal" and pl["retrain_aucs"] == []


def test_reference_seeds_out_of_range_are_400(api, users, target_model, forget_subject, store,  # noqa: F811
                                              django_capture_on_commit_callbacks):
    for seeds in (0, 9, "x"):
        r = _run_prepare(api, target_model, django_capture_on_commit_callbacks, kind="reference",
                         subject_id=str(forget_subject.public_id), seeds=seeds)
        assert r.status_code == 400 and "seeds" in r.json()
    assert not PreparationJob.objects.exists()
