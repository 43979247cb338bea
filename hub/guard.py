"""Limits at the door: origins, client addresses, socket counts and message rates."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from hub.settings import Settings, split_list

# WebSocket close codes (RFC 6455 and the IANA registry)
POLICY_VIOLATION = 1008
MESSAGE_TOO_BIG = 1009
TRY_AGAIN_LATER = 1013
SERVICE_RESTART = 1012


def ticket_key(ticket: str) -> str:
    """The name a ticket is filed under.

    Tickets are looked up by their SHA-256, so the time a lookup takes depends
    on the digest and tells an attacker nothing about the secret; the secret
    itself is never stored beside the queue nor logged.
    """
    return hashlib.sha256(ticket.encode("utf-8", "surrogatepass")).hexdigest()


def origin_allowed(
    origin: str | None, host: str | None, scheme: str, allowed: Iterable[str]
) -> bool:
    """Against cross-site WebSocket hijacking: only listed origins, or our own.

    A request without an Origin header does not come from a browser page, so
    it carries no victim's cookies and is let through.
    """
    if origin is None:
        return True
    listed = list(allowed)
    if listed:
        return origin in listed or "*" in listed
    if host is None:
        return False
    own = "https" if scheme in ("https", "wss") else "http"
    return origin == f"{own}://{host}"


def client_address(peer: str, headers: Mapping[str, str], trusted: Iterable[str]) -> str:
    """The client's address; X-Forwarded-For counts only when the peer is a trusted proxy."""
    forwarded = headers.get("x-forwarded-for")
    if forwarded and peer in set(trusted):
        # The right-most entry not added by a trusted proxy is the one the proxy saw.
        hops = [h.strip() for h in forwarded.split(",") if h.strip()]
        trusted_set = set(trusted)
        for hop in reversed(hops):
            if hop not in trusted_set:
                return hop
    return peer


@dataclass
class Door:
    """Counts open sockets per address and in all."""

    settings: Settings
    per_address: dict[str, int] = field(default_factory=dict)
    total: int = 0

    @property
    def trusted(self) -> list[str]:
        return split_list(self.settings.trust_proxy)

    @property
    def allowed_origins(self) -> list[str]:
        return split_list(self.settings.allowed_origins)

    def enter(self, address: str) -> int | None:
        """Take a place for a new socket, or return the close code that refuses it."""
        if self.total >= self.settings.max_sockets:
            return TRY_AGAIN_LATER
        if self.per_address.get(address, 0) >= self.settings.max_sockets_per_ip:
            return POLICY_VIOLATION
        self.total += 1
        self.per_address[address] = self.per_address.get(address, 0) + 1
        return None

    def leave(self, address: str) -> None:
        self.total -= 1
        left = self.per_address.get(address, 1) - 1
        if left <= 0:
            self.per_address.pop(address, None)
        else:
            self.per_address[address] = left


@dataclass
class Bucket:
    """A token bucket: `rate` messages a second with a burst of the same size."""

    rate: float
    tokens: float = -1.0
    stamp: float = 0.0
    strikes: int = 0  # messages refused in a row

    def allow(self, now: float) -> bool:
        if self.tokens < 0:
            self.tokens, self.stamp = self.rate, now
        self.tokens = min(self.rate, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            self.strikes = 0
            return True
        self.strikes += 1
        return False
