"""Security headers on every HTTP answer of a real hub, and no page that loads foreign code."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from email.message import Message

import pytest

from tests.conftest import HubFactory
from tests.procs import USER_AGENT, Proc

PATHS = [
    ("/", 200),
    ("/healthz", 200),
    ("/readyz", 200),
    ("/metrics", 200),
    ("/api/queue", 200),
    ("/schema", 200),
    ("/schema/openapi.json", 200),
    ("/static/app.js", 200),
    ("/static/style.css", 200),
    ("/favicon.ico", 200),
    ("/no-such-page", 404),
    ("/static/no-such-file.js", 404),
    ("/api/imports/no-such-import", 404),
    ("/schema/swagger", 404),
    ("/api/players/nowhere/someone/summary", 404),
]

# An attribute or CSS reference that leaves the hub: scheme-relative or absolute URLs.
FOREIGN = re.compile(
    r"""(?:src|href|action)\s*=\s*["']?\s*(?:[a-z][a-z0-9+.-]*:|//)|url\(\s*["']?\s*(?:[a-z]+:|//)""",
    re.I,
)


def fetch(hub: Proc, path: str) -> tuple[int, Message, bytes]:
    request = urllib.request.Request(
        hub.url + path, headers={"User-Agent": USER_AGENT, "Accept": "text/html,*/*"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


@pytest.fixture
def hub(sim: Proc, hub_factory: HubFactory) -> Proc:
    return hub_factory(sim)


def test_every_answer_carries_the_headers(hub: Proc) -> None:
    html = 0
    for path, status in PATHS:
        code, headers, body = fetch(hub, path)
        assert code == status, (path, body[:200])
        assert headers["X-Content-Type-Options"] == "nosniff", path
        assert headers["Referrer-Policy"] == "no-referrer", path
        if headers.get_content_type() == "text/html":
            html += 1
            policy = headers["Content-Security-Policy"] or ""
            assert "frame-ancestors 'none'" in policy and "default-src 'self'" in policy, path
            assert "script-src 'self'" in policy and "http" not in policy, path
            assert not FOREIGN.search(body.decode(errors="replace")), (path, body[:500])
    assert html >= 2  # the page and at least one error page were checked as HTML


def test_the_schema_is_json_and_no_viewer_page(hub: Proc) -> None:
    code, headers, body = fetch(hub, "/schema/openapi.json")
    assert code == 200 and b'"openapi"' in body
    assert "json" in headers.get_content_type()
    for viewer in ("/schema/swagger", "/schema/redoc", "/schema/elements", "/schema/rapidoc"):
        assert fetch(hub, viewer)[0] == 404
    code, headers, _ = fetch(hub, "/schema")
    assert headers.get_content_type() != "text/html"


def test_the_page_references_only_its_own_origin(hub: Proc) -> None:
    _, headers, body = fetch(hub, "/")
    page = body.decode()
    assert headers.get_content_type() == "text/html"
    assert "/static/app.js" in page  # the check below looked at the real page
    assert not FOREIGN.search(page)
    for asset in re.findall(r"""(?:src|href)="([^"]+)\"""", page):
        assert asset.startswith("/"), asset
        assert fetch(hub, asset)[0] == 200, asset
