"""Certificate building, signing-key handling and verification on the Django side (DESIGN §8)."""
from __future__ import annotations

import functools
import subprocess
import uuid
from importlib import metadata

from django.conf import settings

from evaluation.certificate import VerificationResult, verify_certificate
from evaluation.certificate_keys import KeySetError

from . import certificate_keys

LIMITATIONS = [
    "Unlearning is verified empirically on the forget set named by its digest; records of the data subject "
    "outside the resolved forget set are not covered.",
]
# What the attacks and KnowMem prompts did not cover is stated once, by the verdict's ``not_verified``
# (evaluation.verdicts.BASE_NOT_VERIFIED, profile-aware); repeating it here contradicted it (issue 21 item 14).
DP_LIMITATION = (
    "The unlearned model is a post-processing of the DP base model and the retain set; its formal (epsilon, delta) "
    "statement is the DP base's, per privacy unit (one data subject for subject-level DP-SGD, one training record "
    "for record-level DP-SGD, where a subject's bound is group privacy over their records)."
)


def signing_key():
    """The service's current Ed25519 private key (issuer side; created under ``var/keys`` on first
    use in dev). See :mod:`requests_app.certificate_keys`."""
    return certificate_keys.signing_key()


def published_public_keys() -> dict:
    """key id → :class:`evaluation.certificate_keys.PublishedKey` (current and retired keys with
    their validity); reads the published key set only, never creates a key."""
    return certificate_keys.published_keys()


def certificate_verify_document(document):
    """Verify a certificate document (JSON bytes/text, parsed strictly, or a dict) against the
    published keys; returns ``evaluation.certificate.VerificationResult``. Never creates a key."""
    try:
        keys = published_public_keys()
    except KeySetError as exc:
        return VerificationResult(False, f"the published key set is unusable: {exc}")
    return verify_certificate(document, keys)


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


def dp_limitations(model) -> list[str]:
    """Limitations of the DP statement: :data:`DP_LIMITATION` plus those the ledger records."""
    ledger = model.privacy_ledger or {}
    extra = [str(x) for x in ledger.get("limitations") or [] if isinstance(x, str)]
    if ledger.get("noise_source"):
        extra.append(f"DP noise and sampling randomness: {ledger['noise_source']}.")
    return [DP_LIMITATION] + extra


def dp_guarantee(model, k_records: int) -> dict | None:
    """DESIGN §6.4 / issue 12 statement for a data subject with ``k_records`` forgotten records.

    Subject-level ledger (every record linked to its subject): the DP base's (ε, δ) holds per data
    subject directly, whatever k (Chua et al., arXiv 2406.14322 §3: the unit is the subject). Otherwise
    (record-level, or records without a subject link): group privacy over the subject's k records,
    (kε, k·e^{(k−1)ε}·δ) (Vadhan 2017, Lemma 2.2). The statement is ``claimed`` only when that bound is within
    the policy (``DP_POLICY_MAX_EPSILON``, ``DP_POLICY_MAX_DELTA``: ε ≤ 10 and δ < 1e-5 by default), the
    achieved ε is ≤ the target and the tokenizer is pre-trained or trained on a public corpus; otherwise
    ``claimed`` is false, the reasons are listed and no per-subject number is given as a guarantee (the group
    bound is kept under ``group_bound_not_a_guarantee`` with δ capped at 1). Returns None without a ledger.
    """
    from unlearning_engine.dp import group_privacy

    ledger = model.privacy_ledger or {}
    if not ledger or "epsilon" not in ledger:
        return None
    eps, delta = float(ledger["epsilon"]), float(ledger["delta"])
    k = max(1, int(k_records))
    unit = ledger.get("privacy_unit", "record")
    per_subject_unit = unit == "subject" and int(ledger.get("records_without_subject", 1) or 0) == 0
    eps_s, delta_s = (eps, delta) if per_subject_unit else group_privacy(eps, delta, k)
    delta_s = min(delta_s, 1.0)
    max_eps = float(getattr(settings, "DP_POLICY_MAX_EPSILON", 10.0))
    max_delta = float(getattr(settings, "DP_POLICY_MAX_DELTA", 1e-5))
    reasons = []
    if eps_s > max_eps or delta_s >= max_delta:
        reasons.append(
            f"No meaningful differential-privacy guarantee holds for this data subject: the bound for their "
            f"{k} records is epsilon = {eps_s:.4g}, delta = {delta_s:.3g}, outside the policy "
            f"(epsilon <= {max_eps:g}, delta < {max_delta:g}).")
    target = ledger.get("target_epsilon")
    if target is not None and eps > float(target) + 1e-9:
        reasons.append(f"The achieved epsilon {eps:.4g} exceeds the target {float(target):g}.")
    prov = ledger.get("tokenizer_provenance")
    kind = prov.get("kind") if isinstance(prov, dict) else "unrecorded"
    if kind not in ("pretrained", "public_corpus", "not_applicable"):  # classifiers: no tokenizer (issue 19)
        reasons.append(f"The tokenizer's provenance is '{kind}', not a pre-trained or public-corpus tokenizer: "
                       "data outside the DP mechanism may depend on the private corpus.")
    claimed = not reasons
    if claimed and per_subject_unit:
        statement = (f"The DP base model is ({eps_s:.4g}, {delta_s:.3g})-differentially private per data subject "
                     f"(privacy unit: all of one subject's records, {ledger.get('n_units')} units); the unlearned "
                     "model is a post-processing of the DP base and the retain set, so this bound holds for this "
                     f"subject whatever the number of their records ({k}).")
    elif claimed:
        statement = (f"The DP base model is ({eps:.4g}, {delta:.3g})-DP per training record; by group privacy the "
                     f"unlearned model is ({eps_s:.4g}, {delta_s:.3g})-indistinguishable for this subject's {k} "
                     "records.")
    else:
        statement = "Differential privacy is not claimed for this data subject. " + " ".join(reasons)
    return {
        "claimed": claimed,
        "statement": statement,
        "not_claimed_reasons": reasons,
        "mechanism": "DP-SGD base model; unlearned model = post-processing of the DP base and the retain set",
        "privacy_unit": "subject" if per_subject_unit else "record",
        "ledger_privacy_unit": unit,
        "k_records": k,
        "per_subject_epsilon": eps_s if claimed else None,
        "per_subject_delta": delta_s if claimed else None,
        "group_bound_not_a_guarantee": None if claimed else {"epsilon": eps_s, "delta": delta_s},
        "per_unit_epsilon": eps,
        "per_unit_delta": delta,
        "per_record_epsilon": eps if not per_subject_unit else None,
        "per_record_delta": delta if not per_subject_unit else None,
        "target_epsilon": target,
        "policy": {"max_epsilon": max_eps, "max_delta": max_delta},
        "n_units": ledger.get("n_units"),
        "n_records": ledger.get("n_records"),
        "max_records_per_unit": ledger.get("max_records_per_unit"),
        "accountant": ledger.get("accountant"),
        "accountant_epsilons": ledger.get("epsilons"),
        "rdp_optimal_order": ledger.get("rdp_optimal_order"),
        "noise_multiplier": ledger.get("noise_multiplier"),
        "max_grad_norm": ledger.get("max_grad_norm"),
        "sample_rate": ledger.get("sample_rate"),
        "steps": ledger.get("steps"),
        "tokenizer_provenance": prov if isinstance(prov, dict) else {"kind": "unrecorded"},
        "dp_base_sha256": model.dp_base_sha256,
        "source": "DP2Unlearning (arXiv 2504.13774) §3; user-level DP-SGD (Chua et al., arXiv 2406.14322 §3); "
                  "group privacy (Vadhan 2017, Lemma 2.2)",
    }


def evaluation_manifest_summary(job, reports: dict) -> dict | None:
    """The certificate's ``evaluation_manifest`` block (issue 23): the summary of the manifest the
    job stored before training (``job.result["evaluation_manifest"]``), its digest recomputed here;
    ``None`` for a job without one (jobs from before manifests).

    Raises:
        ServiceError: a report was not computed on that manifest (its ``manifest_sha256`` differs),
            so the metrics are not tied to it; no certificate is issued.
    """
    from evaluation.manifest import EvaluationManifest

    from .services import ServiceError

    data = (job.result or {}).get("evaluation_manifest")
    if not data:
        return None
    summary = EvaluationManifest.from_dict(data).summary()
    stray = sorted(role for role, (_, report) in reports.items() if report.get("manifest_sha256") != summary["sha256"])
    if stray:
        raise ServiceError(f"the {', '.join(stray)} report(s) were not computed on the job's evaluation manifest "
                           f"{summary['sha256'][:16]}...; no certificate is issued")
    return summary


def evaluation_attachments(job) -> list[dict] | None:
    """Attachments the operator asked for (``settings.CERTIFICATE_RESTOR_REPORT``, issue 16): the
    RESTOR knowledge-recovery block of the job's method with its figure
    (:func:`evaluation.profiles.restor_attachment.restor_attachment_from_file`); ``None`` when
    none is configured.

    Raises:
        ServiceError: the configured report or its figure is missing or unusable (no certificate
            is issued without what the operator asked to attach).
    """
    from evaluation.profiles.restor_attachment import restor_attachment_from_file

    from .services import ServiceError

    path = getattr(settings, "CERTIFICATE_RESTOR_REPORT", "")
    if not path:
        return None
    try:
        return [restor_attachment_from_file(path, job.method)]
    except (OSError, ValueError) as exc:
        raise ServiceError(f"the RESTOR report to attach ({path}) is unusable: {exc}; no certificate is issued") from exc


def _tickets_and_subjects(job, now) -> tuple[list, list, dict]:
    tickets = list(job.tickets.select_related("subject").order_by("id"))
    per_subject_k: dict[str, int] = {}
    for t in tickets:
        sid = str(t.subject.public_id)
        per_subject_k[sid] = per_subject_k.get(sid, 0) + len(t.resolved_record_ids)
    rows = [
        {
            "id": str(t.public_id),
            "jurisdiction": t.jurisdiction,
            "legal_ground": t.legal_ground,
            "received_at": t.received_at.isoformat(),
            "due_at": t.due_at.isoformat(),
            "deadline_met": now <= t.due_at,
        }
        for t in tickets
    ]
    return rows, sorted(per_subject_k), per_subject_k


def _common_payload(*, job, version, verdicts, reports, now, schema) -> dict:
    tickets, subjects, _ = _tickets_and_subjects(job, now)
    return {
        "certificate_id": str(uuid.uuid4()),
        "schema": schema,
        "issued_at": now.isoformat(),
        "issuer": settings.CERTIFICATE_ISSUER,
        "tickets": tickets,
        "subjects": subjects,
        "model": {"id": job.model.pk, "name": job.model.name, "architecture": job.model.architecture},
        "version_before": _version_summary(job.source_version),
        "version_after": _version_summary(version),
        "job": {"id": str(job.public_id), "method": job.method, "hyperparameters": job.result.get("hyperparameters", job.hyperparameters),
                "device_seconds": job.device_seconds, "code_version": code_version()},
        "forget_set": {"sha256": job.forget_set_sha256, "count": job.forget_count,
                       "digest_rule": "sha256 of the newline-joined sorted per-record sha256 digests"},
        "evaluation_manifest": evaluation_manifest_summary(job, reports),
        "evaluation_profile": reports.get("unlearned", (None, {}))[1].get("profile", {}),
        "metrics": {role: report.get("metrics", {}) for role, (_, report) in reports.items()},
        "verdicts": verdicts,
        **({"evaluation_attachments": att} if (att := evaluation_attachments(job)) else {}),
        # the document carries the audit-log inclusion proof of its issuance event (``transparency``,
        # evaluation.audit_log): declared inside the signature so that stripping it is detected
        "audit_log": {"inclusion": "audit-inclusion/1"},
    }


def certificate_build(*, job, version, verdicts: dict, reports: dict) -> dict:
    """Signed erasure certificate (schema ``erasure-certificate/1``, DESIGN §8) for a job whose
    weights changed (the caller, ``services.job_finish``, checks it; the database refuses an
    erasure certificate with equal weights sha256 before and after). Never holds names or
    record text. Returns ``{payload, signature, key_id, algorithm}``."""
    def make(now):
        payload = _common_payload(job=job, version=version, verdicts=verdicts, reports=reports, now=now,
                                  schema="erasure-certificate/1")
        _, _, per_subject_k = _tickets_and_subjects(job, now)
        payload["weights_changed"] = True
        payload["dp_guarantee"] = (dp_guarantee(job.model, max(per_subject_k.values(), default=1))
                                   if job.method == "dp2" else None)
        payload["limitations"] = (LIMITATIONS + (dp_limitations(job.model) if job.method == "dp2" else [])
                                  + list(verdicts.get("not_verified", [])))
        return payload

    return certificate_keys.certificate_sign(make)


SUPPRESSION_STATEMENT = (
    "This is not an erasure certificate. The model's weights did not change (weights sha256 before "
    "= after): they still hold the data of the forget set. The method only suppresses outputs at "
    "inference time; the data can be recovered from the weights, by a prompt the suppression does not "
    "flag, or by anyone who runs the weights without the suppression. The erasure request remains open."
)


def suppression_notice_build(*, job, version, verdicts: dict, reports: dict, reason: str) -> dict:
    """Signed suppression notice (schema ``suppression-notice/1``) for a job whose weights did
    not change (e.g. ``eco``, DESIGN §5: inference-time suppression). States that the weights
    still hold the data, never claims erasure, never carries a DP guarantee. ``reason`` says why
    the weights count as unchanged. Returns ``{payload, signature, key_id, algorithm}``."""
    def make(now):
        payload = _common_payload(job=job, version=version, verdicts=verdicts, reports=reports, now=now,
                                  schema="suppression-notice/1")
        payload.update({
            "weights_changed": False,
            "erasure_certified": False,
            "statement": SUPPRESSION_STATEMENT,
            "reason": reason,
            "suppression": {"method": job.method, "details": (job.result or {}).get("details", {})},
            "limitations": [
                SUPPRESSION_STATEMENT,
                "The checks below measure the suppressed model's outputs on the evaluated prompts only.",
            ] + list(verdicts.get("not_verified", [])),
        })
        return payload

    return certificate_keys.certificate_sign(make)
