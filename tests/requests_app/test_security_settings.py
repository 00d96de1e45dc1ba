"""Issue 13 items 3 and 9: production refuses public or derived secrets; ``check --deploy`` under
``infra/env.example`` is clean; the SQLite file is created owner-only (each in a fresh process)."""
import base64
import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from requests_app.security import DEV_SECRET_KEY, dev_fernet_key, production_secrets_check

ROOT = Path(__file__).resolve().parents[2]
GOOD_SECRET = secrets.token_urlsafe(50)
GOOD_FERNET = base64.urlsafe_b64encode(os.urandom(32)).decode()
SETUP = "import django; django.setup(); from django.conf import settings; print('DEBUG', settings.DEBUG)"


def _clean_env(tmp_path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DJANGO_", "EVIDENCE_", "DATABASE_URL", "CELERY_", "CACHE_URL", "SQLITE_"))}
    env.update({"DJANGO_SETTINGS_MODULE": "requests_app.settings", "VAR_DIR": str(tmp_path / "var"),
                "OMP_NUM_THREADS": "1", **extra})
    return env


def _run(env, *args, code=SETUP):
    cmd = [sys.executable, *args] if args else [sys.executable, "-c", code]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("secret, evidence, problem", [
    ("", GOOD_FERNET, "DJANGO_SECRET_KEY is unset"),
    (DEV_SECRET_KEY, GOOD_FERNET, "public example value"),
    ("change-me", GOOD_FERNET, "public example value"),
    ("short-but-random-9f8e7d", GOOD_FERNET, "DJANGO_SECRET_KEY is weak"),
    ("a" * 60, GOOD_FERNET, "DJANGO_SECRET_KEY is weak"),
    ("django-insecure-" + "x1y2z3" * 10, GOOD_FERNET, "DJANGO_SECRET_KEY is weak"),
    ("#  python -c \"import secrets; print(secrets.token_urlsafe(50))\"", GOOD_FERNET, "public example"),
    (GOOD_SECRET, "", "EVIDENCE_ENCRYPTION_KEY is unset"),
    (GOOD_SECRET, "not-a-key", "not a Fernet key"),
    (GOOD_SECRET, dev_fernet_key(GOOD_SECRET), "not derived from DJANGO_SECRET_KEY"),
    (GOOD_SECRET, dev_fernet_key(DEV_SECRET_KEY), "not derived from DJANGO_SECRET_KEY"),
])
def test_production_secrets_check_refuses(secret, evidence, problem):
    with pytest.raises(ImproperlyConfigured, match=problem):
        production_secrets_check(secret, evidence)


def test_production_secrets_check_accepts_real_separate_secrets():
    production_secrets_check(GOOD_SECRET, GOOD_FERNET)


def test_production_start_without_secrets_fails_and_with_them_succeeds(tmp_path):
    r = _run(_clean_env(tmp_path, DJANGO_DEBUG="false"))
    assert r.returncode != 0 and "refusing to start with DJANGO_DEBUG=false" in r.stderr
    assert "DJANGO_SECRET_KEY is unset" in r.stderr and "EVIDENCE_ENCRYPTION_KEY is unset" in r.stderr
    r = _run(_clean_env(tmp_path, DJANGO_DEBUG="false", DJANGO_SECRET_KEY=GOOD_SECRET))
    assert r.returncode != 0 and "EVIDENCE_ENCRYPTION_KEY is unset" in r.stderr
    r = _run(_clean_env(tmp_path, DJANGO_DEBUG="false", DJANGO_SECRET_KEY=GOOD_SECRET,
                        EVIDENCE_ENCRYPTION_KEY=GOOD_FERNET))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "DEBUG False" in r.stdout
    # local use (nothing set): debug mode with the development defaults
    r = _run(_clean_env(tmp_path))
    assert r.returncode == 0 and "DEBUG True" in r.stdout


def _env_example(tmp_path) -> dict:
    """``infra/env.example`` as an operator fills it in: the empty secrets generated as its comments say."""
    values = {}
    for line in (ROOT / "infra" / "env.example").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.split(" #")[0].strip()
    assert values["DJANGO_SECRET_KEY"] == "" and values["EVIDENCE_ENCRYPTION_KEY"] == ""  # no public secrets
    values.update(DJANGO_SECRET_KEY=GOOD_SECRET, EVIDENCE_ENCRYPTION_KEY=GOOD_FERNET)
    return _clean_env(tmp_path, **values)


def test_check_deploy_under_env_example_has_no_warnings(tmp_path):
    env = _env_example(tmp_path)
    r = _run(env, "manage.py", "check", "--deploy", "--fail-level", "WARNING")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "System check identified no issues" in r.stdout
    code = ("import django; django.setup(); from django.conf import settings as s; "
            "print(s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS, "
            "s.SECURE_PROXY_SSL_HEADER, s.CACHES['default']['BACKEND'])")
    out = _run(env, code=code).stdout.split()
    assert out[:4] == ["True", "True", "True", "31536000"] and "HTTP_X_FORWARDED_PROTO" in " ".join(out)
    assert out[-1].endswith("RedisCache")


def test_check_deploy_with_the_development_defaults_warns(tmp_path):
    r = _run(_clean_env(tmp_path), "manage.py", "check", "--deploy", "--fail-level", "WARNING")
    assert r.returncode != 0 and "security.W018" in r.stderr + r.stdout  # DEBUG on


def test_sqlite_database_file_is_owner_only(tmp_path):
    env = _clean_env(tmp_path)
    old = os.umask(0o022)
    try:
        r = _run(env, code="import django; django.setup(); from django.db import connection; "
                           "connection.cursor().execute('create table t (x int)'); "
                           "print(connection.cursor().execute('pragma journal_mode').fetchone()[0])")
    finally:
        os.umask(old)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().endswith("wal")
    db = tmp_path / "var" / "db.sqlite3"
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "var").stat().st_mode) == 0o700
    for extra in (tmp_path / "var").glob("db.sqlite3-*"):
        assert stat.S_IMODE(extra.stat().st_mode) == 0o600, extra
    db.chmod(0o644)  # an existing world-readable file is tightened at start-up
    assert _run(env).returncode == 0
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
