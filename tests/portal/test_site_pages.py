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
