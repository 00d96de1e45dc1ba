"""Human-readable HTML of a signed certificate or suppression notice (DESIGN §8).

Rules (issue 12 item 6): every check shows its real three-valued result (:func:`check_result`:
``pass`` / ``fail`` / ``inconclusive``), never "pass" for an inconclusive or undefined one; the
statements of a document whose signature did not verify are greyed and labelled as unconfirmed;
a suppression notice is titled as such and says the weights still hold the data. Every key and
value is HTML-escaped (``html.escape``). No Django.
"""
from __future__ import annotations

import html
import re
from typing import Any

__all__ = ["check_result", "document_title", "render_certificate_html"]

SUPPRESSION_SCHEMA = "suppression-notice/1"


def check_result(check: dict) -> tuple[str, str]:
    """(result, note) of one verdict check, result ∈ {"pass", "fail", "inconclusive"}.

    ``status`` (evaluation.verdicts) wins over ``passed``: an ``inconclusive`` PrivLeak that does
    not block the verdict has ``passed=True`` but is shown ``inconclusive``; an ``undefined``
    metric is ``inconclusive`` ("not measured"). A check without a status falls back to
    ``passed``; an unknown status, or ``status="pass"`` with ``passed`` not true, is
    ``inconclusive`` — a document never shows more than it states consistently.
    """
    status, passed = check.get("status"), check.get("passed")
    if status is None:
        return ("pass", "") if passed is True else ("fail", "")
    if status == "pass":
        return ("pass", "") if passed is True else ("inconclusive", "inconsistent: status pass, passed false")
    if status == "fail":
        return "fail", ""
    if status == "inconclusive":
        return "inconclusive", ("not blocking the verdict; listed under what was not verified"
                                if passed is True else "blocks the verdict")
    if status == "undefined":
        return "inconclusive", "metric undefined: not measured"
    return "inconclusive", f"unknown status {status!r}"


def document_title(payload: dict) -> str:
    """"Suppression notice (not an erasure certificate)" or "Erasure certificate"."""
    if isinstance(payload, dict) and payload.get("schema") == SUPPRESSION_SCHEMA:
        return "Suppression notice (not an erasure certificate)"
    return "Erasure certificate"


def _render_value(v: Any) -> str:
    if isinstance(v, dict):
        if not v:
            return "<em>{}</em>"
        rows = "".join(
            f"<tr><th>{html.escape(str(k))}</th><td>{_render_value(v[k])}</td></tr>"
            for k in sorted(v, key=str)
        )
        return f"<table>{rows}</table>"
    if isinstance(v, (list, tuple)):
        if not v:
            return "<em>[]</em>"
        return "<ol>" + "".join(f"<li>{_render_value(x)}</li>" for x in v) + "</ol>"
    if v is None:
        return "<em>null</em>"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return html.escape(str(v))


_STYLE = (
    "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}"
    "th,td{border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top}"
    ".pass{color:#060}.fail{color:#a00}.inconclusive{color:#8a5a00}"
    ".unverified{color:#888;opacity:.6}.unverified .pass,.unverified .fail,.unverified .inconclusive"
    "{color:#888}.notice{border:2px solid #a00;padding:.5em}</style>"
)


def _checks_table(verdicts: dict) -> str:
    rows = [
        "<h2>Checks</h2><table><tr><th>check</th><th>value</th><th>95% CI</th><th>threshold</th>"
        "<th>result</th><th>detail</th></tr>"
    ]
    for c in verdicts["checks"]:
        if not isinstance(c, dict):
            continue
        result, note = check_result(c)
        cells = "".join(f"<td>{_render_value(c.get(k))}</td>" for k in ("name", "value", "ci95", "threshold"))
        label = html.escape(result) + (f" <small>({html.escape(note)})</small>" if note else "")
        rows.append(f'<tr>{cells}<td class="{result}" data-result="{result}">{label}</td>'
                    f"<td>{_render_value(c.get('detail'))}</td></tr>")
    rows.append("</table>")
    return "".join(rows)


def _banner(verification) -> str:
    e = html.escape
    if verification is None:
        return "<p><strong>Signature not checked</strong>: the statements below are as stated.</p>"
    if verification.valid:
        return f'<p class="pass"><strong>Signature: valid</strong> ({e(verification.reason)})</p>'
    return (f'<p class="fail"><strong>Signature: INVALID</strong> ({e(verification.reason)}). '
            "The statements below are shown greyed: they are not confirmed by the issuer.</p>")


_B64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")


def _attachments(items) -> str:
    """Figures of the evaluation attachments (issue 16, RESTOR): a PNG shown inline only when its
    data is plain base64; scope and judge statements as its caption."""
    if not isinstance(items, list):
        return ""
    e = html.escape
    out = []
    for a in items:
        fig = a.get("figure") if isinstance(a, dict) else None
        if not isinstance(fig, dict) or fig.get("media_type") != "image/png":
            continue
        data = fig.get("data_base64")
        if not isinstance(data, str) or not _B64.fullmatch(data):
            continue
        out.append(f"<figure><img alt=\"{e(str(a.get('kind', 'evaluation figure')))}\" "
                   f"src=\"data:image/png;base64,{data}\" style=\"max-width:100%\"><figcaption>"
                   f"{e(str(a.get('scope', '')))} {e(str(a.get('judge', '')))} (sha256 {e(str(fig.get('sha256')))})"
                   "</figcaption></figure>")
    return ("<h2>Evaluation attachments</h2>" + "".join(out)) if out else ""


def render_certificate_html(certificate: dict, verification=None) -> str:
    """A self-contained HTML page for a signed document (erasure certificate or suppression notice).

    ``verification`` (an ``evaluation.certificate.VerificationResult`` or ``None``) adds a banner;
    when it is invalid every statement is wrapped in ``<div class="unverified">`` (greyed). The
    checks table (``payload["verdicts"]["checks"]``), then ``not_verified`` / ``limitations``,
    then the full payload are shown.
    """
    e = html.escape
    certificate = certificate if isinstance(certificate, dict) else {}
    payload = certificate.get("payload", {})
    if not isinstance(payload, dict):
        payload = {"payload": payload}
    title = f"{document_title(payload)} {payload.get('certificate_id', '')}"
    parts = ['<!DOCTYPE html><html><head><meta charset="utf-8"><title>', e(title), "</title>", _STYLE,
             "</head><body>", f"<h1>{e(title)}</h1>", _banner(verification)]
    unverified = verification is not None and not verification.valid
    parts.append('<div class="unverified">' if unverified else "<div>")
    if payload.get("schema") == SUPPRESSION_SCHEMA:
        parts.append('<p class="notice"><strong>Not an erasure certificate.</strong> '
                     + e(str(payload.get("statement", "The model's weights still hold the data.")))
                     + "</p>")
    parts.append(f"<p>Algorithm: {e(str(certificate.get('algorithm', '')))}; key id: "
                 f"{e(str(certificate.get('key_id', '')))}</p>")
    verdicts = payload.get("verdicts") if isinstance(payload.get("verdicts"), dict) else None
    if verdicts and isinstance(verdicts.get("checks"), list):
        parts.append(_checks_table(verdicts))
    for key in ("not_verified", "limitations"):
        items = payload.get(key) or (verdicts or {}).get(key)
        if isinstance(items, list) and items:
            parts.append(f"<h2>{e('What was not verified' if key == 'not_verified' else 'Limitations')}</h2>")
            parts.append("<ul>" + "".join(f"<li>{e(str(x))}</li>" for x in items) + "</ul>")
    parts.append(_attachments(payload.get("evaluation_attachments")))
    parts.append("<h2>Signed payload</h2>" + _render_value(payload))
    parts.append("</div>")
    parts.append(f"<h2>Signature</h2><p><code>{e(str(certificate.get('signature', '')))}</code></p>")
    parts.append("</body></html>")
    return "".join(parts)
