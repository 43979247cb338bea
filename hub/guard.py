"""Limits at the door: origins, client addresses, socket counts and message rates."""

from __future__ import annotations

import enum
import hashlib
import ipaddress
import math
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from hub.settings import IPNetwork, Settings, networks, split_list

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

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


def forwarded_for(raw_headers: Iterable[tuple[bytes, bytes]]) -> list[str]:
    """Every X-Forwarded-For hop, from all of the header's lines in the order they came.

    Some proxies add a line of their own instead of appending to the client's, so reading
    only the first line would let the client choose its address.
    """
    hops: list[str] = []
    for name, value in raw_headers:
        if name.lower() == b"x-forwarded-for":
            hops.extend(hop.strip() for hop in value.decode("latin-1").split(","))
    return [hop for hop in hops if hop]


def parse_ip(text: str) -> IPAddress | None:
    """An address as a proxy or the server writes it (ports and brackets dropped), or None.

    An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`) is the IPv4 address it maps.
    """
    text = text.strip()
    if text.startswith("["):  # [2001:db8::1]:443
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:  # 192.0.2.1:443
        text = text.partition(":")[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def address_key(ip: IPAddress, ipv6_prefix: int) -> str:
    """The name per-address limits count under: an IPv4 address, or an IPv6 network.

    One IPv6 subscriber is usually given a whole /64 (or more), so counting single
    IPv6 addresses would give one visitor 2^64 budgets.
    """
    if ip.version == 4 or ipv6_prefix >= 128:
        return str(ip)
    return str(ipaddress.ip_network((ip, ipv6_prefix), strict=False))


def client_address(
    peer: str, forwarded: Sequence[str], trusted: Sequence[IPNetwork], ipv6_prefix: int = 64
) -> str:
    """The key of the client's address; X-Forwarded-For counts only from a trusted proxy.

    `forwarded` holds the hops of every X-Forwarded-For line in order. Each proxy appends
    the address it saw, so walking from the right, the first hop that is not a trusted
    proxy is the client as the outermost trusted proxy saw it; whatever lies to its left
    was written by the client and is not believed.
    """
    chosen = parse_ip(peer)
    if chosen is None:
        return peer  # not an IP peer (a Unix socket): counted as given
    if forwarded and _trusted(chosen, trusted):
        for hop in reversed(forwarded):
            ip = parse_ip(hop)
            if ip is None:
                break  # a trusted proxy writes addresses: keep the last hop it vouched for
            chosen = ip
            if not _trusted(ip, trusted):
                break
    return address_key(chosen, ipv6_prefix)


def _trusted(ip: IPAddress, trusted: Sequence[IPNetwork]) -> bool:
    return any(ip in network for network in trusted)


@dataclass
class Door:
    """Counts open sockets per address and in all."""

    settings: Settings
    per_address: dict[str, int] = field(default_factory=dict)
    total: int = 0
    trusted: list[IPNetwork] = field(init=False)

    def __post_init__(self) -> None:
        self.trusted = networks(self.settings.trust_proxy)

    @property
    def allowed_origins(self) -> list[str]:
        return split_list(self.settings.allowed_origins)

    def address(self, peer: str, raw_headers: Iterable[tuple[bytes, bytes]]) -> str:
        """The key a connection from `peer` with these request headers is counted under."""
        hops = forwarded_for(raw_headers)
        return client_address(peer, hops, self.trusted, self.settings.ipv6_prefix)

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


class Verdict(enum.Enum):
    """What to do with one client message."""

    ALLOW = "allow"  # handle it
    DROP = "drop"  # refuse it without a word
    WARN = "warn"  # refuse it and answer `rate_limited`
    CLOSE = "close"  # close the socket with 1008


@dataclass(slots=True)
class Throttle:
    """The message limit of one socket, as plain state: the caller passes the clock in.

    A token bucket admits `rate` messages a second with a burst of as many. A refused
    message is dropped, and the socket hears `rate_limited` at most once per
    `warn_every_s`, so a flood is not answered by a flood. The socket is closed when a
    message is refused while more than `rate * window_s` arrived in the last `window_s`
    seconds: it keeps sending above the rate, at whatever pace. A one-off burst followed
    by a pause is refused, never closed.
    """

    rate: float
    window_s: float = 5.0
    warn_every_s: float = 1.0
    tokens: float = field(init=False)
    stamp: float | None = None
    warned: float | None = None
    # The latest rate * window_s + 1 arrival times, in a ring: a socket keeps one of these,
    # so it is a flat array of doubles rather than a deque of float objects.
    arrivals: array[float] = field(init=False)
    _size: int = field(init=False)  # how many arrivals the ring keeps
    _next: int = 0  # once the ring is full: where the next arrival goes, the oldest

    def __post_init__(self) -> None:
        self.tokens = self.burst
        self.arrivals = array("d")  # grows with the arrivals, up to _size
        self._size = math.floor(self.rate * self.window_s) + 1

    @property
    def burst(self) -> float:
        return max(self.rate, 1.0)  # below 1 a second, a bucket of `rate` would admit nothing

    def check(self, now: float) -> Verdict:
        ring = self.arrivals
        if len(ring) < self._size:
            ring.append(now)
        else:
            ring[self._next] = now
            self._next = (self._next + 1) % self._size
        if self.stamp is not None:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        # A client exactly at the rate must not lose a message to rounding.
        if self.tokens >= 1.0 - 1e-9:
            self.tokens -= 1.0
            return Verdict.ALLOW
        if self.sustained(now):
            return Verdict.CLOSE
        if self.warned is None or now - self.warned >= self.warn_every_s:
            self.warned = now
            return Verdict.WARN
        return Verdict.DROP

    def sustained(self, now: float) -> bool:
        """More than `rate * window_s` arrivals in the last `window_s` seconds."""
        # Full, the ring's oldest arrival is where the next one goes.
        full = len(self.arrivals) == self._size
        return full and self.arrivals[self._next] > now - self.window_s
