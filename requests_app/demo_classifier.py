"""``manage.py demo --family image_classifier|tabular_classifier`` (issue 19 item 6).

One erasure request against a classifier through the same service path as the LM demo: an ML
operator onboards the corpus (scikit-learn's bundled ``load_digits`` with deterministically
assigned data subjects, or ``load_breast_cancer`` with one subject per patient; see
:mod:`unlearning_engine.families.classifier.data`) and the model through the REST API, prepares
the DP base; a data owner files a request and confirms the e-mailed code; a reviewer resolves the
forget set (the subject's records, by provenance); the exact-retrain reference is trained; an
approver approves the method; the job unlearns, evaluates with the ``classifier`` profile,
publishes and certifies; a comparison job runs ``laf`` (no labels); the certificate is verified
offline with ``python -m evaluation.certificate verify FILE --keys KEYS.json``.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError

from .artifacts import artifact_store
from .models import EvaluationReport, TrainingCorpus, TrainingRecord


def classifier_corpus_jsonl(out: Path, family: str) -> tuple[Path, dict]:
    """The family's default corpus as onboarding JSONL (``features``, ``label``, ``kind``, ``split``,
    ``subject_id``, ``subject_name``); returns (path, the network config)."""
    from unlearning_engine.families.classifier.data import breast_cancer_corpus, digits_corpus

    corpus = digits_corpus() if family == "image_classifier" else breast_cancer_corpus()
    kind = "image" if family == "image_classifier" else "tabular"
    with open(out, "w") as fh:
        for r in corpus["rows"]:
            fh.write(json.dumps({"features": r["features"], "label": r["label"], "kind": kind, "split": r["split"],
                                 "subject_id": r["subject_id"], "subject_name": r["subject_name"]}) + "\n")
    return out, corpus["config"]


def classifier_artifacts_train(*, examples, config: dict, name: str, seed: int = 0) -> dict:
    """The operator's own training, outside the service: the seeded initialisation (the "base" that
    ``retrain`` restarts from) and the target model trained with the family's default recipe on
    ``examples``; both put in the artifact store. Returns URIs, sha256 and the training seconds."""
    from unlearning_engine.families.classifier.model import (
        ClassifierConfig,
        build_classifier,
        save_classifier,
    )
    from unlearning_engine.families.classifier.train import DEFAULT_RECIPE, train_classifier

    cfg = ClassifierConfig(**config)
    store = artifact_store()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base_sha = save_classifier(build_classifier(cfg, seed), tmp / "base")
        model = build_classifier(cfg, seed)
        t0 = time.monotonic()
        train_classifier(model, examples, seed=seed, **DEFAULT_RECIPE[cfg.family])
        seconds = time.monotonic() - t0
        target_sha = save_classifier(model, tmp / "target")
        return {"base_uri": store.put_dir(tmp / "base", f"training/{name}/base"), "base_sha256": base_sha,
                "target_uri": store.put_dir(tmp / "target", f"training/{name}/v0"), "target_sha256": target_sha,
                "train_seconds": seconds}


def run_classifier_demo(cmd, opts: dict, out_dir: Path, run: str) -> dict:
    """The demo's steps for a classifier family (module docstring); returns the summary dict."""
    from .services.manifests import record_to_example

    say, family = cmd.stdout.write, opts["family"]
    timings: dict[str, float] = {}
    operator, owner_api, reviewer_api, approver_api, operator_api, owner = cmd._people(run)
    t0 = time.monotonic()
    jsonl, config = classifier_corpus_jsonl(out_dir / f"{family}.jsonl", family)
    with open(jsonl, "rb") as fh:
        prep = cmd._call(operator_api, "post", "/api/v1/corpora/", {"name": f"{family}-{run}", "file": fh},
                         expect=(202,), fmt="multipart")
    prep = cmd._wait(operator_api, prep)
    corpus = TrainingCorpus.objects.get(pk=prep["result"]["corpus"])
    timings["ingest"] = time.monotonic() - t0
    rep = prep["result"]["report"]
    say(f"[1/6] ingested {rep['train']} {corpus.kind} records (+{rep['holdout']} holdout) of "
        f"{rep['subjects']} data subjects in {timings['ingest']:.1f} s")

    records = corpus.records.filter(split=TrainingRecord.SPLIT_TRAIN).select_related("subject").order_by("index")
    art = classifier_artifacts_train(examples=[record_to_example(r) for r in records], config=config,
                                     name=f"demo-{run}")
    timings["train_target"] = art["train_seconds"]
    model = cmd._call(operator_api, "post", "/api/v1/models/", {
        "name": f"demo-{family}-{run}", "corpus": corpus.name, "family": family, "artifact_uri": art["target_uri"],
        "weights_sha256": art["target_sha256"], "base_artifact_uri": art["base_uri"],
        "base_sha256": art["base_sha256"]}, expect=(201,))
    prep = cmd._wait(operator_api, cmd._call(operator_api, "post", f"/api/v1/models/{model['id']}/prepare/",
                                             {"kind": "dp_base"}, expect=(202,)))
    ledger = prep["result"]["privacy_ledger"]
    timings["train_dp_base"] = ledger.get("wall_seconds") or prep["device_seconds"]
    say(f"[2/6] registered {family} '{model['name']}' (target trained in {timings['train_target']:.1f} s); DP base: "
        f"ε={ledger['epsilon']:.2f} per data subject, δ={ledger['delta']:.1e}, σ={ledger['noise_multiplier']:.2f}, "
        f"{timings['train_dp_base']:.1f} s")

    subject = records.last().subject
    ticket = cmd._call(owner_api, "post", "/api/v1/tickets/", {
        "subject_id": str(subject.public_id), "jurisdiction": "GDPR", "legal_ground": "art17_1_b",
        "description": "I withdraw my consent; please remove my images from your model."})
    code = next(m.group(1) for m in (re.search(r" is (\d{6})", e.body) for e in reversed(mail.outbox)) if m)
    tid = ticket["id"]
    cmd._call(owner_api, "post", f"/api/v1/tickets/{tid}/verify-identity/", {"code": code})
    cmd._call(reviewer_api, "post", f"/api/v1/tickets/{tid}/review/")
    record_ids = [r["id"] for r in cmd._call(reviewer_api, "get", f"/api/v1/tickets/{tid}/resolution/")]
    say(f"[3/6] ticket {tid} for '{subject.display_name}' filed and verified; {len(record_ids)} records resolved")
    prep = cmd._wait(operator_api, cmd._call(operator_api, "post", f"/api/v1/models/{model['id']}/prepare/",
                                             {"kind": "reference", "record_ids": record_ids}, expect=(202,)))
    timings["retrain_reference"] = prep["result"]["train_seconds"]
    say(f"[4/6] exact-retrain reference trained in {timings['retrain_reference']:.1f} s")

    method = opts.get("method") or "dp2"
    t0 = time.monotonic()
    job = cmd._call(approver_api, "post", f"/api/v1/tickets/{tid}/approve/", {"method": method, "record_ids": record_ids})
    timings[f"{method}_job"] = time.monotonic() - t0
    job = cmd._call(approver_api, "get", f"/api/v1/jobs/{job['id']}/")
    ticket = cmd._call(owner_api, "get", f"/api/v1/tickets/{tid}/")
    say(f"[5/6] {method} job {job['status']} in {timings[f'{method}_job']:.1f} s; ticket is '{ticket['status']}'"
        + (f" — {job['error']}" if job["error"] else ""))
    comparison = {}
    if not opts["no_comparison"]:
        comparison = cmd._call(approver_api, "post", f"/api/v1/tickets/{tid}/compare/", {"method": "laf"})
        comparison = cmd._call(approver_api, "get", f"/api/v1/jobs/{comparison['id']}/")
    verified = None
    if ticket["status"] == "certified":
        certificate = cmd._call(owner_api, "get", f"/api/v1/tickets/{tid}/certificate/")
        document = {k: certificate[k] for k in ("payload", "signature", "key_id", "algorithm", "transparency")
                    if certificate.get(k) is not None}  # the audit-log inclusion proof travels with it
        cert_path, keys_path = out_dir / "certificate.json", out_dir / "keys.json"
        cert_path.write_text(json.dumps(document, indent=2, ensure_ascii=False))
        call_command("certificate_keys_export", str(keys_path))
        proc = subprocess.run([sys.executable, "-m", "evaluation.certificate", "verify", str(cert_path),
                               "--keys", str(keys_path)], capture_output=True, text=True, check=False)
        verified = proc.returncode == 0
        say(f"[6/6] certificate {document['payload']['certificate_id']} (profile "
            f"'{document['payload']['evaluation_profile'].get('name')}') written to {cert_path}; offline "
            f"verification: {(proc.stdout or proc.stderr).strip()[:200]}")
    else:
        say(f"[6/6] no certificate: the {method} verdict did not pass (see the table)")
    rows = _table(cmd, job, comparison, method, timings)
    return {"ticket": ticket, "job": job, "comparison_job": comparison, "timings_s": timings, "table": rows,
            "certificate_verified_offline": verified}


def _table(cmd, job: dict, comparison: dict, method: str, timings: dict) -> list[dict]:
    reports = {r.role: r for r in EvaluationReport.objects.filter(job__public_id=job["id"])}
    cmp_reports = {r.role: r for r in EvaluationReport.objects.filter(job__public_id=comparison.get("id"))}
    entries = [("original (target)", reports.get("original"), None),
               ("retrained (exact)", reports.get("retrained"), timings.get("retrain_reference")),
               (f"{method} (published)", reports.get("unlearned"), (job.get("result") or {}).get("wall_seconds")),
               ("laf (comparison)", cmp_reports.get("unlearned"), (comparison.get("result") or {}).get("wall_seconds"))]
    header = (f"{'model':20} {'UA':>18} {'RA':>18} {'TA':>18} {'MIA-Eff.':>18} {'U-LiRA acc.':>18} {'train s':>8}"
              "  verdict")
    cmd.stdout.write("")
    cmd.stdout.write(header)
    cmd.stdout.write("-" * len(header))
    rows = []
    for label, report, seconds in entries:
        if report is None:
            continue
        m = report.metrics

        def fmt(k, m=m):
            v = m.get(k) or {}
            if v.get("value") is None:
                return "undef."
            ci = v.get("ci95")
            return f"{v['value']:.1f}" + (f" [{ci[0]:.1f},{ci[1]:.1f}]" if ci else "")
        verdict = "" if report.passed is None else ("PASS" if report.passed else "FAIL")
        failed = [c["name"] for c in (report.verdicts or {}).get("checks", []) if not c["passed"]]
        if failed:
            verdict += " failed: " + ",".join(failed)
        unsure = [c["name"] for c in (report.verdicts or {}).get("checks", []) if c.get("status") == "inconclusive"]
        if unsure:
            verdict += " inconclusive: " + ",".join(unsure)
        gap = ((report.verdicts or {}).get("gaps") or {}).get("average")
        if gap is not None:
            verdict += f" (avg gap {gap:.2f})"
        ulira = fmt("ulira_accuracy") if "ulira_accuracy" in m else "not run"
        cmd.stdout.write(f"{label:20} {fmt('ua'):>18} {fmt('ra'):>18} {fmt('ta'):>18} {fmt('mia_efficacy'):>18} "
                         f"{ulira:>18} "
                         f"{(f'{seconds:.1f}' if seconds is not None else ''):>8}  {verdict}")
        rows.append({"model": label, "metrics": m, "verdict": verdict, "train_seconds": seconds})
    n = (reports.get("unlearned").metrics.get("ua") or {}).get("n") if reports.get("unlearned") else None
    cmd.stdout.write(f"percent; 95% Clopper-Pearson CIs in brackets; forget n = {n}; stage timings (s): "
                     + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    if not rows:
        raise CommandError("no evaluation reports")
    return rows
