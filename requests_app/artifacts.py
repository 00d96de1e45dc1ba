"""Artifact store behind one interface (DESIGN §2): a local directory by default, S3 in production.

* ``ARTIFACT_STORE_URL=file:///abs/root`` — artifacts are directories under the root; URIs ``file://…``.
* ``ARTIFACT_STORE_URL=s3://bucket/prefix`` (+ ``AWS_ENDPOINT_URL`` for S3-compatible stores) —
  each artifact directory is uploaded file by file with boto3 (multipart above 8 MiB, retries with
  back-off) next to a ``MANIFEST.json`` of sha256 digests; reads download into ``ARTIFACT_CACHE_DIR``
  and check every digest.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from urllib.parse import urlparse

from django.conf import settings

MANIFEST = "MANIFEST.json"


class ArtifactStoreError(Exception):
    """The store is misconfigured or unreachable, or an artifact is missing or corrupt."""


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """sha256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _dir_manifest(local_dir: Path) -> dict[str, dict]:
    return {
        str(p.relative_to(local_dir)): {"sha256": file_sha256(p), "bytes": p.stat().st_size}
        for p in sorted(Path(local_dir).rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }


class LocalArtifactStore:
    """Artifacts as directories under a root folder."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def uri_for(self, key: str) -> str:
        return (self.root / key).resolve().as_uri()

    def put_dir(self, local_dir: Path, key: str) -> str:
        """Copy ``local_dir`` to ``key`` atomically (a partial copy never becomes visible); return the URI."""
        dest = self.root / key
        if Path(local_dir).resolve() != dest.resolve():
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(dest.name + ".partial")
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(local_dir, tmp)
            (tmp / MANIFEST).write_text(json.dumps(_dir_manifest(tmp), indent=1, sort_keys=True))
            shutil.rmtree(dest, ignore_errors=True)
            tmp.rename(dest)
        return self.uri_for(key)

    def local_dir(self, uri: str) -> Path:
        """The local directory of ``uri``.

        Raises:
            ArtifactStoreError: not a file URI, or the artifact is missing.
        """
        parsed = urlparse(uri)
        if parsed.scheme != "file":
            raise ArtifactStoreError(f"not a local artifact URI: {uri}")
        path = Path(parsed.path)
        if not path.is_dir():
            raise ArtifactStoreError(f"artifact missing: {uri}")
        return path


class S3ArtifactStore:
    """Artifacts under ``s3://bucket/prefix/key/`` through boto3."""

    def __init__(self, bucket: str, prefix: str, *, endpoint_url: str | None = None, cache_dir: Path):
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.cache_dir = Path(cache_dir)
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint_url or None,
            config=Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=60),
        )
        self.transfer = TransferConfig(multipart_threshold=8 * 1024 * 1024, multipart_chunksize=8 * 1024 * 1024)

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}".strip("/")

    def uri_for(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def _wrap(self, action: str, uri: str, exc: Exception) -> ArtifactStoreError:
        from botocore.exceptions import ClientError

        if isinstance(exc, ClientError):
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("404", "NoSuchKey", "NoSuchBucket"):
                return ArtifactStoreError(f"artifact missing: {uri} ({code})")
            return ArtifactStoreError(f"artifact store refused {action} of {uri}: {code} {exc}")
        return ArtifactStoreError(f"artifact store unreachable during {action} of {uri}: {exc}")

    def put_dir(self, local_dir: Path, key: str) -> str:
        """Upload every file, then the manifest last (an artifact without manifest is incomplete)."""
        from botocore.exceptions import BotoCoreError, ClientError

        uri = self.uri_for(key)
        manifest = _dir_manifest(Path(local_dir))
        try:
            for rel in manifest:
                self.client.upload_file(str(Path(local_dir) / rel), self.bucket, f"{self._key(key)}/{rel}",
                                        Config=self.transfer)
            self.client.put_object(Bucket=self.bucket, Key=f"{self._key(key)}/{MANIFEST}",
                                   Body=json.dumps(manifest, sort_keys=True).encode())
        except (BotoCoreError, ClientError) as exc:
            raise self._wrap("upload", uri, exc) from exc
        return uri

    def local_dir(self, uri: str) -> Path:
        """Download (once, into the cache) and check every file against the manifest.

        Raises:
            ArtifactStoreError: unreachable store, missing artifact, or a digest mismatch.
        """
        from botocore.exceptions import BotoCoreError, ClientError

        parsed = urlparse(uri)
        if parsed.scheme != "s3" or parsed.netloc != self.bucket:
            raise ArtifactStoreError(f"artifact {uri} is not in bucket {self.bucket}")
        key = parsed.path.lstrip("/")
        dest = self.cache_dir / hashlib.sha256(uri.encode()).hexdigest()[:32]
        if (dest / MANIFEST).exists():
            return dest
        tmp = dest.with_name(dest.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=f"{key}/{MANIFEST}")["Body"].read()
            manifest = json.loads(body)
            for rel, meta in manifest.items():
                target = tmp / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                self.client.download_file(self.bucket, f"{key}/{rel}", str(target), Config=self.transfer)
                if file_sha256(target) != meta["sha256"]:
                    raise ArtifactStoreError(f"artifact {uri}: {rel} does not match its recorded sha256")
        except (BotoCoreError, ClientError) as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise self._wrap("download", uri, exc) from exc
        (tmp / MANIFEST).write_bytes(body)
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
        return dest


def artifact_store():
    """The configured store (``ARTIFACT_STORE_URL``).

    Raises:
        ArtifactStoreError: for an unsupported URL scheme.
    """
    parsed = urlparse(settings.ARTIFACT_STORE_URL)
    if parsed.scheme == "file":
        root = Path(parsed.path)
        root.mkdir(parents=True, exist_ok=True)
        return LocalArtifactStore(root)
    if parsed.scheme == "s3":
        import os

        return S3ArtifactStore(parsed.netloc, parsed.path, endpoint_url=os.environ.get("AWS_ENDPOINT_URL"),
                               cache_dir=settings.ARTIFACT_CACHE_DIR)
    raise ArtifactStoreError(f"unsupported ARTIFACT_STORE_URL scheme '{parsed.scheme}' (use file:// or s3://)")


def artifact_local_dir(uri: str) -> Path:
    """A local directory with the artifact at ``uri``, whatever store wrote it (file:// or s3://).

    Raises:
        ArtifactStoreError: unknown scheme, missing or corrupt artifact, unreachable store.
    """
    import os

    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return LocalArtifactStore(Path("/")).local_dir(uri)
    if parsed.scheme == "s3":
        return S3ArtifactStore(parsed.netloc, "", endpoint_url=os.environ.get("AWS_ENDPOINT_URL"),
                               cache_dir=settings.ARTIFACT_CACHE_DIR).local_dir(uri)
    raise ArtifactStoreError(f"unsupported artifact URI '{uri}'")


def artifact_fetch_verified(uri: str, expected_sha256: str) -> Path:
    """Local directory of an artifact whose ``model.safetensors`` matches ``expected_sha256``.

    Raises:
        ArtifactStoreError: missing artifact or digest mismatch (a corrupt or swapped model).
    """
    path = artifact_local_dir(uri)
    weights = path / "model.safetensors"
    if not weights.exists():
        raise ArtifactStoreError(f"artifact {uri} has no model.safetensors")
    actual = file_sha256(weights)
    if expected_sha256 and actual != expected_sha256:
        raise ArtifactStoreError(f"artifact {uri} is corrupt: sha256 {actual} != recorded {expected_sha256}")
    return path
