"""Artifact store behind one interface (DESIGN §2): a local directory by default.

URIs: ``file:///abs/path/key``. The S3 backend (``s3://bucket/prefix``) is added with the worker
fault-tolerance work (issue 7); until then a non-file URL is refused with a clear error.
"""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from urllib.parse import urlparse

from django.conf import settings


class ArtifactStoreError(Exception):
    """The store is misconfigured or unreachable, or an artifact is missing or corrupt."""


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


class LocalArtifactStore:
    """Artifacts as directories under a root folder."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def uri_for(self, key: str) -> str:
        return (self.root / key).resolve().as_uri()

    def put_dir(self, local_dir: Path, key: str) -> str:
        """Copy ``local_dir`` to ``key`` (replacing a partial copy) and return its URI."""
        dest = self.root / key
        if Path(local_dir).resolve() != dest.resolve():
            tmp = dest.with_name(dest.name + ".partial")
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(local_dir, tmp)
            shutil.rmtree(dest, ignore_errors=True)
            tmp.rename(dest)
        return self.uri_for(key)

    def local_dir(self, uri: str) -> Path:
        """A local directory holding the artifact at ``uri``.

        Raises:
            ArtifactStoreError: the artifact is missing.
        """
        parsed = urlparse(uri)
        if parsed.scheme != "file":
            raise ArtifactStoreError(f"not a local artifact URI: {uri}")
        path = Path(parsed.path)
        if not path.is_dir():
            raise ArtifactStoreError(f"artifact missing: {uri}")
        return path


def artifact_store() -> LocalArtifactStore:
    """The configured store (``ARTIFACT_STORE_URL``).

    Raises:
        ArtifactStoreError: for an unsupported URL scheme.
    """
    parsed = urlparse(settings.ARTIFACT_STORE_URL)
    if parsed.scheme == "file":
        root = Path(parsed.path)
        root.mkdir(parents=True, exist_ok=True)
        return LocalArtifactStore(root)
    raise ArtifactStoreError(f"unsupported ARTIFACT_STORE_URL scheme '{parsed.scheme}' (use file://)")


def artifact_fetch_verified(uri: str, expected_sha256: str) -> Path:
    """Local directory of an artifact whose ``model.safetensors`` matches ``expected_sha256``.

    Raises:
        ArtifactStoreError: missing artifact or digest mismatch (a corrupt or swapped model).
    """
    path = artifact_store().local_dir(uri)
    weights = path / "model.safetensors"
    if not weights.exists():
        raise ArtifactStoreError(f"artifact {uri} has no model.safetensors")
    actual = file_sha256(weights)
    if expected_sha256 and actual != expected_sha256:
        raise ArtifactStoreError(f"artifact {uri} is corrupt: sha256 {actual} != recorded {expected_sha256}")
    return path
