"""Integration fixtures: real Celery worker processes on Redis against the PostgreSQL test database."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings as dj_settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def require_real_stack():
    if connection.vendor != "postgresql":
        pytest.fail("integration tests need DATABASE_URL pointing at PostgreSQL")
    if dj_settings.CELERY_TASK_ALWAYS_EAGER or not dj_settings.CELERY_BROKER_URL.startswith("redis://"):
        pytest.fail("integration tests need CELERY_BROKER_URL=redis://... and non-eager tasks")


def wait_for(predicate, timeout=300.0, interval=0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


class WorkerPool:
    """Starts and kills real ``celery worker`` processes sharing one environment."""

    def __init__(self, env: dict, log_dir: Path):
        self.env = env
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen] = []

    def start(self) -> subprocess.Popen:
        n = len(self.procs)
        log = open(self.log_dir / f"worker-{n}.log", "w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "requests_app", "worker", "-P", "solo", "-Q", "gpu,default,email",
             "--without-gossip", "--without-mingle", "-n", f"test-worker-{os.getpid()}-{n}@%h", "-l", "INFO"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )
        self.procs.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen) -> None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()

    def logs(self) -> str:
        return "\n".join(p.read_text()[-2000:] for p in sorted(self.log_dir.glob("worker-*.log")))


@pytest.fixture
def worker_pool(trained_artifacts, tmp_path, settings):
    """A pool of real worker processes on the test database, the Redis broker and the test store."""
    import redis

    require_real_stack()
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "ARTIFACT_STORE_URL": f"file://{trained_artifacts['root']}",
        "CERTIFICATE_SIGNING_KEY_PATH": str(settings.CERTIFICATE_SIGNING_KEY_PATH),
        "JOB_WORK_DIR": str(tmp_path / "jobs"),
        "JOB_HEARTBEAT_INTERVAL": str(settings.JOB_HEARTBEAT_INTERVAL),
        "JOB_HEARTBEAT_TIMEOUT": str(settings.JOB_HEARTBEAT_TIMEOUT),
        "LOG_LEVEL": "INFO",
    }
    pool = WorkerPool(env, tmp_path)
    yield pool
    pool.stop_all()
    print(pool.logs())


@pytest.fixture
def worker(worker_pool):
    return worker_pool.start()


@pytest.fixture(autouse=True)
def _email_inline(monkeypatch):
    """A queued e-mail of the test process (``email_send_task``, issue 17) is sent in the test process
    at commit, so that ``mail.outbox`` holds it as before. The worker also consumes ``email``: the
    owner's outcome notices that the worker's own job steps queue are sent there (issue 21)."""
    from requests_app import tasks

    monkeypatch.setattr(tasks.email_send_task, "delay", lambda *args: tasks.email_send_task.apply(args=args))
