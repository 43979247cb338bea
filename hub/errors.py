"""Failures a user can see, each with a stable code for the protocol."""

from __future__ import annotations


class HubError(Exception):
    """Base of every failure that reaches a browser as `failed` or `error`."""

    code = "internal"
    default_message = "Something went wrong inside the hub."

    def __init__(self, message: str | None = None, status: int | None = None) -> None:
        super().__init__(message or self.default_message)
        self.status = status  # the upstream's last HTTP status, when one is to blame

    @property
    def message(self) -> str:
        return str(self.args[0])


class PlayerNotFound(HubError):
    code = "player_not_found"
    default_message = "That player does not exist on this site."


class UpstreamUnavailable(HubError):
    code = "upstream_unavailable"
    default_message = "The chess site is not answering right now. Try again later."


class UpstreamPaused(HubError):
    """The upstream's breaker is open: the import goes back to the head of its line."""

    code = "upstream_paused"
    default_message = "The chess site is not answering; the import waits for it."


class RateLimited(HubError):
    code = "rate_limited"
    default_message = "The chess site keeps asking us to slow down. Try again later."


class UpstreamBadData(HubError):
    code = "upstream_bad_data"
    default_message = "The chess site sent data we could not read."


class Cancelled(HubError):
    code = "cancelled"
    default_message = "The import was cancelled."


class StorageUnavailable(HubError):
    code = "storage_unavailable"
    default_message = "The game database is not reachable right now. Try again later."
