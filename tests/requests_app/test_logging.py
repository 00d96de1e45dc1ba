"""Structured logs (``LOG_FORMAT=json``): every record carries the ticket and job being worked on."""
import io
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core import mail

from requests_app import jobs, selectors, services
from requests_app.logging import ContextFilter, JsonFormatter, log_context

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def json_lines(caplog):
    """Records of the ``requests_app`` loggers (INFO and up) as parsed JSON lines."""
    caplog.set_level(logging.INFO, logger="requests_app")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    logger = logging.getLogger("requests_app")
    logger.addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logger.removeHandler(handler)


def test_json_line_carries_context_ids_and_extra_fields(json_lines):
    log = logging.getLogger("requests_app.test")
    with log_context(ticket_id=["t-2", "t-1"], job_id="j-1"):
        log.warning("inside %s", "job", extra={"step": 3})
        with log_context(job_id="j-2"):
            log.warning("nested")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("crashed")
    log.warning("outside")
    inside, nested, crashed, outside = json_lines()
    assert inside["message"] == "inside job" and inside["level"] == "WARNING"
    assert inside["logger"] == "requests_app.test"
    assert inside["ticket_id"] == "t-1,t-2" and inside["job_id"] == "j-1" and inside["step"] == 3
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", inside["ts"])
    assert nested["job_id"] == "j-2" and nested["ticket_id"] == "t-1,t-2"
    assert crashed["job_id"] == "j-1" and "ValueError: boom" in crashed["exc_info"]
    assert outside["ticket_id"] is None and outside["job_id"] is None


def _queued_job(users, subject, capture):
    with capture(execute=True):
        ticket, _ = services.ticket_create(requester=users["owner"], subject=subject)
    code = re.search(r" is (\d{6})", mail.outbox[-1].body).group(1)
    services.ticket_verify_identity(ticket=ticket, code=code, actor=users["owner"])
    services.ticket_start_review(ticket=ticket, reviewer=users["reviewer"])
    ids = [r.pk for r in selectors.ticket_resolution(ticket=ticket)]
    return ticket, services.ticket_approve(ticket=ticket, approver=users["approver"], method="dp2", record_ids=ids)


def test_log_line_inside_job_execute_carries_job_and_ticket_ids(json_lines, monkeypatch, users, forget_subject,
                                                                target_model, django_capture_on_commit_callbacks):
    ticket, job = _queued_job(users, forget_subject, django_capture_on_commit_callbacks)

    def fake_run(claimed, started):  # stands in for the engine: a library logging mid-job
        logging.getLogger("requests_app.engine_stub").info("epoch %d done", 1)
        raise services.ServiceError("stub stops here")

    monkeypatch.setattr(jobs, "_job_run_claimed", fake_run)
    assert jobs.job_execute(job_id=job.pk, worker="w1") == "failed"
    lines = json_lines()
    messages = [line["message"] for line in lines]
    assert "epoch 1 done" in messages
    assert any(m.startswith(f"job {job.public_id} claimed by w1") for m in messages)
    assert any(m == f"job {job.public_id} failed: stub stops here" for m in messages)
    for line in lines:
        assert line["job_id"] == str(job.public_id), line
        assert line["ticket_id"] == str(ticket.public_id), line
    logging.getLogger("requests_app.test").warning("after the job")
    assert json_lines()[-1]["job_id"] is None


def test_api_request_carries_the_job_id_of_its_url(json_lines, monkeypatch, api, users, forget_subject,
                                                   target_model, django_capture_on_commit_callbacks):
    ticket, job = _queued_job(users, forget_subject, django_capture_on_commit_callbacks)
    original = services.job_cancel

    def logged_cancel(**kwargs):
        logging.getLogger("requests_app.services").info("cancelling")
        return original(**kwargs)

    monkeypatch.setattr(services, "job_cancel", logged_cancel)
    r = api("operator").post(f"/api/v1/jobs/{job.public_id}/cancel/", {}, format="json")
    assert r.status_code == 200
    (line,) = [x for x in json_lines() if x["message"] == "cancelling"]
    assert line["job_id"] == str(job.public_id) and line["ticket_id"] is None


def test_log_format_json_setting_configures_json_lines():
    """``LOG_FORMAT=json`` in a fresh process: the root handler writes JSON with the context ids."""
    code = (
        "import django, logging\ndjango.setup()\n"
        "from requests_app.logging import log_context\n"
        "with log_context(job_id='J', ticket_id='T'):\n    logging.getLogger('requests_app.x').warning('hi')\n"
    )
    env = {**os.environ, "LOG_FORMAT": "json", "DJANGO_SETTINGS_MODULE": "requests_app.settings"}
    env.pop("DATABASE_URL", None)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    line = json.loads(out.stderr.strip().splitlines()[-1])
    assert (line["message"], line["job_id"], line["ticket_id"], line["level"]) == ("hi", "J", "T", "WARNING")
