"""Start-up security checks used by ``settings.py`` (no Django imports: settings are not ready yet).

- :func:`production_secrets_check`: with ``DEBUG=False`` the service refuses to start on the public
  development secret, a weak ``DJANGO_SECRET_KEY`` or a missing / derived ``EVIDENCE_ENCRYPTION_KEY``
  (issue 13 item 3). The strength rule is Django's own ``security.W009`` (≥ 50 characters, ≥ 5
  distinct characters, not ``django-insecure-``), made fatal.
- :func:`sqlite_file_private`: the embedded SQLite file (and its WAL/SHM files, which SQLite creates
  with the database file's mode) is readable by the service account only (0600).
"""
from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

#: The development secret key (public: it is in this repository).
DEV_SECRET_KEY = "dev-only-insecure-key-change-me"
#: Secret values that were ever public (in this repository or its examples).
PUBLIC_SECRETS = frozenset({DEV_SECRET_KEY, "change-me", "changeme", "secret", ""})
SECRET_KEY_MIN_LENGTH = 50
SECRET_KEY_MIN_UNIQUE = 5


class InsecureConfiguration(Exception):
    """Production settings with a public or weak secret (raised at start-up, before serving)."""


def dev_fernet_key(secret: str) -> str:
    """The development evidence key: a Fernet key derived from ``secret`` (never used in production)."""
    return base64.urlsafe_b64encode(hashlib.sha256(("evidence:" + secret).encode()).digest()).decode()


def production_secrets_check(secret_key: str, evidence_key: str) -> None:
    """Refuse production settings without real, separate secrets.

    Raises:
        InsecureConfiguration: ``DJANGO_SECRET_KEY`` unset, public, shorter than 50 characters, with
            fewer than 5 distinct characters or ``django-insecure-``-prefixed; ``EVIDENCE_ENCRYPTION_KEY``
            unset, not a Fernet key (32 url-safe base64 bytes), equal to the secret key or derived from it.
    """
    from django.core.exceptions import ImproperlyConfigured  # exceptions only: no settings access

    problems = []
    if secret_key in PUBLIC_SECRETS or "change-me" in secret_key.lower() or secret_key.lstrip().startswith("#"):
        problems.append("DJANGO_SECRET_KEY is unset or a public example value")
    elif (len(secret_key) < SECRET_KEY_MIN_LENGTH or len(set(secret_key)) < SECRET_KEY_MIN_UNIQUE
          or secret_key.startswith("django-insecure-")):
        problems.append(f"DJANGO_SECRET_KEY is weak (give at least {SECRET_KEY_MIN_LENGTH} random characters)")
    if not evidence_key:
        problems.append("EVIDENCE_ENCRYPTION_KEY is unset")
    else:
        try:
            raw = base64.urlsafe_b64decode(evidence_key.encode())
        except (ValueError, TypeError):
            raw = b""
        if len(raw) != 32:
            problems.append("EVIDENCE_ENCRYPTION_KEY is not a Fernet key (32 url-safe base64-encoded bytes)")
        elif evidence_key in (secret_key, dev_fernet_key(secret_key), dev_fernet_key(DEV_SECRET_KEY)):
            problems.append("EVIDENCE_ENCRYPTION_KEY must be its own key, not derived from DJANGO_SECRET_KEY")
    if problems:
        raise ImproperlyConfigured(
            "refusing to start with DJANGO_DEBUG=false: " + "; ".join(problems)
            + ". Generate them: python -c \"import secrets; print(secrets.token_urlsafe(50))\" and "
            "python -c \"from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())\""
        )



def sqlite_file_private(name) -> None:
    """Create the SQLite database file with mode 0600 (or tighten an existing one).

    ``name`` is the ``DATABASES`` NAME; in-memory names (``:memory:``, ``file:...mode=memory``) are skipped.
    """
    name = str(name)
    if not name or name == ":memory:" or name.startswith("file:"):
        return
    path = Path(name)
    if not path.parent.is_dir():
        return
    try:
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        os.close(fd)
        os.chmod(path, 0o600)
        for suffix in ("-wal", "-shm", "-journal"):
            extra = path.with_name(path.name + suffix)
            if extra.exists():
                os.chmod(extra, 0o600)
    except OSError:  # a read-only or foreign-owned file: SQLite reports it when it opens
        pass
