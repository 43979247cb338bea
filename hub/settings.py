"""Every tuning knob, read once from the environment and overridable by CLI flags."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from typing import Any

import msgspec

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class SettingsError(ValueError):
    """An invalid configuration value; its message is one line naming the variable."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    max_concurrent_imports: int = 2
    database_url: str = "sqlite:///./hub.db"
    chesscom_url: str = "https://api.chess.com"
    lichess_url: str = "https://lichess.org"
    http_limit: int = 20
    http_limit_per_host: int = 5
    lane_chesscom: int = 2
    lane_lichess: int = 1
    lichess_page: int = 100
    resume_grace_s: float = 60.0
    user_agent: str = (
        "chess-import-hub/0.1 (+https://github.com/chess-import-hub/hub; hub@chess-import-hub.org)"
    )
    # fetch: requests in flight at once per upstream, across every import
    inflight_chesscom: int = 2
    inflight_lichess: int = 1
    retries: int = 5  # attempts after the first, per request
    retry_base_s: float = 0.5
    retry_max_s: float = 30.0
    pause_chesscom_s: float = 5.0  # wait after a 429 without Retry-After
    pause_lichess_s: float = 60.0
    request_timeout_s: float = 30.0
    breaker_failures: int = 5  # failed requests in a row that pause an upstream's imports
    breaker_probe_s: float = 30.0  # while paused so, one probe request this often
    # Games in progress are asked for by id; this only re-reads a margin behind the cursor,
    # for an export that lags behind the newest games.
    lichess_lookback_s: float = 600.0
    # estimates
    eta_prior_chesscom_s: float = 20.0
    eta_prior_lichess_s: float = 60.0
    eta_page_chesscom_s: float = 1.0
    eta_page_lichess_s: float = 5.0
    eta_alpha: float = 0.3
    eta_horizon: int = 500  # waiters simulated exactly; the rest from prefix sums
    eta_window: int = 200  # admissions whose estimates grade and correct the next ones
    probes_queued: int = 20  # size probes that may wait per upstream
    # fan-out
    board_hz: float = 4.0
    queued_hz: float = 2.0
    # limits (docs/SECURITY.md)
    ws_max_bytes: int = 4096
    ws_msgs_per_s: float = 5.0
    ws_ping_s: float = 20.0
    max_sockets_per_ip: int = 20
    max_sockets: int = 20000
    max_tickets_per_ip: int = 3
    max_queue: int = 10000
    allowed_origins: str = ""  # comma-separated; empty means the hub's own origin
    trust_proxy: str = ""  # comma-separated proxy addresses and CIDR ranges trusted for XFF
    ipv6_prefix: int = 64  # IPv6 clients are counted per network of this prefix length
    header_timeout_s: float = 10.0  # an HTTP request's headers must arrive within this
    shutdown_s: float = 10.0
    imports_keep_days: float = 30.0  # rows of ended imports older than this are deleted
    summary_concurrency: int = 4  # player summaries computed at once; the rest wait
    # fleet (PostgreSQL DATABASE_URL)
    poll_s: float = 1.0
    lease_s: float = 15.0
    # operator: the /admin/ routes answer only when a token is set
    admin_token: str = ""  # never logged


# (field, variable) for every knob; the variable names are the documented interface.
ENV: dict[str, str] = {
    "max_concurrent_imports": "MAX_CONCURRENT_IMPORTS",
    "database_url": "DATABASE_URL",
    "chesscom_url": "HUB_CHESSCOM_URL",
    "lichess_url": "HUB_LICHESS_URL",
    "http_limit": "HUB_HTTP_LIMIT",
    "http_limit_per_host": "HUB_HTTP_LIMIT_PER_HOST",
    "lane_chesscom": "HUB_LANE_CHESSCOM",
    "lane_lichess": "HUB_LANE_LICHESS",
    "lichess_page": "HUB_LICHESS_PAGE",
    "resume_grace_s": "HUB_RESUME_GRACE_S",
    "user_agent": "HUB_USER_AGENT",
    "inflight_chesscom": "HUB_INFLIGHT_CHESSCOM",
    "inflight_lichess": "HUB_INFLIGHT_LICHESS",
    "retries": "HUB_RETRIES",
    "retry_base_s": "HUB_RETRY_BASE_S",
    "retry_max_s": "HUB_RETRY_MAX_S",
    "pause_chesscom_s": "HUB_PAUSE_CHESSCOM_S",
    "pause_lichess_s": "HUB_PAUSE_LICHESS_S",
    "request_timeout_s": "HUB_REQUEST_TIMEOUT_S",
    "breaker_failures": "HUB_BREAKER_FAILURES",
    "breaker_probe_s": "HUB_BREAKER_PROBE_S",
    "lichess_lookback_s": "HUB_LICHESS_LOOKBACK_S",
    "eta_prior_chesscom_s": "HUB_ETA_PRIOR_CHESSCOM_S",
    "eta_prior_lichess_s": "HUB_ETA_PRIOR_LICHESS_S",
    "eta_page_chesscom_s": "HUB_ETA_PAGE_CHESSCOM_S",
    "eta_page_lichess_s": "HUB_ETA_PAGE_LICHESS_S",
    "eta_alpha": "HUB_ETA_ALPHA",
    "eta_horizon": "HUB_ETA_HORIZON",
    "eta_window": "HUB_ETA_WINDOW",
    "probes_queued": "HUB_PROBES_QUEUED",
    "board_hz": "HUB_BOARD_HZ",
    "queued_hz": "HUB_QUEUED_HZ",
    "ws_max_bytes": "HUB_WS_MAX_BYTES",
    "ws_msgs_per_s": "HUB_WS_MSGS_PER_S",
    "ws_ping_s": "HUB_WS_PING_S",
    "max_sockets_per_ip": "HUB_MAX_SOCKETS_PER_IP",
    "max_sockets": "HUB_MAX_SOCKETS",
    "max_tickets_per_ip": "HUB_MAX_TICKETS_PER_IP",
    "max_queue": "HUB_MAX_QUEUE",
    "allowed_origins": "HUB_ALLOWED_ORIGINS",
    "trust_proxy": "HUB_TRUST_PROXY",
    "ipv6_prefix": "HUB_IPV6_PREFIX",
    "header_timeout_s": "HUB_HEADER_TIMEOUT_S",
    "shutdown_s": "HUB_SHUTDOWN_S",
    "imports_keep_days": "HUB_IMPORTS_KEEP_DAYS",
    "summary_concurrency": "HUB_SUMMARY_CONCURRENCY",
    "poll_s": "HUB_POLL_S",
    "lease_s": "HUB_LEASE_S",
    "admin_token": "HUB_ADMIN_TOKEN",
}

# Knobs that must be at least 1 (counts) or positive (durations, rates).
_AT_LEAST_ONE = {
    "max_concurrent_imports",
    "http_limit",
    "http_limit_per_host",
    "lane_chesscom",
    "lane_lichess",
    "lichess_page",
    "inflight_chesscom",
    "inflight_lichess",
    "ws_max_bytes",
    "max_sockets_per_ip",
    "max_sockets",
    "max_tickets_per_ip",
    "max_queue",
    "eta_horizon",
    "eta_window",
    "summary_concurrency",
    "breaker_failures",
}
_DATABASE_SCHEMES = ("sqlite:///", "sqlite+aiosqlite:///", "postgresql://", "postgres://")
_HTTP = ("http://", "https://")
_POSITIVE = {
    "retry_max_s",
    "request_timeout_s",
    "board_hz",
    "queued_hz",
    "eta_alpha",
    "ws_msgs_per_s",
    "header_timeout_s",
    "shutdown_s",
    "poll_s",
    "lease_s",
    "breaker_probe_s",
}
_MAY_BE_EMPTY = {"allowed_origins", "trust_proxy", "admin_token"}


def _convert(field: str, name: str, raw: Any, kind: type) -> Any:
    try:
        if kind is int:
            value: Any = int(str(raw).strip())
        elif kind is float:
            value = float(str(raw).strip())
            if value != value or value in (float("inf"), float("-inf")):
                raise ValueError
        else:
            value = str(raw).strip()
            if not value and field not in _MAY_BE_EMPTY:
                raise ValueError
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a valid {kind.__name__}") from None
    if field in _AT_LEAST_ONE and value < 1:
        raise SettingsError(f"{name}={raw!r} must be at least 1")
    if kind in (int, float) and value < 0:
        raise SettingsError(f"{name}={raw!r} must not be negative")
    if field in _POSITIVE and value <= 0:
        raise SettingsError(f"{name}={raw!r} must be greater than 0")
    if field == "database_url" and not value.lower().startswith(_DATABASE_SCHEMES):
        raise SettingsError(f"{name}={raw!r} must start with sqlite:/// or postgresql://")
    if field.endswith("_url") and field != "database_url" and not value.startswith(_HTTP):
        raise SettingsError(f"{name}={raw!r} must start with http:// or https://")
    if field == "eta_alpha" and value > 1:
        raise SettingsError(f"{name}={raw!r} must be between 0 and 1")
    if field == "ipv6_prefix" and not 1 <= value <= 128:
        raise SettingsError(f"{name}={raw!r} must be between 1 and 128")
    if field == "trust_proxy":
        try:
            networks(value)
        except ValueError as exc:
            raise SettingsError(f"{name}={raw!r}: {exc}") from None
    return value


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Read the environment, then apply CLI overrides (None means "not given")."""
    env = os.environ if environ is None else environ
    kinds = {f.name: type(f.default) for f in msgspec.structs.fields(Settings)}
    values: dict[str, Any] = {}
    for field, name in ENV.items():
        if name in env:
            values[field] = _convert(field, name, env[name], kinds[field])
    for field, raw in overrides.items():
        if raw is None:
            continue
        if field not in kinds:
            raise SettingsError(f"unknown setting {field!r}")
        values[field] = _convert(field, "--" + field.replace("_", "-"), raw, kinds[field])
    return Settings(**values)


def split_list(value: str) -> list[str]:
    """A comma-separated setting as a list, blanks dropped."""
    return [part.strip() for part in value.split(",") if part.strip()]


def networks(value: str) -> list[IPNetwork]:
    """A comma-separated list of addresses and CIDR ranges (`10.0.0.0/8`, `2001:db8::/32`).

    An IPv4-mapped IPv6 address stands for the IPv4 address it maps, as client addresses do.
    Raises ValueError naming the first entry that is neither.
    """
    parsed: list[IPNetwork] = []
    for entry in split_list(value):
        try:
            network = ipaddress.ip_network(entry)
        except ValueError as exc:
            raise ValueError(f"{entry!r} is not an address or CIDR range ({exc})") from None
        mapped = getattr(network.network_address, "ipv4_mapped", None)
        if mapped is not None and network.prefixlen == 128:
            network = ipaddress.ip_network(mapped)
        parsed.append(network)
    return parsed
