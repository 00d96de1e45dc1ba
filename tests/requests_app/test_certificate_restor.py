"""The RESTOR figure attached to a certificate's evaluation when the operator asks
(``CERTIFICATE_RESTOR_REPORT``, issue 16): inside the signed payload, for the job's method;
a configured but unusable report stops the certificate with the reason."""
import base64
import json

import pytest

from requests_app import services
from requests_app.models import JobStatus, ModelVersion, UnlearningJob

PNG = b"\x89PNG\r\n\x1a\n" + b"restor-figure" * 4
VERDICTS = {"passed": True, "checks": [{"name": "privleak", "value": 1.0, "passed": True, "status": "pass"}]}


@pytest.fixture(autouse=True)
def _keys(settings, tmp_path):
    settings.CERTIFICATE_SIGNING_KEY_PATH = tmp_path / "keys" / "k.pem"


def _report_file(tmp_path):
    from evaluation.profiles.restor import RestorProfile
    from evaluation.profiles.restor_metrics import restor_metrics

    m = restor_metrics(["correct"] * 4, ["corrupted", "corrupted", "neither", "correct"],
                       ["correct", "corrupted", "neither", "correct"])
    report = {"profile": RestorProfile(preset="test").to_dict(), "facts": [{}] * 4,
              "models": {"clean": m["clean"], "corrupted": m["corrupted"], "lost": m["lost"]},
              "methods": [{"method": "retrain", "status": "ok", "metrics": m["unlearned"]},
                          {"method": "dp2", "status": "ok", "metrics": m["unlearned"]}],
              "figure": {"file": "restor.png", "media_type": "image/png"}}
    (tmp_path / "restor.png").write_bytes(PNG)
    path = tmp_path / "restor.json"
    path.write_text(json.dumps(report))
    return path


def _job(target_model):
    source = ModelVersion.objects.get(model=target_model, is_serving=True)
    return UnlearningJob.objects.create(model=target_model, source_version=source, method="dp2",
                                        status=JobStatus.EVALUATING, forget_set_sha256="f" * 64, forget_count=0,
                                        result={"changes_weights": True, "hyperparameters": {}})


def test_no_attachment_unless_the_operator_asks(target_model, settings):
    settings.CERTIFICATE_RESTOR_REPORT = ""
    _, cert = services.job_finish(job=_job(target_model), artifact_uri="file:///x", weights_sha256="e" * 64,
                                  reports={}, verdicts=VERDICTS, device_seconds=1.0)
    assert "evaluation_attachments" not in cert.payload


def test_restor_figure_is_attached_and_signed(target_model, settings, tmp_path):
    from requests_app.certificates import certificate_verify_document

    settings.CERTIFICATE_RESTOR_REPORT = str(_report_file(tmp_path))
    _, cert = services.job_finish(job=_job(target_model), artifact_uri="file:///x", weights_sha256="e" * 64,
                                  reports={}, verdicts=VERDICTS, device_seconds=1.0)
    [att] = cert.payload["evaluation_attachments"]
    assert att["kind"] == "evaluation_attachment/restor" and att["method"] == "dp2"
    assert base64.b64decode(att["figure"]["data_base64"]) == PNG
    assert att["method_metrics"]["recovery"]["value"] == pytest.approx(100 / 3)  # 1 of the 3 lost facts
    assert att["n_lost"] == 3 and "no LLM judge" not in att["scope"]
    doc = cert.as_document()
    assert certificate_verify_document(doc).valid
    doc["payload"]["evaluation_attachments"][0]["figure"]["data_base64"] = base64.b64encode(b"other").decode()
    assert not certificate_verify_document(doc).valid  # the figure is covered by the signature


def test_unusable_report_stops_the_certificate_with_the_reason(target_model, settings, tmp_path):
    settings.CERTIFICATE_RESTOR_REPORT = str(tmp_path / "missing.json")
    with pytest.raises(services.ServiceError, match="RESTOR report to attach"):
        services.job_finish(job=_job(target_model), artifact_uri="file:///x", weights_sha256="e" * 64,
                            reports={}, verdicts=VERDICTS, device_seconds=1.0)
