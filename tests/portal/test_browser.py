"""End to end in a real headless Chromium (Playwright) against pytest-django's live server.

An owner signs in with the e-mailed link, files a request, confirms the code and sees it in "my
requests"; a reviewer starts the review and an approver approves it in the dashboard; the job runs
(eager Celery, tiny model) and the final state is shown; when certified, the certificate is
downloaded and checked on the public page. A second owner cannot see the first owner's request.
Screenshots of the main pages go to ``test-artifacts/screenshots/``.

Needs Debian's ``chromium`` (``/usr/bin/chromium`` or ``$CHROMIUM_PATH``) and ``pip install playwright``
(never ``playwright install``); skipped when either is missing.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's sync API runs an event loop in this thread

import pytest  # noqa: E402
from django.core import mail  # noqa: E402

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
JOB_TIMEOUT_MS = int(os.environ.get("BROWSER_JOB_TIMEOUT_S", "600")) * 1000


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def last_mail_to(address: str):
    return [m for m in mail.outbox if address in m.to][-1]


def sign_in(browser, live_server, email: str, *, screenshots: bool = False):
    """A new browser context signed in through the e-mailed one-time link."""
    context = browser.new_context(accept_downloads=True, viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.goto(live_server.url + "/")
    if screenshots:
        shot(page, "01_start_page")
    page.get_by_role("link", name="Sign in", exact=True).click()
    page.get_by_label("Your e-mail address").fill(email)
    page.get_by_role("button", name="E-mail me a sign-in link").click()
    page.wait_for_url("**/signin/sent/")
    if screenshots:
        shot(page, "02_signin_sent")
    link = re.search(r"https?://\S+/signin/link/\S+/", last_mail_to(email).body).group(0)
    assert link.startswith(live_server.url)
    page.goto(link)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    assert email in page.content()
    return context, page


def test_owner_files_request_reviewer_approves_job_runs(browser, live_server, users, target_model, forget_subject):
    # --- data owner: sign in, file a request (first with a mistake), confirm the code ---------------
    owner_ctx, page = sign_in(browser, live_server, "alice@example.org", screenshots=True)
    assert page.url.endswith("/requests/")
    page.get_by_role("link", name="New request").first.click()
    page.get_by_role("button", name="Send my request").click()  # nothing filled in
    summary = page.locator("#error-summary")
    assert summary.is_visible() and "There is a problem" in summary.inner_text()
    assert page.evaluate("document.activeElement.id") == "error-summary"
    shot(page, "03_request_form_errors")
    summary.get_by_role("link").first.click()  # jumps to the field
    assert page.evaluate("document.activeElement.id") == "id_subject_name"

    page.get_by_label("Your name, as it may appear in the data").fill(forget_subject.display_name)
    page.get_by_label("Only the texts I describe below").check()
    page.get_by_label("Describe the data (optional)").fill("Interview answers about my books.")
    page.get_by_label("Attach a text file (optional)").set_input_files(
        files=[{"name": "about-me.txt", "mimeType": "text/plain", "buffer": b"My name appears in these answers."}])
    page.get_by_label("I live in the European Union, the EEA or the UK (GDPR)").check()
    page.get_by_label("I withdraw the consent I gave to use my data.").check()
    shot(page, "04_request_form_filled")
    with page.expect_navigation():
        page.get_by_role("button", name="Send my request").click()
    assert "/verify/" in page.url, page.locator("main").inner_text()
    shot(page, "05_identity_code")
    code = re.search(r" is (\d{6})", last_mail_to("alice@example.org").body).group(1)
    page.get_by_label("Confirmation code").fill(code)
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url(re.compile(r"/requests/[0-9a-f-]{36}/(#.*)?$"))
    ticket_url = page.url.split("#")[0]
    ticket_id = ticket_url.rstrip("/").rsplit("/", 1)[1]
    assert page.locator("#ticket-status").get_attribute("data-status") == "identity_verified"
    assert "Identity confirmed with the e-mailed code" in page.content()
    page.get_by_role("link", name="My requests").first.click()
    assert "Confirmed, waiting for review" in page.content() and ticket_id in page.content()
    shot(page, "06_my_requests")

    # --- a second owner cannot see it -------------------------------------------------------------
    bob_ctx, bob = sign_in(browser, live_server, "bob@example.org")
    assert bob.goto(ticket_url).status == 404
    assert bob.goto(live_server.url + f"/requests/{ticket_id}/certificate.json").status == 404
    assert bob.goto(live_server.url + "/dashboard/").status == 403
    bob.goto(live_server.url + "/requests/")
    assert ticket_id not in bob.content() and "You have not made any request yet." in bob.content()
    bob_ctx.close()

    # --- reviewer: queue, start the review ----------------------------------------------------------
    rev_ctx, rev = sign_in(browser, live_server, "reviewer@example.org")
    assert rev.url.endswith("/dashboard/")
    shot(rev, "07_dashboard_queue")
    rev.locator(f'a[href="/dashboard/requests/{ticket_id}/"]').click()
    rev.get_by_role("button", name="Start review").click()
    rev.wait_for_load_state()
    assert rev.locator("#ticket-status").get_attribute("data-status") == "in_review"
    assert rev.locator('input[name="records"]').count() == 20
    rev_ctx.close()

    # --- approver (another person: four-eyes): confirm records, choose a method, approve -------------
    app_ctx, app = sign_in(browser, live_server, "approver@example.org")
    app.locator(f'a[href="/dashboard/requests/{ticket_id}/"]').click()
    checkboxes = app.locator('input[name="records"]')
    assert checkboxes.count() == 20 and all(checkboxes.nth(i).is_checked() for i in range(20))
    app.locator('input[name="method"][value="dp2"]').check()  # a radio list with descriptions (issue 21 item 6)
    shot(app, "08_dashboard_request_review")
    with app.expect_navigation(timeout=JOB_TIMEOUT_MS):  # eager Celery: the job runs inside this request
        app.get_by_role("button", name="Approve and start the removal").click()
    assert "/dashboard/jobs/" in app.url
    final = app.locator("#job-status").get_attribute("data-status")
    assert final in ("succeeded", "failed")
    progress = app.request.get(app.url + "progress.json").json()
    assert progress["final"] is True and progress["status"] == final
    assert progress["progress"]["total"] and progress["progress"]["step"] == progress["progress"]["total"]
    if final == "failed":  # e.g. a failed verdict or collapse detection with the tiny model: the reason is shown
        assert app.locator("#job-error").inner_text().strip()
    else:
        assert "unlearned" in app.content() and app.locator("#job-certificate").is_visible()
    shot(app, "09_dashboard_job")
    app.get_by_role("link", name="tiny").click()
    app.wait_for_load_state("load")
    assert "Sustainability" in app.content()
    plot = app.request.get(app.url + "sustainability.png")
    assert plot.status == 200 and plot.body()[:4] == b"\x89PNG"
    assert app.locator("figure img").evaluate("img => img.complete && img.naturalWidth > 0")
    shot(app, "10_model_lineage")
    app_ctx.close()

    # --- owner sees the final state; certificate download and public check ---------------------------
    page.goto(ticket_url)
    status = page.locator("#ticket-status").get_attribute("data-status")
    shot(page, "11_owner_request_final")
    assert "Removal from the model started" in page.content()
    if final == "succeeded":
        assert status == "certified"
        assert "Done: data removed, certificate issued" in page.content()
        with page.expect_download() as dl:
            page.locator("#certificate-json").click()
        document = json.loads(Path(dl.value.path()).read_text())
        assert set(document) == {"payload", "signature", "key_id", "algorithm"}
        assert forget_subject.display_name not in json.dumps(document)
        page.locator("#certificate-html").click()
        assert "Genuine: the signature is valid." in page.content()
        shot(page, "12_certificate_html")
        # anyone (signed out) can check it
        anon_ctx = browser.new_context()
        anon = anon_ctx.new_page()
        anon.goto(live_server.url + "/certificates/check/")
        anon.get_by_label("…or upload the certificate file").set_input_files(dl.value.path())
        anon.get_by_role("button", name="Check").click()
        assert anon.locator("#check-result h2").inner_text() == "Valid certificate"
        shot(anon, "13_certificate_check_valid")
        document["payload"]["forget_set"]["count"] += 1
        anon.get_by_label("Paste the certificate (JSON)").fill(json.dumps(document))
        anon.get_by_role("button", name="Check").click()
        assert anon.locator("#check-result h2").inner_text() == "Invalid certificate"
        assert "bad signature" in anon.content()
        shot(anon, "14_certificate_check_invalid")
        anon_ctx.close()
    else:
        assert status == "failed"
        assert "did not pass its checks" in page.content()
        anon_ctx = browser.new_context()
        anon = anon_ctx.new_page()
        anon.goto(live_server.url + "/certificates/check/")
        anon.get_by_label("Paste the certificate (JSON)").fill('{"payload": {}, "signature": "x", "key_id": "k", "algorithm": "Ed25519"}')
        anon.get_by_role("button", name="Check").click()
        assert anon.locator("#check-result h2").inner_text() == "Invalid certificate"
        shot(anon, "14_certificate_check_invalid")
        anon_ctx.close()
    owner_ctx.close()


def test_owner_withdraws_in_browser_keyboard_only(browser, live_server, users, corpus, forget_subject):
    """File and withdraw with the keyboard only (Tab/Space/Enter), checking labels and focus."""
    ctx, page = sign_in(browser, live_server, "carol@example.org")
    page.goto(live_server.url + "/requests/new/")
    page.get_by_label("Your name, as it may appear in the data").focus()
    page.keyboard.type(forget_subject.display_name)
    page.get_by_role("button", name="Send my request").focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**/verify/")
    page.get_by_role("link", name="Back to the request").focus()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/requests/[0-9a-f-]{36}/$"))
    page.get_by_role("link", name="Withdraw this request…").focus()
    page.keyboard.press("Enter")
    page.get_by_role("button", name="Yes, withdraw it").focus()
    page.keyboard.press("Enter")
    page.wait_for_load_state()
    assert page.locator("#ticket-status").get_attribute("data-status") == "withdrawn"
    assert "Your request was withdrawn." in page.content()
    shot(page, "15_withdrawn")
    ctx.close()


def test_certified_request_certificate_and_lineage_screens(browser, live_server, users, certified_lineage):
    """A certified request (rows written directly, no training): certificate view, download and
    public check, and the lineage page with its sustainability plot over three versions."""
    ticket = certified_lineage["ticket"]
    ctx, page = sign_in(browser, live_server, "owner@example.org")
    page.locator(f'a[href="/requests/{ticket.public_id}/"]').click()
    assert page.locator("#ticket-status").get_attribute("data-status") == "certified"
    with page.expect_download() as dl:
        page.locator("#certificate-json").click()
    page.locator("#certificate-html").click()
    assert "Genuine: the signature is valid." in page.content()
    shot(page, "12_certificate_html")
    page.goto(live_server.url + "/certificates/check/")
    page.get_by_label("…or upload the certificate file").set_input_files(dl.value.path())
    page.get_by_role("button", name="Check").click()
    assert page.locator("#check-result h2").inner_text() == "Valid certificate"
    shot(page, "13_certificate_check_valid")
    ctx.close()

    ctx, page = sign_in(browser, live_server, "auditor@example.org")
    page.goto(live_server.url + f"/dashboard/models/{certified_lineage['model'].pk}/")
    page.wait_for_load_state("load")
    assert page.locator("figure img").evaluate("img => img.complete && img.naturalWidth > 0")
    assert "v2" in page.content()
    shot(page, "16_model_lineage_three_versions")
    ctx.close()
