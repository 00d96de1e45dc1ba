"""Issue 21 in a real headless Chromium at 1280 and 390 px: styled pages (WhiteNoise), readable
certificate (labels, CIs, one limitations section, greyed claims when invalid), no sideways
scrolling on a phone, denial with the jurisdiction's exceptions and the complaint route, the
notices list, branded error pages and offline API docs. axe-core runs on every page when its
``axe.min.js`` is found (``AXE_CORE_PATH``, ``node_modules/axe-core`` or ``/tmp/axe``): no
serious or critical violation. Screenshots go to ``test-artifacts/screenshots/issue21/``.

Signed-in contexts get a session cookie made by Django's test client (the e-mailed sign-in
itself is walked through in ``test_browser.py``), so the whole module stays around 20 s.
"""
from __future__ import annotations

import os
from pathlib import Path

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's sync API runs an event loop in this thread

import pytest  # noqa: E402

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("ISSUE21_SCREENSHOTS", ROOT / "test-artifacts" / "screenshots" / "issue21"))
WIDTHS = (1280, 390)
AXE_CANDIDATES = [os.environ.get("AXE_CORE_PATH", ""), str(ROOT / "node_modules/axe-core/axe.min.js"),
                  "/tmp/axe/node_modules/axe-core/axe.min.js"]


def _axe_source() -> str | None:
    for path in AXE_CANDIDATES:
        if path and Path(path).is_file():
            return Path(path).read_text()
    return None


AXE = _axe_source()


def open_as(browser, live_server, user, width: int):
    """A browser context at ``width`` px, signed in as ``user`` (None: anonymous)."""
    from django.conf import settings
    from django.test import Client

    context = browser.new_context(viewport={"width": width, "height": 900}, accept_downloads=True)
    if user is not None:
        client = Client()
        client.force_login(user)
        context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                              "url": live_server.url}])
    return context, context.new_page()


def check_page(page, name: str, width: int, *, full_page: bool = True) -> None:
    """Screenshot; no sideways scrolling; the stylesheet applied; axe: no serious/critical violation."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}_{width}.png"), full_page=full_page)
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{name} at {width} px scrolls sideways by {overflow} px"
    if page.locator(".site-header").count():
        assert page.evaluate("getComputedStyle(document.querySelector('.site-header')).backgroundColor") == \
            "rgb(13, 42, 74)", "portal.css not applied"
    if AXE:
        page.add_script_tag(content=AXE)
        violations = page.evaluate(
            "async () => (await axe.run({resultTypes: ['violations']})).violations"
            ".filter(v => ['serious', 'critical'].includes(v.impact)).map(v => v.id + ': ' + v.nodes[0].target)")
        assert violations == [], f"{name} at {width} px: {violations}"


@pytest.mark.parametrize("width", WIDTHS)
def test_certificate_page_readable_and_phone_sized(browser, live_server, users, realistic_certificate, width):
    ticket = realistic_certificate["ticket"]
    ctx, page = open_as(browser, live_server, users["owner"], width)
    page.goto(f"{live_server.url}/requests/{ticket.public_id}/certificate/")
    assert "Genuine: the signature is valid." in page.content()
    rows = page.locator("table.checks tbody tr")
    assert rows.count() == 5
    assert rows.nth(0).locator("th").inner_text() == "Verbatim memorisation of the removed texts (VerbMem)"
    assert rows.nth(0).locator("td.ci").inner_text() == "[6.1, 18.0]"
    assert rows.nth(3).locator("td.ci").inner_text() == "[−3.2, 17.3]"
    assert rows.nth(3).locator("[data-result]").get_attribute("data-result") == "inconclusive"
    # one section for limitations and what was not verified; each statement once, no Python dict
    assert page.get_by_role("heading", name="Limitations / what was not verified").count() == 1
    items = page.locator("ul.limitations li").all_inner_texts()
    assert len(items) == len(set(items)) and not any("{'" in i for i in items)
    assert any("(n = 20 forget, 20 holdout)" in i for i in items)
    assert not any("Min-K% Prob only" in i for i in items)
    issued = page.locator("dl.facts time").first
    assert "UTC" in issued.inner_text() and issued.get_attribute("datetime")  # reader's zone, named
    page.locator("details.raw-certificate summary").click()  # the signed content open must not overflow either
    assert page.locator("pre.json").is_visible()
    check_page(page, "certificate", width)
    ctx.close()


def test_invalid_certificate_claims_are_greyed(browser, live_server, realistic_certificate):
    import json

    tampered = json.loads(json.dumps(realistic_certificate["document"]))
    tampered["payload"]["forget_set"]["count"] += 1
    ctx, page = open_as(browser, live_server, None, 390)
    page.goto(live_server.url + "/certificates/check/")
    page.get_by_label("Paste the certificate (JSON)").fill(json.dumps(tampered))
    page.get_by_role("button", name="Check").click()
    assert page.locator("#check-result h2").inner_text() == "Invalid certificate"
    assert page.get_by_role("heading", name="What it claims (not confirmed)").is_visible()
    badge = page.locator(".certificate-claims .badge.result").first
    assert badge.inner_text() == "pass"
    colour = badge.evaluate("b => getComputedStyle(b).backgroundColor")
    assert colour == "rgb(234, 238, 242)", colour  # grey, not the green of a confirmed pass
    check_page(page, "certificate_check_invalid", 390)
    ctx.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_staff_pages_fit_and_speak_plainly(browser, live_server, users, realistic_certificate, width):
    from requests_app.models import TicketStatus

    ticket = realistic_certificate["ticket"]
    ticket.status, ticket.jurisdiction = TicketStatus.IN_REVIEW, "CCPA"
    ticket.save(update_fields=["status", "jurisdiction"])
    ctx, page = open_as(browser, live_server, users["approver"], width)
    page.goto(live_server.url + "/dashboard/")
    status = page.locator(f'tr:has(a[href="/dashboard/requests/{ticket.public_id}/"]) .status')
    assert status.inner_text() == "In legal review"
    check_page(page, "queue", width)
    page.goto(f"{live_server.url}/dashboard/requests/{ticket.public_id}/")
    options = page.locator("#id_exception_code option").all_inner_texts()[1:]
    assert options[0].startswith("CCPA §1798.105(d)(1)") and not any("Art. 17(3)" in o for o in options)
    check_page(page, "request_review", width)
    job = realistic_certificate["versions"][2].produced_by
    page.goto(f"{live_server.url}/dashboard/jobs/{job.public_id}/")
    assert page.locator("#job-status").inner_text() == "Succeeded"
    check_page(page, "job", width)
    page.goto(f"{live_server.url}/dashboard/models/{realistic_certificate['model'].pk}/")
    page.wait_for_load_state("load")
    assert page.locator("table.ledger").get_by_text("Privacy loss ε").is_visible()
    check_page(page, "lineage", width)
    ctx.close()
    if width == 390:  # the auditor sees the approve screen read-only (item 6)
        ctx, page = open_as(browser, live_server, users["auditor"], width)
        page.goto(f"{live_server.url}/dashboard/requests/{ticket.public_id}/")
        boxes = page.locator('input[name="records"], input[name="method"]')
        assert boxes.count() > 0 and boxes.evaluate_all("els => els.every(e => e.disabled)")
        assert page.locator("#readonly-note").is_visible() and page.locator("#approve").count() == 0
        check_page(page, "request_review_auditor", width)
        ctx.close()


def test_error_page_and_offline_api_docs(browser, live_server, users, realistic_certificate):
    ctx, page = open_as(browser, live_server, users["other_owner"], 390)
    outside = []
    page.route("**/*", lambda route: (outside.append(route.request.url), route.abort())
               if not route.request.url.startswith(live_server.url) else route.continue_())
    r = page.goto(f"{live_server.url}/requests/{realistic_certificate['ticket'].public_id}/certificate/")
    assert r.status == 404 and page.locator("h1").inner_text() == "Page not found"
    assert page.get_by_role("link", name="My requests").first.is_visible()
    check_page(page, "error_404", 390)
    for path, ready in (("/api/v1/docs/", ".swagger-ui .info .title"), ("/api/v1/redoc/", "#redoc-container h1")):
        page.goto(live_server.url + path)
        page.wait_for_selector(ready, timeout=15_000)  # rendered with no network beyond our server
        check_page(page, path.strip("/").replace("/", "_"), 390, full_page=False)  # pages of ~7000 px
    assert outside == []
    ctx.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_declined_request_page_with_exception_complaint_route_and_notices(
        browser, live_server, users, forget_subject, settings, width):
    from django.core import mail

    from requests_app import services

    settings.PRIVACY_APPEAL_CONTACT = "appeals@example.com"
    ticket, _ = services.ticket_create(requester=users["owner"], subject=forget_subject, jurisdiction="CCPA")
    type(ticket).objects.filter(pk=ticket.pk).update(status="identity_verified")  # code step: test_browser.py
    services.ticket_start_review(ticket=ticket, reviewer=users["reviewer"])
    services.ticket_deny(ticket=ticket, actor=users["approver"], exception_code="ccpa_105_d_8",
                         reason="A court order requires us to keep these records.")
    assert [m.subject for m in mail.outbox if m.to == ["owner@example.org"]][-2:] == [
        "Your data-removal request is being reviewed", "Your data-removal request was declined"]
    ctx, page = open_as(browser, live_server, users["owner"], width)
    page.goto(f"{live_server.url}/requests/{ticket.public_id}/")
    decision = page.locator("#decision")
    assert "CCPA §1798.105(d)(8): a legal obligation" in decision.inner_text()
    assert "appeals@example.com" in decision.inner_text() and "California Privacy Protection Agency" in decision.inner_text()
    assert "We answer by" not in page.locator("dl.facts").inner_text()
    states = page.locator(".stepper li").evaluate_all("steps => steps.map(s => s.dataset.state)")
    assert states == ["done", "done", "done", "skipped", "skipped", "skipped"]  # the stepper (item 15)
    kinds = page.locator("#notices tbody tr").evaluate_all("rows => rows.map(r => r.dataset.kind)")
    assert kinds == ["review", "denial"]
    check_page(page, "request_declined", width)
    ctx.close()
