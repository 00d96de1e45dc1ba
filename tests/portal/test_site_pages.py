"""Static files, favicon, API docs and the branded error pages (issue 21 items 1, 8, 9)."""
from __future__ import annotations

import pytest
from django.test import Client


@pytest.mark.parametrize("debug", [False, True])
def test_static_files_are_served_with_debug_on_and_off(settings, debug):
    """WhiteNoise serves the portal's CSS and JS without collectstatic, in either mode (item 1)."""
    settings.DEBUG = debug
    client = Client()
    css = client.get("/static/portal/portal.css")
    assert css.status_code == 200
    assert css["Content-Type"].startswith("text/css")
    assert b".site-header" in b"".join(css.streaming_content)
    js = client.get("/static/portal/portal.js")
    assert js.status_code == 200 and "javascript" in js["Content-Type"]


def test_favicon_ico_is_served_at_the_site_root(db):
    r = Client().get("/favicon.ico")
    assert r.status_code == 200
    assert r["Content-Type"] in ("image/x-icon", "image/vnd.microsoft.icon")
    assert b"".join(r.streaming_content)[:4] == b"\x00\x00\x01\x00"  # ICO header


def test_pages_link_the_stylesheet_and_icon(db):
    html = Client().get("/").content.decode()
    assert '<link rel="stylesheet" href="/static/portal/portal.css">' in html
    assert 'href="/favicon.ico"' in html and "/static/portal/favicon.svg" in html


@pytest.mark.parametrize("path, asset", [("/api/v1/docs/", "swagger-ui-dist/swagger-ui-bundle.js"),
                                         ("/api/v1/redoc/", "redoc/bundles/redoc.standalone.js")])
def test_api_docs_load_their_assets_from_our_static_files(db, path, asset):
    """Swagger UI and ReDoc reference only local /static/ files (drf-spectacular-sidecar), no CDN (item 9)."""
    import re

    client = Client()
    html = client.get(path).content.decode()
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any(s.endswith(asset) for s in sources), sources
    assert not [s for s in sources if s.startswith(("http://", "https://", "//"))], sources
    assert not re.search(r"https?://(cdn|unpkg|fastly)", html)
    local = next(s for s in sources if s.endswith(asset))
    r = client.get(local)
    assert r.status_code == 200 and len(b"".join(r.streaming_content)) > 100_000


# --- branded error pages (item 8) ---------------------------------------------------------------

BRAND = "AI data removal service"


def _assert_branded(html: str):
    assert f'<a class="brand" href="/">{BRAND}</a>' in html
    assert "/static/portal/portal.css" in html and 'href="/"' in html


def test_404_keeps_the_views_message(client_for, users, corpus, forget_subject):
    from requests_app.models import RemovalTicket

    ticket = RemovalTicket.objects.create(requester=users["owner"], subject=forget_subject,
                                          received_at="2026-01-05T10:00:00Z", due_at="2026-02-05T10:00:00Z")
    r = client_for("owner").get(f"/requests/{ticket.public_id}/certificate/")
    assert r.status_code == 404
    html = r.content.decode()
    _assert_branded(html)
    assert '<p class="lead" id="error-message">No certificate has been issued for this request yet.</p>' in html
    assert "<h1>Page not found</h1>" in html and 'href="/requests/"' in html  # a way back to "My requests"


def test_404_of_an_unknown_address_shows_no_resolver_internals(db):
    r = Client().get("/no/such/page/")
    assert r.status_code == 404
    html = r.content.decode()
    _assert_branded(html)
    assert "error-message" not in html and "tried" not in html and "/signin/" in html


def test_403_keeps_the_views_message(client_for):
    r = client_for("owner").get("/dashboard/")
    assert r.status_code == 403
    html = r.content.decode()
    _assert_branded(html)
    assert "The dashboard is for the legal team and ML operators only." in html
    assert "You are signed in as owner@example.org" in html


def test_auditor_filing_a_request_gets_the_branded_403(client_for):
    r = client_for("auditor").get("/requests/new/")
    assert r.status_code == 403
    assert "Auditors have read-only access and cannot file requests." in r.content.decode()
    assert "Sign-in link not valid" not in r.content.decode()


def test_api_404_stays_json(db):
    r = Client().get("/api/v1/no-such-endpoint/")
    assert r.status_code == 404 and r.json() == {"detail": "Page not found"}


@pytest.mark.urls("tests.portal.error_urls")
def test_400_shows_a_bad_request_message_but_not_a_suspicious_operations(db):
    r = Client().get("/bad/")
    assert r.status_code == 400
    _assert_branded(r.content.decode())
    assert "The form was sent without its token." in r.content.decode()
    r = Client().get("/suspicious/")
    assert r.status_code == 400 and "internal host header detail" not in r.content.decode()
    assert "The request could not be understood" in r.content.decode()


@pytest.mark.urls("tests.portal.error_urls")
def test_500_is_branded_without_the_exception(db):
    r = Client(raise_request_exception=False).get("/boom/")
    assert r.status_code == 500
    html = r.content.decode()
    _assert_branded(html)
    assert "Something went wrong on our side" in html and "secret internal detail" not in html
