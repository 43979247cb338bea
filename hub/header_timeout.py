"""A deadline for HTTP request headers, which uvicorn's own protocols do not have."""

from __future__ import annotations

import asyncio
from typing import cast


class HeaderTimeout(asyncio.Protocol):
    """Closes a connection whose request headers are not complete within `header_timeout_s`.

    uvicorn (0.55, h11 and httptools alike) arms no timer until a response is complete:
    a connection that sends nothing, or its headers a byte a second, holds a descriptor
    and a parser for as long as it likes. The deadline runs from the connection's first
    moment, and on a kept-alive connection from the first byte of each further request;
    it ends when the headers are parsed or the connection becomes a WebSocket.
    """

    header_timeout_s: float = 10.0
    _timer: asyncio.TimerHandle | None = None
    _pending: object = None  # the request in progress when the timer was armed
    _transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._transport = transport
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._timer is None and self._between_requests():
            self._arm()
        super().data_received(data)
        if self._timer is not None and (self._request() is not self._pending or self._upgraded()):
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _request(self) -> object:
        # Both uvicorn protocols start a new `cycle` once a request's headers are parsed.
        return getattr(self, "cycle", None)

    def _between_requests(self) -> bool:
        cycle = self._request()
        return cycle is None or bool(getattr(cycle, "response_complete", True))

    def _upgraded(self) -> bool:
        return self._transport is not None and self._transport.get_protocol() is not self

    def _arm(self) -> None:
        self._pending = self._request()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.header_timeout_s, self._expire)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()


def http_protocol(name: str, header_timeout_s: float) -> type[asyncio.Protocol]:
    """uvicorn's `h11` or `httptools` protocol with the header deadline."""
    base: type[asyncio.Protocol]
    if name == "httptools":
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as base
    else:
        from uvicorn.protocols.http.h11_impl import H11Protocol as base
    attributes = {"header_timeout_s": header_timeout_s}
    return cast(type[asyncio.Protocol], type(base.__name__, (HeaderTimeout, base), attributes))
