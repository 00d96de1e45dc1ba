"""Fault tests on the infrastructure around a running job, with real processes:

* the Redis broker restarted (state lost) while a job trains → the job still finishes exactly once;
* the S3 artifact store (moto's standalone server) stopped while a job trains → the upload fails with
  a clear reason, the ticket is failed, and after the store is back the ticket is retried to the end.
"""
from __future__ import annotations

import copy
import json
import shutil
import socket
import subprocess
import sys
import time

import pytest
import redis

from requests_app import services
from requests_app.models import JobStatus, ModelVersion, TicketStatus, UnlearningJob

from .conftest import wait_for
from .test_faults import _approved_job

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

FINAL = (JobStatus.SUCCEEDED, JobStatus.FAILED)


@pytest.fixture
def fast_heartbeats(settings):
    settings.JOB_HEARTBEAT_INTERVAL = 0.5
    settings.JOB_HEARTBEAT_TIMEOUT = 4.0
    settings.JOB_MAX_ATTEMPTS = 3


def _job(pk) -> UnlearningJob:
    return UnlearningJob.objects.get(pk=pk)


def _training(pk) -> bool:
    job = _job(pk)
    return job.status == JobStatus.RUNNING and (job.progress or {}).get("step", 0) > 0


def _assert_ended_by_verdict(job: UnlearningJob) -> None:
    """Succeeded, or failed by its evaluation verdict — never by a crash or a lost worker."""
    assert job.status in FINAL, (job.status, job.error)
    if job.status == JobStatus.FAILED:
        assert job.error.startswith("evaluation verdict failed"), job.error


def _redis_ping(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


class OwnRedis:
    """A redis-server of this test's own on a free loopback port, in its own directory.

    The fault test stops and restarts *this* server only; the machine's shared Redis (6379) is never
    touched (no ``SHUTDOWN``, no ``FLUSHALL``).
    """

    def __init__(self, workdir):
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert wait_for(lambda: _redis_ping(self.url), timeout=15, interval=0.1), "own redis did not start"

    def restart(self) -> None:
        """``SHUTDOWN NOSAVE`` (every queue and unacked message is lost), then start it again."""
        try:
            redis.Redis.from_url(self.url).shutdown(nosave=True)
        except redis.ConnectionError:
            pass  # the server closes the connection as it exits
        assert wait_for(lambda: not _redis_ping(self.url), timeout=10, interval=0.1), "redis did not stop"
        if self.proc is not None:
            self.proc.wait(timeout=10)
        self.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture
def own_redis(tmp_path, settings):
    """Point this process's Celery app and the workers at a Redis of the test's own."""
    from requests_app.celery import app as celery_app

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not installed")
    server = OwnRedis(tmp_path)
    server.start()
    previous = celery_app.conf.broker_write_url or celery_app.conf.broker_url
    settings.CELERY_BROKER_URL = server.url
    _point_broker_at(celery_app, server.url)
    yield server
    _point_broker_at(celery_app, previous)
    server.stop()


def _point_broker_at(celery_app, url: str) -> None:
    """Switch this process's Celery app to another broker URL.

    The connection pool *and* the producer pool that wraps it are dropped (kombu's global pools
    too): closing only the connection pool leaves a cached producer pool that raises
    "Acquire on closed pool" on the next ``delay()`` of every later test.
    """
    from kombu import pools

    # broker_read_url / broker_write_url were filled in from the first URL when the app was configured
    celery_app.conf.broker_url = celery_app.conf.broker_read_url = celery_app.conf.broker_write_url = url
    celery_app.pool.force_close_all()
    celery_app._pool = None
    celery_app.amqp._producer_pool = None
    pools.reset()


def _worker_json_lines(worker_pool) -> list[dict]:
    lines = []
    for path in sorted(worker_pool.log_dir.glob("worker-*.log")):
        for raw in path.read_text().splitlines():
            if raw.startswith("{"):
                try:
                    lines.append(json.loads(raw))
                except ValueError:
                    pass
    return lines


def test_redis_restarted_mid_job_the_job_still_finishes_once(fast_heartbeats, settings, own_redis, worker_pool,
                                                            target_model, forget_subject, users):
    from requests_app.tasks import job_run_task

    worker_pool.env["LOG_FORMAT"] = "json"  # the worker's records carry the job id (checked below)
    worker_pool.start()
    ticket, job = _approved_job(users, forget_subject, epochs=60)
    assert wait_for(lambda: _training(job.pk), timeout=240), worker_pool.logs()
    t0 = time.monotonic()
    own_redis.restart()
    restart_s = time.monotonic() - t0
    assert _job(job.pk).status == JobStatus.RUNNING  # the broker outage did not touch the running job
    assert wait_for(lambda: _job(job.pk).status in FINAL, timeout=600), worker_pool.logs()
    job.refresh_from_db()
    ticket.refresh_from_db()
    _assert_ended_by_verdict(job)
    assert job.attempts == 1
    assert ModelVersion.objects.filter(produced_by=job).count() == 1
    assert ticket.status == (TicketStatus.CERTIFIED if job.status == JobStatus.SUCCEEDED else TicketStatus.FAILED)

    # the worker reconnected to the restarted broker: a duplicate delivery sent now reaches it and is a no-op
    job_run_task.delay(job.pk)
    duplicate = f"job {job.pk} already claimed; duplicate delivery ignored"
    assert wait_for(lambda: any(x["message"] == duplicate for x in _worker_json_lines(worker_pool)),
                    timeout=90, interval=1), worker_pool.logs()
    job.refresh_from_db()
    assert job.attempts == 1 and ModelVersion.objects.filter(produced_by=job).count() == 1
    # structured worker logs: the job's own records carry its job and ticket ids
    mine = [x for x in _worker_json_lines(worker_pool) if x["message"].startswith(f"job {job.public_id} ")]
    assert mine and all(x["job_id"] == str(job.public_id) and x["ticket_id"] == str(ticket.public_id) for x in mine)
    print(f"redis restart took {restart_s:.1f} s; job {job.status} in {job.device_seconds:.0f} s")


# --- S3 --------------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MotoServer:
    """moto's standalone S3 server on a fixed loopback port that can be stopped and started again
    (its state is in memory: a restart loses every bucket)."""

    def __init__(self, log_path):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=log, stderr=subprocess.STDOUT)
        assert wait_for(self._listening, timeout=30, interval=0.1), "moto server did not start"

    def _listening(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        assert wait_for(lambda: not self._listening(), timeout=10, interval=0.1)


@pytest.fixture
def s3(tmp_path, monkeypatch, settings):
    server = MotoServer(tmp_path / "moto.log")
    server.start()
    creds = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
             "AWS_ENDPOINT_URL": server.url}
    for key, value in creds.items():
        monkeypatch.setenv(key, value)
    settings.ARTIFACT_STORE_URL = "s3://unlearning-artifacts/prod"
    settings.ARTIFACT_CACHE_DIR = tmp_path / "cache-test"
    server.creds = creds
    yield server
    server.stop()


def _upload_tiny_model(s3, trained_artifacts, tmp_path) -> dict:
    """Create the bucket and copy the tiny model's three artifacts (target, base, DP base) into it."""
    import boto3

    from requests_app.artifacts import LocalArtifactStore, S3ArtifactStore

    boto3.client("s3", endpoint_url=s3.url).create_bucket(Bucket="unlearning-artifacts")
    store = S3ArtifactStore("unlearning-artifacts", "prod", endpoint_url=s3.url, cache_dir=tmp_path / "cache-up")
    local = LocalArtifactStore(trained_artifacts["root"])
    out = copy.deepcopy({k: v for k, v in trained_artifacts.items() if k != "root"})
    for name, key in (("target", "models/tiny/v0"), ("base", "models/tiny/base"), ("dp_base", "models/tiny/dp_base")):
        out[f"{name}_uri"] = store.put_dir(local.local_dir(trained_artifacts[f"{name}_uri"]), key)
    return out


def test_s3_stopped_mid_job_fails_clearly_then_retry_finishes(fast_heartbeats, settings, worker_pool, corpus,
                                                              trained_artifacts, s3, forget_subject, users,
                                                              tmp_path):
    from requests_app.model_training import model_register_artifacts
    from tests.conftest import TEST_RECIPE

    artifacts = _upload_tiny_model(s3, trained_artifacts, tmp_path)
    model = model_register_artifacts(corpus=corpus, name="tiny", recipe=copy.deepcopy(TEST_RECIPE),
                                     artifacts=artifacts)
    assert ModelVersion.objects.get(model=model, sequence=0).artifact_uri == "s3://unlearning-artifacts/prod/models/tiny/v0"
    worker_pool.env.update({**s3.creds, "ARTIFACT_STORE_URL": settings.ARTIFACT_STORE_URL,
                            "ARTIFACT_CACHE_DIR": str(tmp_path / "cache-worker")})
    worker_pool.start()

    # 1. the job fetched its inputs from S3 and trains; the store goes away before the upload
    ticket, job = _approved_job(users, forget_subject, epochs=20)
    assert wait_for(lambda: _training(job.pk), timeout=240), worker_pool.logs()
    s3.stop()
    t_stop = time.monotonic()

    def trained() -> bool:
        j = _job(job.pk)
        p = j.progress or {}
        return j.status in FINAL or (p.get("total") and p.get("step", 0) >= p["total"])

    assert wait_for(trained, timeout=300, interval=0.2), worker_pool.logs()
    t_trained = time.monotonic()
    assert wait_for(lambda: _job(job.pk).status in FINAL, timeout=120, interval=0.2), worker_pool.logs()
    upload_failed_after = time.monotonic() - t_trained
    job.refresh_from_db()
    ticket.refresh_from_db()
    uri = f"s3://unlearning-artifacts/prod/models/tiny/jobs/{job.public_id}"
    assert job.status == JobStatus.FAILED
    assert job.error.startswith(f"artifact store unreachable during upload of {uri}: "), job.error
    assert "Could not connect to the endpoint URL" in job.error
    assert ticket.status == TicketStatus.FAILED and ticket.failure_reason == job.error
    assert ModelVersion.objects.filter(produced_by=job).count() == 0
    # botocore's bounded retries (5 attempts, connection refused): the outage surfaces in seconds
    assert upload_failed_after < 45, upload_failed_after
    stopped_for = time.monotonic() - t_stop

    # 2. the store is back (empty: moto keeps state in memory) and the artifacts are restored
    s3.start()
    _upload_tiny_model(s3, trained_artifacts, tmp_path)
    shutil.rmtree(tmp_path / "cache-worker", ignore_errors=True)  # the retry fetches from S3 again
    retry = services.ticket_retry(ticket=ticket, actor=users["operator"], hyperparameters={})
    assert wait_for(lambda: _job(retry.pk).status in FINAL, timeout=300), worker_pool.logs()
    retry.refresh_from_db()
    ticket.refresh_from_db()
    _assert_ended_by_verdict(retry)
    version = ModelVersion.objects.get(produced_by=retry)
    assert version.artifact_uri == f"s3://unlearning-artifacts/prod/models/tiny/jobs/{retry.public_id}"
    assert ticket.status == (TicketStatus.CERTIFIED if retry.status == JobStatus.SUCCEEDED else TicketStatus.FAILED)
    import boto3

    keys = {o["Key"] for o in boto3.client("s3", endpoint_url=s3.url).list_objects_v2(
        Bucket="unlearning-artifacts", Prefix=f"prod/models/tiny/jobs/{retry.public_id}/")["Contents"]}
    assert f"prod/models/tiny/jobs/{retry.public_id}/MANIFEST.json" in keys
    print(f"S3 stopped {stopped_for:.1f} s before the job failed; the upload failed {upload_failed_after:.1f} s "
          f"after training ended; retry {retry.status}")
