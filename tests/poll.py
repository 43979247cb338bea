"""Waiting for a condition against a deadline, for tests that must not sleep a fixed time."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")


@overload
async def eventually(
    check: Callable[[], Awaitable[T]], what: str, timeout: float = ..., every: float = ...
) -> T: ...


@overload
async def eventually(
    check: Callable[[], T], what: str, timeout: float = ..., every: float = ...
) -> T: ...


async def eventually(
    check: Callable[[], Any], what: str, timeout: float = 30.0, every: float = 0.05
) -> Any:
    """Call `check` (a function or a coroutine function) until it returns something true,
    and return that.

    Raises TimeoutError naming `what` and the last value seen once `timeout` has passed.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"not within {timeout} s: {what} (last: {value!r})")
        await asyncio.sleep(every)
