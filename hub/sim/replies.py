"""Answers shaped like the sites' own: JSON errors, HTML pages, conditional 200/304."""

from __future__ import annotations

import email.utils
from typing import Any

import msgspec
from aiohttp import web

OPEN_MAX_AGE = 300
CLOSED_MAX_AGE = 43200
_PAGE = "<!DOCTYPE html><html><head><title>{0}</title></head><body><h1>{0}</h1></body></html>"
FAKE_404 = _PAGE.format("Page not found!")
TOO_MANY = _PAGE.format("Too many requests. Try again later.")
UNAVAILABLE = _PAGE.format("503 Service Temporarily Unavailable")

encoder = msgspec.json.Encoder()


def json_reply(status: int, payload: Any) -> web.Response:
    body = encoder.encode(payload)
    return web.Response(status=status, body=body, content_type="application/json")


def html_reply(status: int, page: str) -> web.Response:
    return web.Response(status=status, text=page, content_type="text/html")


def conditional(
    request: web.Request, body: bytes, tag: str, modified: int, max_age: int
) -> web.Response:
    """200 with validators, or 304 when the client's copy is still current."""
    headers = {
        "ETag": tag,
        "Last-Modified": email.utils.formatdate(modified, usegmt=True),
        "Cache-Control": f"max-age={max_age}",
    }
    match = request.headers.get("If-None-Match")
    if match is not None:
        # If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2)
        tags = {t.strip().removeprefix("W/") for t in match.split(",")}
        fresh = "*" in tags or tag in tags
    else:
        since = request.if_modified_since
        fresh = since is not None and since.timestamp() >= modified
    if fresh:
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, headers=headers, content_type="application/json")
