"""Calling a hub's /admin/ routes from tests."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from tests.procs import USER_AGENT, Proc

TOKEN = "test-admin-token-8e1f"


def admin(
    hub: Proc,
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str | None = TOKEN,
    raw: bytes | None = None,
    authorization: str | None = None,
) -> tuple[int, Any, dict[str, str]]:
    """(status, JSON answer, headers) of one admin request; errors are answers too.

    `authorization` replaces the whole header that `token` would make.
    """
    headers = {"User-Agent": USER_AGENT}
    if authorization is not None:
        headers["Authorization"] = authorization
    elif token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    if method == "POST" and data is None:
        data = b""
    request = urllib.request.Request(hub.url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read()), _lower(response.headers)
    except urllib.error.HTTPError as exc:
        text = exc.read()
        return exc.code, json.loads(text) if text else None, _lower(exc.headers)


def state(hub: Proc) -> dict[str, Any]:
    status, answer, _ = admin(hub, "GET", "/admin/state")
    assert status == 200, answer
    result: dict[str, Any] = answer
    return result


def change(hub: Proc, path: str, body: Any = None) -> dict[str, Any]:
    """A POST that must succeed; the state it answers."""
    status, answer, _ = admin(hub, "POST", path, body)
    assert status == 200, answer
    result: dict[str, Any] = answer
    return result


def ready(hub: Proc) -> int:
    request = urllib.request.Request(hub.url + "/readyz", headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _lower(headers: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}
