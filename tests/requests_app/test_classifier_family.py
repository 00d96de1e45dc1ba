"""Classifier families through the service (issue 19): family mismatch 400, feature-row ingestion
errors, and the demo path end to end (tabular: one patient per row, seconds)."""
import json

import pytest
from django.core.management import call_command

from requests_app.models import TargetModel, TrainingCorpus
from requests_app.services.common import ServiceError
from requests_app.services.corpora import corpus_parse_line
from requests_app.services.target_models import model_family_check


def _model(family):
    corpus = TrainingCorpus.objects.create(name=f"c-{family}", kind="tabular", content_sha256="0" * 64)
    return TargetModel.objects.create(name=f"m-{family}", family=family, architecture="mlp", tokenizer="none",
                                      corpus=corpus)


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["eco", "whp", "npo_gd"])
def test_lm_only_methods_refused_for_a_classifier_naming_families(method):
    with pytest.raises(ServiceError, match="supports: causal_lm"):
        model_family_check(_model("image_classifier"), method)


@pytest.mark.django_db
def test_classifier_methods_refused_for_an_lm_and_accepted_for_a_classifier():
    with pytest.raises(ServiceError, match="image_classifier, tabular_classifier"):
        model_family_check(_model("causal_lm"), "laf")
    model_family_check(_model("tabular_classifier"), "laf_r")  # no error


@pytest.mark.parametrize("line, error", [
    ({"features": [], "label": 0}, "non-empty list"),
    ({"features": [1, "x"], "label": 0}, "finite numbers"),
    ({"features": [1.0], "label": -1}, "integer class"),
    ({"features": [1.0], "label": 1.5}, "integer class"),
    ({"features": [1.0], "label": 0, "kind": "audio"}, "kind must be"),
])
def test_bad_feature_rows_are_refused_with_the_reason(line, error):
    with pytest.raises(ValueError, match=error):
        corpus_parse_line(json.dumps(line).encode())


def test_feature_row_parses_with_content_digest():
    rec = corpus_parse_line(json.dumps({"features": [1, 2], "label": 1, "kind": "image", "subject_id": "s"}).encode())
    assert rec["kind"] == "image" and rec["features"] == [1.0, 2.0] and len(rec["sha256"]) == 64


@pytest.mark.django_db(transaction=True)
def test_demo_tabular_classifier_certifies_and_verifies(tmp_path, settings):
    settings.EVALUATION_RETAIN_SAMPLE_CLASSIFIER = 200
    settings.CLASSIFIER_ULIRA_SHADOWS = 2
    call_command("demo", family="tabular_classifier", no_comparison=True, out=str(tmp_path), method="ft")
    summary = json.loads((tmp_path / "demo.json").read_text())
    assert summary["ticket"]["status"] == "certified" and summary["certificate_verified_offline"] is True
    cert = json.loads((tmp_path / "certificate.json").read_text())["payload"]
    assert cert["evaluation_profile"]["name"] == "classifier"
    assert cert["evaluation_profile"]["family"] == "tabular_classifier"
    assert {c["name"] for c in cert["verdicts"]["checks"]} >= {"ua_gap", "mia_gap", "ta_utility", "average_gap", "ulira"}
    ulira = next(c for c in cert["verdicts"]["checks"] if c["name"] == "ulira")
    assert ulira["threshold"] == 60.0 and ulira["n"] == 2 and ulira["status"] in ("pass", "inconclusive", "fail")
    assert cert["evaluation_profile"]["ulira"]["n_shadows"] == 2
    assert "U-LiRA (2 shadow models" in cert["verdicts"]["not_verified"][0]


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["eco", "whp"])
def test_api_approval_of_an_lm_only_method_for_a_classifier_is_400_naming_the_families(
        api, forget_subject, target_model, django_capture_on_commit_callbacks, method):
    """Issue 19 "Done when": a request choosing eco or whp for a classifier gets 400."""
    import re

    from django.core import mail

    from requests_app.models import RemovalTicket, UnlearningJob

    TargetModel.objects.filter(pk=target_model.pk).update(family="image_classifier")
    with django_capture_on_commit_callbacks(execute=True):
        r = api("owner").post("/api/v1/tickets/", {"subject_name": forget_subject.display_name}, format="json")
    tid = r.json()["id"]
    code = re.search(r" is (\d{6})", mail.outbox[-1].body).group(1)
    api("owner").post(f"/api/v1/tickets/{tid}/verify-identity/", {"code": code}, format="json")
    assert api("reviewer").post(f"/api/v1/tickets/{tid}/review/").status_code == 200
    r = api("approver").post(f"/api/v1/tickets/{tid}/approve/", {"method": method}, format="json")
    assert r.status_code == 400, r.content
    detail = r.json()["detail"]
    assert f"'{method}'" in detail and "causal_lm" in detail and "laf" in detail
    assert RemovalTicket.objects.get(public_id=tid).status == "in_review" and not UnlearningJob.objects.exists()
