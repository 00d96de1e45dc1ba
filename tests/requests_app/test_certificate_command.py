"""``manage.py verify_certificate``: exit 0 for a valid certificate, non-zero with a reason otherwise."""
import json
import subprocess
import sys
from pathlib import Path

from evaluation.certificate import sign_certificate
from requests_app.certificates import signing_key

ROOT = Path(__file__).resolve().parents[2]


def _run(path, env_key):
    import os

    env = {**os.environ, "CERTIFICATE_SIGNING_KEY_PATH": str(env_key)}
    return subprocess.run([sys.executable, "manage.py", "verify_certificate", str(path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_valid_then_one_changed_byte(tmp_path, settings):
    settings.CERTIFICATE_SIGNING_KEY_PATH = tmp_path / "key.pem"
    doc = sign_certificate({"certificate_id": "c1", "forget_set": {"count": 20}}, signing_key())
    good = tmp_path / "good.json"
    good.write_text(json.dumps(doc))
    ok = _run(good, settings.CERTIFICATE_SIGNING_KEY_PATH)
    assert ok.returncode == 0, ok.stderr
    assert "VALID" in ok.stdout
    raw = json.dumps(doc).replace('"count": 20', '"count": 21')
    bad = tmp_path / "bad.json"
    bad.write_text(raw)
    res = _run(bad, settings.CERTIFICATE_SIGNING_KEY_PATH)
    assert res.returncode == 1 and "INVALID" in res.stderr
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    res = _run(garbage, settings.CERTIFICATE_SIGNING_KEY_PATH)
    assert res.returncode == 1 and "cannot read" in res.stderr
