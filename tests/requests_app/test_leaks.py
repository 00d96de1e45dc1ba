"""Issue 13 item 9: small leaks (each with its status code or value)."""
import io

import pytest
from django.test import Client

from requests_app import services
from requests_app.models import ModelVersion, TargetModel, UnlearningJob


def test_duplicate_of_hides_another_owners_ticket(api, users, forget_subject):
    first, _ = services.ticket_create(requester=users["other_owner"], subject=forget_subject)
    mine, _ = services.ticket_create(requester=users["owner"], subject=forget_subject)
    assert mine.duplicate_of == first  # still linked, as evidence for the legal team
    body = api("owner").get(f"/api/v1/tickets/{mine.public_id}/").json()
    assert body["duplicate_of"] is None
    assert str(first.public_id) not in str(api("owner").get("/api/v1/tickets/").json())
    assert api("reviewer").get(f"/api/v1/tickets/{mine.public_id}/").json()["duplicate_of"] == str(first.public_id)
    again, _ = services.ticket_create(requester=users["owner"], subject=forget_subject)
    again.duplicate_of = mine
    again.save(update_fields=["duplicate_of"])
    # an owner's own earlier ticket is no leak
    assert api("owner").get(f"/api/v1/tickets/{again.public_id}/").json()["duplicate_of"] == str(mine.public_id)


def test_anonymous_healthz_has_status_only(client, users, settings):
    settings.ARTIFACT_STORE_URL = "s3://internal-bucket.corp.example/prefix"
    settings.AWS_ENDPOINT_URL = "http://minio.internal.corp:9000"
    r = client.get("/healthz")
    assert r.json() == {"ok": r.status_code == 200}
    assert "internal" not in r.content.decode() and "checks" not in r.json()
    token = api_token(users["operator"])
    r = Client().get("/healthz", HTTP_AUTHORIZATION=f"Token {token}")
    assert "checks" in r.json() and set(r.json()["checks"]) == {"database", "broker", "artifact_store"}
    r = Client().get("/healthz", HTTP_AUTHORIZATION="Token not-a-token")
    assert "checks" not in r.json()
    owner = Client()
    owner.force_login(users["owner"])
    assert "checks" not in owner.get("/healthz").json()


def api_token(user) -> str:
    from rest_framework.authtoken.models import Token

    return Token.objects.get_or_create(user=user)[0].key


@pytest.fixture
def owner_job(corpus, users, forget_subject):
    model = TargetModel.objects.create(name="m", architecture="LlamaForCausalLM", tokenizer="bpe", corpus=corpus)
    v0 = ModelVersion.objects.create(model=model, sequence=0, artifact_uri="file:///srv/erasure/var/artifacts/v0",
                                     weights_sha256="0" * 64)
    ticket, _ = services.ticket_create(requester=users["owner"], subject=forget_subject)
    job = UnlearningJob.objects.create(
        model=model, source_version=v0, method="dp2", status="failed", worker="gpu0@node-17.corp.internal",
        result={"artifact_uri": "s3://ml-artifacts/unlearning/models/m/jobs/x", "steps": 40,
                "details": {"output_dir": "/srv/erasure/var/jobs/x/model", "note": "saved to /srv/erasure/var/jobs/x"}},
        error="OSError: [Errno 28] No space left on device: '/srv/erasure/var/jobs/x/model/weights.safetensors'",
    )
    job.tickets.add(ticket)
    return job


def test_owner_job_view_has_no_artifact_uris_paths_or_hosts(api, owner_job):
    body = api("owner").get(f"/api/v1/jobs/{owner_job.public_id}/")
    assert body.status_code == 200
    text = body.content.decode()
    for secret in ("/srv/erasure", "s3://", "file://", "node-17", "corp.internal"):
        assert secret not in text, secret
    data = body.json()
    assert data["result"]["steps"] == 40 and data["result"]["artifact_uri"] is None
    assert data["error"].startswith("OSError: [Errno 28] No space left on device")
    assert data["worker"] is None
    staff = api("operator").get(f"/api/v1/jobs/{owner_job.public_id}/").json()
    assert staff["result"]["artifact_uri"].startswith("s3://") and staff["worker"].startswith("gpu0@")


def test_auditor_cannot_file_requests_through_the_portal(users, forget_subject):
    client = Client()
    client.force_login(users["auditor"])
    assert client.get("/requests/new/").status_code == 403
    r = client.post("/requests/new/", {"subject_name": forget_subject.display_name, "scope": "all",
                                       "jurisdiction": "GDPR"})
    assert r.status_code == 403 and "read-only" in r.content.decode()
    from requests_app.models import RemovalTicket

    assert not RemovalTicket.objects.filter(requester=users["auditor"]).exists()


class _Unreadable(io.RawIOBase):
    """A request body stream that fails the test if anything reads it."""

    def readable(self):
        return True

    def readinto(self, b):
        raise AssertionError("the body was read before the size check")


def test_large_anonymous_upload_is_refused_before_reading(db):
    from django.test.client import RequestFactory

    from requests_app.wsgi import application

    environ = RequestFactory().post("/certificates/check/", data=b"", content_type="multipart/form-data; boundary=x")
    environ = environ.environ if hasattr(environ, "environ") else environ.META
    environ = {**environ, "CONTENT_LENGTH": str(30 * 1024 * 1024), "wsgi.input": _Unreadable()}
    status = {}
    body = b"".join(application(environ, lambda s, h, *a: status.update(s=s, h=dict(h)) or (lambda x: None)))
    assert status["s"].startswith("413")
    assert b"above the limit" in body
    r = Client().post("/api/v1/certificates/verify/", data="{}", content_type="application/json",
                      CONTENT_LENGTH=str(30 * 1024 * 1024))
    assert r.status_code == 413 and "above the limit" in r.json()["detail"]


def test_malformed_content_length_is_400(db):
    r = Client().post("/certificates/check/", data="{}", content_type="application/json", CONTENT_LENGTH="abc")
    assert r.status_code == 400


def test_upload_limits_stream_to_disk_beyond_the_evidence_size(settings):
    from django.conf import settings as live

    assert live.FILE_UPLOAD_MAX_MEMORY_SIZE <= live.REQUEST_MAX_BYTES
    assert live.FILE_UPLOAD_PERMISSIONS == 0o600
