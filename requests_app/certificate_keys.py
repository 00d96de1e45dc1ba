"""The issuer's certificate keys: the private signing key, the published key set, rotation.

Files (next to ``settings.CERTIFICATE_SIGNING_KEY_PATH``, e.g. ``var/keys/certificate_ed25519.pem``):

- ``<key>.pem``: the current Ed25519 private key (PKCS#8 PEM, mode 0600). Only the issuer has it.
- ``<key>.keyring.json``: the published key set (public keys only, schema
  ``erasure-certificate-keys/1``, :mod:`evaluation.certificate_keys`), written atomically.
  ``GET /api/v1/certificates/keys/``, ``/.well-known/erasure-certificate-keys.json`` and
  ``manage.py certificate_keys_export`` publish exactly this set.
- ``public/*.pem`` (legacy, before the key set existed): retired public keys, read when the key
  set is first bootstrapped.

Rotation (:func:`signing_key_rotate`): a new private key is written to ``<key>.pem.next``, the key
set is rewritten (old key ``retired`` with ``valid_until`` = now, new key ``current`` with
``valid_from`` = now), then ``<key>.pem.next`` replaces ``<key>.pem`` (the old private key is
destroyed; its public key stays published, so every certificate it signed still verifies). A
crash between the steps is completed or undone by the next :func:`signing_key` call. Only
:func:`signing_key` and :func:`signing_key_rotate` may create a private key; the verification
paths (:func:`published_keys`) only read.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings

from evaluation.certificate_keys import (
    KeySetError,
    PublishedKey,
    keyset_document,
    keyset_load_file,
    raw_key_id,
)


class SigningKeyError(RuntimeError):
    """The signing key and the published key set disagree; nothing is signed."""


def _key_path() -> Path:
    return Path(settings.CERTIFICATE_SIGNING_KEY_PATH)


def keyring_path() -> Path:
    """``<signing key path>.keyring.json`` (the published key set file)."""
    p = _key_path()
    return p.with_name(p.stem + ".keyring.json")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _load_private(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path} does not hold an Ed25519 private key")
    return key


def _write_private(path: Path, key: Ed25519PrivateKey) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_keyring(keys) -> None:
    path = keyring_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    doc = keyset_document(keys, issuer=settings.CERTIFICATE_ISSUER)
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


@contextlib.contextmanager
def _lock():
    path = keyring_path().with_name(keyring_path().name + ".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _legacy_keys() -> dict[str, PublishedKey]:
    """Key set derived from files written before the key set existed (read only)."""
    keys: dict[str, PublishedKey] = {}
    public_dir = _key_path().parent / "public"
    if public_dir.is_dir():
        for pem in sorted(public_dir.glob("*.pem")):
            pub = serialization.load_pem_public_key(pem.read_bytes())
            keys[raw_key_id(pub)] = PublishedKey.of(pub, status="retired")
    if _key_path().exists():
        current = PublishedKey.of(_load_private(_key_path()))
        keys[current.key_id] = current
    return keys


def published_keys() -> dict[str, PublishedKey]:
    """``{key_id: PublishedKey}`` of the published key set; reads only, never creates a key.
    Empty when this machine has neither a key set nor a signing key. Raises ``KeySetError``
    for a corrupt key-set file."""
    if keyring_path().exists():
        return keyset_load_file(keyring_path())
    return _legacy_keys()


def keys_document() -> dict:
    """The published key-set document (``evaluation.certificate_keys.keyset_document``)."""
    return keyset_document(published_keys().values(), issuer=settings.CERTIFICATE_ISSUER)


def _recover_rotation(keys: dict[str, PublishedKey]) -> None:
    nxt = _key_path().with_name(_key_path().name + ".next")
    if not nxt.exists():
        return
    pending = PublishedKey.of(_load_private(nxt))
    current = keys.get(pending.key_id)
    if current is not None and current.status == "current":
        os.replace(nxt, _key_path())  # the key set was written: finish the rotation
    else:
        nxt.unlink()  # crashed before the key set: the rotation never happened


def signing_key() -> Ed25519PrivateKey:
    """Issuer side: the current private key. In a fresh (dev) installation the first key and its
    key set are created here. Raises :class:`SigningKeyError` when the private key is not the
    key set's ``current`` key (e.g. a retired key restored from a backup): nothing is signed then.
    """
    with _lock():
        return _signing_key_locked()


def certificate_sign(make_payload) -> dict:
    """Sign ``make_payload(issued_at)`` with the current key, holding the key-set lock so that a
    concurrent rotation cannot make ``issued_at`` fall outside the signing key's validity.
    ``make_payload`` gets an aware UTC datetime and returns the payload dict."""
    from evaluation.certificate import sign_certificate

    with _lock():
        key = _signing_key_locked()
        return sign_certificate(make_payload(_now()), key)


def _signing_key_locked() -> Ed25519PrivateKey:
    keys = published_keys() if keyring_path().exists() else {}
    _recover_rotation(keys)
    if not _key_path().exists():
        if any(k.status == "current" for k in keys.values()):
            raise SigningKeyError("the key set names a current key but its private key is missing")
        key = Ed25519PrivateKey.generate()
        _write_private(_key_path(), key)
        # the installation's first key is valid from the start (open bound); a key made by a
        # rotation is valid from the rotation
        keys[raw_key_id(key)] = PublishedKey.of(key, valid_from=_now() if keys else None)
        _write_keyring(keys.values())
        return key
    key = _load_private(_key_path())
    if not keyring_path().exists():  # bootstrap from the legacy layout
        keys = _legacy_keys()
        _write_keyring(keys.values())
    entry = keys.get(raw_key_id(key))
    if entry is None or entry.status != "current":
        raise SigningKeyError(f"signing key {raw_key_id(key)} is not the current published key")
    return key


def signing_key_rotate() -> tuple[PublishedKey, PublishedKey | None]:
    """Make a new current key and retire the old one (kept public). Returns (new, retired)."""
    with _lock():
        _signing_key_locked()  # completes an interrupted rotation, bootstraps the key set
        keys = published_keys()
        now = _now()
        old = next((k for k in keys.values() if k.status == "current"), None)
        new_private = Ed25519PrivateKey.generate()
        nxt = _key_path().with_name(_key_path().name + ".next")
        _write_private(nxt, new_private)
        retired = None
        if old is not None:
            retired = PublishedKey(old.key_id, old.public_key, "retired", old.valid_from, now)
            keys[old.key_id] = retired
        new = PublishedKey.of(new_private, valid_from=now)
        keys[new.key_id] = new
        _write_keyring(keys.values())
        os.replace(nxt, _key_path())
    return new, retired


__all__ = ["KeySetError", "SigningKeyError", "certificate_sign", "keyring_path", "keys_document", "published_keys",
           "signing_key", "signing_key_rotate"]
