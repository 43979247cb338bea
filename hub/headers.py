"""Security headers on every HTTP response, and an OpenAPI schema served without a page."""

from __future__ import annotations

from litestar.datastructures import MutableScopeHeaders
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.types import Message, Scope

# What static/index.html needs and no more: its own scripts, styles and socket. A header,
# unlike the page's meta tag, can also forbid framing (the Cancel button must not be
# clickable through someone else's page).
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # On every response, not only pages: an error page or a file opened in a tab
    # is a document too.
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
}

# The schema as JSON at /schema/openapi.json (and /schema); no HTML viewer, since the
# ones Litestar offers load their scripts from a CDN, beside the page that keeps tickets.
OPENAPI = OpenAPIConfig(title="chess import hub", version="1", render_plugins=[JsonRenderPlugin()])


async def add_security_headers(message: Message, scope: Scope) -> None:
    """A `before_send` hook: every HTTP response, routed or not, goes through it."""
    if message["type"] != "http.response.start":
        return
    headers = MutableScopeHeaders.from_message(message)
    for name, value in SECURITY_HEADERS.items():
        headers[name] = value
