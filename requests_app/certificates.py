"""Certificate building, signing-key handling and verification on the Django side (DESIGN §8)."""
from __future__ import annotations

import functools
import subprocess
import uuid
from importlib import metadata
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from evaluation.certificate import (
    key_id,
    load_or_create_signing_key,
    sign_certificate,
    verify_certificate,
)

LIMITATIONS = [
    "Unlearning is verified empirically on the forget set named by its digest; records of the data subject "
    "outside the resolved forget set are not covered.",
    "Membership inference is measured with Min-K% Prob only; stronger or adaptive attacks were not run.",
    "Knowledge memorisation is measured with the training questions' template, not paraphrases.",
]
DP_LIMITATION = (
    "The formal (epsilon, delta) statement holds per training record for the DP base model; the unlearned model "
    "is a post-processing of the DP base and the retain set, so the bound is group privacy over the subject's "
    "forgotten records."
)


def signing_key():
    """The service's Ed25519 private key (created under ``var/keys`` on first use in dev)."""
    return load_or_create_signing_key(settings.CERTIFICATE_SIGNING_KEY_PATH)


def published_public_keys() -> dict:
    """key id → public key: the current signing key plus any retired keys in ``keys/public/*.pem``."""
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    current = signing_key().public_key()
    keys = {key_id(current): current}
    public_dir = Path(settings.CERTIFICATE_SIGNING_KEY_PATH).parent / "public"
    if public_dir.is_dir():
        for pem in sorted(public_dir.glob("*.pem")):
            pub = load_pem_public_key(pem.read_bytes())
            keys[key_id(pub)] = pub
    return keys


def certificate_verify_document(document: dict):
    """Verify a certificate document against the published keys (returns ``VerificationResult``)."""
    return verify_certificate(document, published_public_keys())


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """Package version plus git commit when running from a checkout."""
    try:
        version = metadata.version("unlearning-compliance")
    except metadata.PackageNotFoundError:
        version = "0+unknown"
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=settings.BASE_DIR, capture_output=True,
            text=True, timeout=5, check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{version}+g{sha}" if sha else version


def _version_summary(version) -> dict | None:
    if version is None:
        return None
    return {"id": version.pk, "sequence": version.sequence, "role": version.role,
            "weights_sha256": version.weights_sha256}


def dp_guarantee(model, k_records: int) -> dict | None:
    """DESIGN §6.4 statement for a subject with ``k_records`` forgotten records, from the model's ledger."""
    from unlearning_engine.dp import group_privacy

    ledger = model.privacy_ledger or {}
    if not ledger or "epsilon" not in ledger:
        return None
    eps_eff, delta_eff = group_privacy(float(ledger["epsilon"]), float(ledger["delta"]), max(1, k_records))
    return {
        "mechanism": "DP-SGD base model (opacus), unlearned model = post-processing of the DP base and the retain set",
        "per_record_epsilon": ledger["epsilon"],
        "per_record_delta": ledger["delta"],
        "k_records": k_records,
        "per_subject_epsilon": eps_eff,
        "per_subject_delta": delta_eff,
        "accountant": ledger.get("accountant"),
        "noise_multiplier": ledger.get("noise_multiplier"),
        "sample_rate": ledger.get("sample_rate"),
        "steps": ledger.get("steps"),
        "dp_base_sha256": model.dp_base_sha256,
        "source": "DP2Unlearning (arXiv 2504.13774) §3; group privacy (Dwork & Roth 2014, Thm 2.2 / Lemma 2.2)",
    }


def certificate_build(*, job, version, verdicts: dict, reports: dict) -> dict:
    """Canonical payload of DESIGN §8, signed with the service key. Never holds names or record text."""
    tickets = list(job.tickets.select_related("subject").order_by("id"))
    now = timezone.now()
    subjects = sorted({str(t.subject.public_id) for t in tickets})
    per_subject_k = {}
    for t in tickets:
        per_subject_k[str(t.subject.public_id)] = per_subject_k.get(str(t.subject.public_id), 0) + len(t.resolved_record_ids)
    payload = {
        "certificate_id": str(uuid.uuid4()),
        "schema": "erasure-certificate/1",
        "issued_at": now.isoformat(),
        "issuer": settings.CERTIFICATE_ISSUER,
        "tickets": [
            {
                "id": str(t.public_id),
                "jurisdiction": t.jurisdiction,
                "legal_ground": t.legal_ground,
                "received_at": t.received_at.isoformat(),
                "due_at": t.due_at.isoformat(),
                "deadline_met": now <= t.due_at,
            }
            for t in tickets
        ],
        "subjects": subjects,
        "model": {"id": job.model.pk, "name": job.model.name, "architecture": job.model.architecture},
        "version_before": _version_summary(job.source_version),
        "version_after": _version_summary(version),
        "job": {"id": str(job.public_id), "method": job.method, "hyperparameters": job.result.get("hyperparameters", job.hyperparameters),
                "device_seconds": job.device_seconds, "code_version": code_version()},
        "forget_set": {"sha256": job.forget_set_sha256, "count": job.forget_count,
                       "digest_rule": "sha256 of the newline-joined sorted per-record sha256 digests"},
        "dp_guarantee": dp_guarantee(job.model, max(per_subject_k.values(), default=1)) if job.method == "dp2" else None,
        "evaluation_profile": reports.get("unlearned", (None, {}))[1].get("profile", {}),
        "metrics": {role: report.get("metrics", {}) for role, (_, report) in reports.items()},
        "verdicts": verdicts,
        "limitations": LIMITATIONS + ([DP_LIMITATION] if job.method == "dp2" else []) + list(verdicts.get("not_verified", [])),
    }
    return sign_certificate(payload, signing_key())
