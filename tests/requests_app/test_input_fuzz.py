"""Issue 13 item 5: a fuzz run of our own (hypothesis) that generates the malformed classes the
bounded schemathesis run does not — impossible and extreme dates, integers beyond 64 bits,
NaN/Infinity/1e400, NUL and lone surrogates, deep nesting, over-long headers, wrong types — against
every POST endpoint of the API and the portal, as every role and anonymously: no answer may be 5xx."""
from __future__ import annotations

import json

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


class Raw(str):
    """JSON text inserted verbatim (what ``json.dumps`` cannot produce)."""


BAD_DATES = ["2026-02-30T10:00:00Z", "2026-02-29T00:00:00Z", "2026-13-01T00:00:00Z", "2026-01-01T24:00:00Z",
             "9999-12-31T23:59:59-05:00", "9999-12-31T23:59:59+14:00", "0001-01-01T00:00:00+05:00",
             "10000-01-01T00:00:00Z", "2026-01-01T10:00:00+99:99", "2026-01-01", "2026-01-01T10:00:00"]
RAW_NUMBERS = [Raw("NaN"), Raw("Infinity"), Raw("-Infinity"), Raw("1e400"), Raw("-1e999"), Raw("9" * 30),
               Raw("-" + "9" * 25), Raw(str(2**63)), Raw(str(2**64 + 1)), Raw("1" * 5000)]
NASTY_STRINGS = ["\x00", "a\x00b", "\ud800", "\udfff x", "x" * 20_000, "", " ", "../../etc/passwd",
                 "'; DROP TABLE x; --", "%00", "\u202e", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢"]
DEEP = [Raw("[" * n + "]" * n) for n in (40, 1000, 50_000)] + [Raw('{"a":' * 60 + "1" + "}" * 60)]

scalars = st.one_of(
    st.sampled_from(BAD_DATES), st.sampled_from(RAW_NUMBERS), st.sampled_from(NASTY_STRINGS),
    st.sampled_from(DEEP), st.integers(min_value=-(2**80), max_value=2**80), st.floats(allow_nan=False),
    st.booleans(), st.none(), st.text(max_size=30),
)
KEYS = ["a", "\x00", "lr", "epochs", "batch_size", "tickets", "limitations", "verdicts", "checks", "model",
        "forget_set", "count", "dp_guarantee", "name", "passed", "issued_at"]
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS), inner, max_size=3)),
    max_leaves=8)
#: certificate documents whose fields have any type (the portal check page and API verify)
certificate_like = st.fixed_dictionaries(
    {}, optional={"payload": st.one_of(values, st.dictionaries(st.sampled_from(KEYS), values, max_size=6)),
                  "signature": values, "key_id": values, "algorithm": st.one_of(st.just("Ed25519"), values)})


def render(value) -> str:
    """JSON text of ``value`` with :class:`Raw` parts verbatim (NaN, huge numbers, deep nesting)."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{render(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(render(v) for v in value) + "]"
    return json.dumps(value)


bodies = st.one_of(
    values.map(render),  # a top-level list, number, string, deep nesting...
    st.sampled_from(["", "{", "null", "[]", '{"a":1,}', "\x00", '"\\ud800"']),
)

ROLES = [None, "owner", "other_owner", "reviewer", "approver", "operator", "auditor"]
HEADERS = st.one_of(st.just({}), st.builds(lambda k: {"HTTP_IDEMPOTENCY_KEY": k}, st.one_of(
    st.sampled_from(["k" * 101, "k" * 10_000, "a b", "\t", "é", "%00"]), st.text(max_size=120))))

# (path template, the role allowed to call it, its real fields): bad values reach the validators and
# services instead of stopping at 401/403; one example in five uses another role.
API = [
    ("/api/v1/tickets/", "owner", ["subject_name", "subject_id", "jurisdiction", "legal_ground", "description",
                                   "evidence_text"]),
    ("/api/v1/tickets/", "reviewer", ["subject_name", "received_at", "jurisdiction", "description"]),
    ("/api/v1/certificates/verify/", None, ["payload", "signature", "key_id", "algorithm"]),
    ("/api/v1/certificates/verify/", None, ["payload", "signature", "key_id", "algorithm"]),
    ("/api/v1/tickets/{submitted}/verify-identity/", "owner", ["code"]),
    ("/api/v1/tickets/{submitted}/resend-code/", "owner", []),
    ("/api/v1/tickets/{submitted}/withdraw/", "owner", []),
    ("/api/v1/tickets/{in_review}/approve/", "approver", ["method", "hyperparameters", "record_ids", "model"]),
    ("/api/v1/tickets/{in_review}/deny/", "approver", ["exception_code", "reason"]),
    ("/api/v1/tickets/{in_review}/compare/", "operator", ["method", "hyperparameters"]),
    ("/api/v1/tickets/{in_review}/retry/", "operator", ["method", "hyperparameters"]),
    ("/api/v1/tickets/{in_review}/hold/", "reviewer", ["reason"]),
    ("/api/v1/tickets/{in_review}/release/", "reviewer", []),
    ("/api/v1/tickets/{in_review}/extend/", "reviewer", ["reason", "days", "months"]),
    ("/api/v1/tickets/{submitted}/review/", "reviewer", []),
    ("/api/v1/jobs/{job}/cancel/", "operator", ["reason"]),
]
PORTAL = [
    ("/signin/", None, ["email", "next"]),
    ("/requests/new/", "owner", ["subject_name", "scope", "description", "jurisdiction", "legal_ground",
                                 "idempotency_key", "upload", "target_model"]),
    ("/requests/{submitted}/verify/", "owner", ["code"]),
    ("/requests/{submitted}/resend-code/", "owner", []),
    ("/requests/{submitted}/withdraw/", "owner", []),
    ("/certificates/check/", None, ["document", "upload"]),
    ("/certificates/check/", None, ["document"]),  # anonymous and the most exposed: drawn more often
    ("/certificates/check/", None, ["document"]),
    ("/signin/link/{token}/", None, []),
    ("/dashboard/requests/{in_review}/approve/", "approver", ["method", "records", "hyperparameters"]),
    ("/dashboard/requests/{in_review}/deny/", "approver", ["exception_code", "reason"]),
    ("/dashboard/requests/{submitted}/review/", "reviewer", []),
]
VALID = {"subject_name": "{subject}", "jurisdiction": "GDPR", "method": "dp2", "code": "123456", "scope": "all",
         "exception_code": "art17_3_e", "reason": "fuzz", "algorithm": "Ed25519", "email": "fuzz@example.org"}


def _call(data, endpoints, t):
    """Draw an endpoint, a role and its field values (valid ones mixed with the bad classes)."""
    template, role, fields = data.draw(st.sampled_from(endpoints), label="endpoint")
    if data.draw(st.integers(0, 4), label="other role") == 0:
        role = data.draw(st.sampled_from(ROLES), label="role")
    path = template.format(submitted=t["tickets"][0], in_review=t["tickets"][1], job=t["job"],
                           token=data.draw(st.sampled_from(["x", "a" * 5000, "e30:1:2", "%00"]), label="token"))
    body = {}
    for name in fields:
        choice = data.draw(st.integers(0, 3), label=f"{name} kind")
        if choice == 0:
            continue
        if choice == 1 and name in VALID:
            body[name] = VALID[name].format(subject=t["subject"])
        elif name in ("document", "payload") and choice == 2:
            body[name] = data.draw(certificate_like, label=name)
            body[name] = body[name].get("payload", {}) if name == "payload" else body[name]
        elif name in ("document", "payload") and choice == 3:
            body[name] = data.draw(st.one_of(st.sampled_from(DEEP + RAW_NUMBERS), values), label=name)
        else:
            body[name] = data.draw(values, label=name)
    return path, role, body


@pytest.fixture
def targets(users, forget_subject, corpus):
    from rest_framework.authtoken.models import Token

    from requests_app import services
    from requests_app.models import ModelVersion, TargetModel, UnlearningJob

    submitted, _ = services.ticket_create(requester=users["owner"], subject=forget_subject)
    in_review, _ = services.ticket_create(requester=users["owner"], subject=forget_subject)
    from requests_app.models import RemovalTicket

    RemovalTicket.objects.filter(pk=in_review.pk).update(status="in_review")
    model = TargetModel.objects.create(name="fuzz", architecture="LlamaForCausalLM", tokenizer="bpe", corpus=corpus)
    v0 = ModelVersion.objects.create(model=model, sequence=0, artifact_uri="file:///nowhere", weights_sha256="0" * 64)
    job = UnlearningJob.objects.create(model=model, source_version=v0, method="dp2")
    job.tickets.add(submitted)
    tokens = {role: Token.objects.get_or_create(user=users[role])[0].key for role in ROLES if role}
    return {"tickets": [str(submitted.public_id), str(in_review.public_id)], "job": str(job.public_id),
            "tokens": tokens, "users": users, "subject": forget_subject.display_name}


FUZZ = settings(max_examples=200, deadline=None, derandomize=True,
                suppress_health_check=list(HealthCheck))


@pytest.mark.django_db
@FUZZ
@given(data=st.data())
def test_api_post_endpoints_never_answer_5xx(targets, data):
    from django.core.cache import cache

    cache.clear()  # throttles would turn most examples into 429s
    path, role, fields = _call(data, API, targets)
    raw = data.draw(st.one_of(st.just(None), bodies), label="raw body")  # or a whole malformed body
    body = render(fields) if raw is None else raw
    headers = data.draw(HEADERS, label="headers")
    if role:
        headers["HTTP_AUTHORIZATION"] = f"Token {targets['tokens'][role]}"
    r = Client(raise_request_exception=False).post(path, data=body.encode("utf-8", "surrogatepass"),
                                                   content_type="application/json", **headers)
    assert r.status_code < 500, (path, role, body[:300], r.status_code, r.content[:500])


def _form_text(value) -> str:
    text = value if isinstance(value, str) and not isinstance(value, Raw) else render(value)
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")  # a browser sends UTF-8


@pytest.mark.django_db
@FUZZ
@given(data=st.data())
def test_portal_post_endpoints_never_answer_5xx(targets, data):
    from django.core.cache import cache
    from django.core.files.uploadedfile import SimpleUploadedFile

    cache.clear()
    path, role, fields = _call(data, PORTAL, targets)
    form = {k: _form_text(v) for k, v in fields.items()}
    if "upload" in form:
        name = data.draw(st.sampled_from(["c.json", "a.txt", "x.exe", "n\x00.json", "..json"]), label="file name")
        form["upload"] = SimpleUploadedFile(name, form["upload"].encode("utf-8"))
    client = Client(raise_request_exception=False)
    if role:
        client.force_login(targets["users"][role])
    r = client.post(path, form)
    assert r.status_code < 500, (path, role, {k: str(v)[:200] for k, v in form.items()}, r.status_code,
                                 r.content[:500])
