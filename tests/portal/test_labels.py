"""Human labels, units, precision and dates on the portal's pages (issue 21 item 4) and denial
exceptions by jurisdiction with the complaint / appeal route (item 5)."""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from requests_app.portal import labels


def test_metric_values_have_units_and_precision():
    assert labels.metric_value("verbmem_forget", 12.345678) == "12.3\u00a0ROUGE-L ×100"
    assert labels.metric_value("mink_auc", 0.51234567) == "0.512"
    assert labels.metric_value("privleak", -3.21) == "−3.2%"
    assert labels.metric_value("no_collapse", 0.05) == "5.0%"  # a fraction shown as a percentage
    assert labels.metric_value("knowmem_retain", None) == "—"
    assert labels.metric_value("knowmem_retain", float("nan")) == "—"


def test_confidence_intervals_print_as_a_bracket_pair_with_the_metrics_precision():
    assert labels.metric_ci("mink_auc", [0.4123456789012345, 0.5888888888888889]) == "[0.412, 0.589]"
    assert labels.metric_ci("privleak", [-12.3456, 4.04]) == "[−12.3, 4.0]"
    assert labels.metric_ci("privleak", None) == "—"
    assert labels.metric_ci("privleak", [1.0]) == "—"


def test_small_probabilities_and_ledger_rows():
    assert labels.scientific(1e-5) == "1.0 × 10⁻⁵"
    assert labels.scientific(2.5e-3) == "0.0025"
    rows = {r["key"]: (r["label"], r["value"]) for r in labels.ledger_rows(
        {"epsilon": 7.9, "delta": 1e-4, "accountant": "rdp", "privacy_unit": "subject", "steps": 300})}
    assert rows["epsilon"] == ("Privacy loss ε", "7.900")
    assert rows["delta"] == ("Failure probability δ", "1.0 × 10⁻⁴")
    assert rows["accountant"] == ("Privacy accountant", "Rényi DP (RDP)")
    assert rows["privacy_unit"][1] == "one data subject (all their records)"
    assert rows["steps"] == ("DP-SGD steps", "300")


def test_python_dicts_in_statements_become_words():
    text = "PrivLeak is inconclusive at this sample size (n = {'forget': 20, 'holdout': 20}): +7.0"
    assert labels.readable_text(text) == "PrivLeak is inconclusive at this sample size (n = 20 forget, 20 holdout): +7.0"
    assert labels.readable_text("no dict {here}") == "no dict {here}"


def test_choice_labels_come_from_the_models():
    assert labels.choice_label("ticket_status", "in_review") == "In legal review"
    assert labels.choice_label("jurisdiction", "GDPR") == "GDPR (EU, EEA, UK)"
    assert labels.choice_label("exception", "art17_3_d").startswith("GDPR Art. 17(3)(d): archiving")
    assert labels.choice_label("exception", "nonsense") == "nonsense"
    assert labels.method_label("dp2").startswith("DP2 (")
    assert labels.method_description("dp2") == "DP2Unlearning: fine-tune the DP base on the retain set (fewer epochs)"


def test_when_filter_names_the_time_zone():
    from requests_app.templatetags.portal_format import day, when

    dt = datetime(2026, 1, 5, 10, 7, 33, 123456, tzinfo=UTC)
    assert str(when(dt)) == ('<time datetime="2026-01-05T10:07:33+00:00" data-local="datetime">'
                             '5 Jan 2026, 10:07 UTC</time>')
    assert "5 Jan 2026</time>" in str(day("2026-01-05T10:07:33.123456+00:00"))  # ISO text from a certificate
    assert when(None) == "—"


def _visible(html: str) -> str:
    return re.sub(r"<[^>]+>", " ", html)


def test_staff_pages_show_labels_not_codes(client_for, certified_lineage):
    ticket = certified_lineage["ticket"]
    ticket.status = "in_review"
    ticket.jurisdiction = "CCPA"
    ticket.save()
    queue = client_for("reviewer").get("/dashboard/").content.decode()
    assert "In legal review" in queue and "CCPA (California)" in queue
    assert "in_review" not in _visible(queue)
    job = certified_lineage["versions"][2].produced_by
    page = client_for("auditor").get(f"/dashboard/jobs/{job.public_id}/").content.decode()
    text = _visible(page)
    assert "Verbatim memorisation of the removed texts (VerbMem)" in text and "verbmem_forget" not in text
    assert "Before removal (serving model)" in text and "After removal" in text
    assert "Privacy leakage against an exact retrain (PrivLeak)" in text
    assert "Succeeded" in text and "DP2 (" in text
    lineage = client_for("auditor").get(f"/dashboard/models/{certified_lineage['model'].pk}/").content.decode()
    assert "Privacy loss ε" in lineage and "1.0 × 10⁻⁴" in lineage and "Rényi DP (RDP)" in lineage
    assert "noise_multiplier</th>" not in lineage


def test_certificate_page_is_readable(client_for, certified_lineage):
    ticket = certified_lineage["ticket"]
    page = client_for("owner").get(f"/requests/{ticket.public_id}/certificate/").content.decode()
    text = _visible(page)
    assert "GDPR (EU, EEA, UK), Art. 17(1)(b) consent withdrawn" in text
    assert re.search(r'<time datetime="[^"]+" data-local="datetime">\d{1,2} \w{3} \d{4}, \d\d:\d\d UTC</time>', page)
    assert "DP2 (" in text
    assert "{'" not in text and "<em>null</em>" not in page


# --- item 5: denial exceptions by jurisdiction and how to complain ---------------------------------

def _in_review(file_request, forget_subject, client_for, jurisdiction):
    ticket = file_request(forget_subject, jurisdiction=jurisdiction)
    ticket.status = "in_review"
    ticket.save(update_fields=["status"])
    return ticket


def test_ccpa_request_offers_only_ccpa_exceptions(client_for, forget_subject, file_request):
    ticket = _in_review(file_request, forget_subject, client_for, "CCPA")
    page = client_for("approver").get(f"/dashboard/requests/{ticket.public_id}/").content.decode()
    options = re.findall(r'<option value="([^"]*)"', page.split('id="deny-title"')[1])
    assert options == ["", *[f"ccpa_105_d_{i}" for i in range(1, 10)], "unverified"]
    assert "CCPA §1798.105(d)(8): a legal obligation" in page and "Art. 17(3)" not in page.split('id="deny-title"')[1]


def test_ccpa_request_cannot_be_denied_under_gdpr(client_for, forget_subject, file_request):
    ticket = _in_review(file_request, forget_subject, client_for, "CCPA")
    r = client_for("approver").post(f"/dashboard/requests/{ticket.public_id}/deny/",
                                    {"exception_code": "art17_3_d", "reason": "research"})
    assert r.status_code == 400
    ticket.refresh_from_db()
    assert ticket.status == "in_review"


def test_api_refuses_an_exception_of_another_jurisdiction(api, forget_subject, file_request, client_for):
    ticket = _in_review(file_request, forget_subject, client_for, "CCPA")
    r = api("approver").post(f"/api/v1/tickets/{ticket.public_id}/deny/",
                             {"exception_code": "art17_3_e", "reason": "claims"}, format="json")
    assert r.status_code == 400 and "not an exception for a CCPA request" in str(r.json())
    r = api("approver").post(f"/api/v1/tickets/{ticket.public_id}/deny/",
                             {"exception_code": "ccpa_105_d_8", "reason": "A court order requires it."}, format="json")
    assert r.status_code == 200, r.content


@pytest.mark.parametrize("jurisdiction, code, label, complaint", [
    ("CCPA", "ccpa_105_d_8", "CCPA §1798.105(d)(8): a legal obligation", "California Privacy Protection Agency"),
    ("GDPR", "art17_3_e", "GDPR Art. 17(3)(e): establishing, exercising or defending legal claims",
     "supervisory authority (GDPR Art. 77)"),
])
def test_owner_sees_the_exception_and_how_to_complain(client_for, forget_subject, file_request, settings,
                                                      jurisdiction, code, label, complaint):
    settings.PRIVACY_APPEAL_CONTACT = "appeals@example.com"
    ticket = _in_review(file_request, forget_subject, client_for, jurisdiction)
    r = client_for("approver").post(f"/dashboard/requests/{ticket.public_id}/deny/",
                                    {"exception_code": code, "reason": "Needed for a pending lawsuit."})
    assert r.status_code == 302
    page = client_for("owner").get(f"/requests/{ticket.public_id}/").content.decode()
    decision = page.split('id="decision"')[1].split("</section>")[0]
    assert label in decision and "Needed for a pending lawsuit." in decision
    assert complaint in decision and "appeals@example.com" in decision
    assert "We answer by" not in page  # a declined request has no answer date (item 15)


def test_withdrawn_request_has_no_answer_date(client_for, forget_subject, file_request):
    ticket = file_request(forget_subject)
    ticket.status = "withdrawn"
    ticket.due_at = datetime.now(UTC) + timedelta(days=20)
    ticket.save()
    assert "We answer by" not in client_for("owner").get(f"/requests/{ticket.public_id}/").content.decode()
    listing = client_for("owner").get("/requests/").content.decode()
    assert '<td data-label="We answer by">—</td>' in listing
