"""Artifact store: local directory, and S3 through boto3 against moto's standalone server on loopback."""
import socket
import subprocess
import sys
import time

import pytest

from requests_app.artifacts import (
    ArtifactStoreError,
    LocalArtifactStore,
    S3ArtifactStore,
    artifact_fetch_verified,
    file_sha256,
)


def _artifact(tmp_path):
    d = tmp_path / "artifact"
    d.mkdir()
    (d / "model.safetensors").write_bytes(b"\x00weights" * 1000)
    (d / "config.json").write_text('{"a": 1}')
    return d


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def moto_server():
    """moto's standalone S3-compatible server on 127.0.0.1 (a real HTTP server, not an in-process mock)."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def s3_env(moto_server, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    return moto_server


def test_local_store_roundtrip_and_digest_check(tmp_path, settings):
    settings.ARTIFACT_STORE_URL = f"file://{tmp_path / 'store'}"
    store = LocalArtifactStore(tmp_path / "store")
    src = _artifact(tmp_path)
    uri = store.put_dir(src, "models/m/v0")
    sha = file_sha256(src / "model.safetensors")
    path = artifact_fetch_verified(uri, sha)
    assert (path / "config.json").read_text() == '{"a": 1}'
    assert (path / "MANIFEST.json").exists()
    with pytest.raises(ArtifactStoreError, match="corrupt"):
        artifact_fetch_verified(uri, "0" * 64)
    with pytest.raises(ArtifactStoreError, match="missing"):
        artifact_fetch_verified(store.uri_for("models/none"), sha)


def test_s3_store_roundtrip_through_moto_server(tmp_path, s3_env, settings):
    import boto3

    boto3.client("s3", endpoint_url=s3_env).create_bucket(Bucket="artifacts")
    settings.ARTIFACT_CACHE_DIR = tmp_path / "cache"
    store = S3ArtifactStore("artifacts", "prod", endpoint_url=s3_env, cache_dir=tmp_path / "cache")
    src = _artifact(tmp_path)
    uri = store.put_dir(src, "models/m/v0")
    assert uri == "s3://artifacts/prod/models/m/v0"
    path = artifact_fetch_verified(uri, file_sha256(src / "model.safetensors"))
    assert (path / "model.safetensors").read_bytes() == (src / "model.safetensors").read_bytes()
    with pytest.raises(ArtifactStoreError, match="missing"):
        store.local_dir("s3://artifacts/prod/models/absent")


def test_s3_unreachable_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    store = S3ArtifactStore("artifacts", "p", endpoint_url=f"http://127.0.0.1:{_free_port()}", cache_dir=tmp_path)
    store.client.meta.config.retries = {"max_attempts": 1}
    with pytest.raises(ArtifactStoreError, match="unreachable"):
        store.put_dir(_artifact(tmp_path), "k")


def test_health_endpoint_reports_each_component(client, users, tmp_path, settings):
    client.force_login(users["operator"])  # details are for staff; anonymous callers get {"ok"} only
    settings.ARTIFACT_STORE_URL = f"file://{tmp_path}"
    body = client.get("/healthz").json()
    assert body["ok"] is True
    assert body["checks"]["database"]["detail"] == "sqlite"
    assert body["checks"]["artifact_store"]["detail"] == "local"
    settings.ARTIFACT_STORE_URL = "ftp://nowhere/x"
    r = client.get("/healthz")
    assert r.status_code == 503 and r.json()["checks"]["artifact_store"]["ok"] is False
    assert "unsupported ARTIFACT_STORE_URL" in r.json()["checks"]["artifact_store"]["error"]
