"""Waiting for a condition against a deadline, for tests that must not sleep a fixed time."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar, cast

T = TypeVar("T")


async def eventually(
    check: Callable[[], T | Awaitable[T]],
    what: str,
    timeout: float = 30.0,
    every: float = 0.05,
) -> T:
    """Call `check` until it returns something true, and return that.

    Raises TimeoutError naming `what` and the last value seen once `timeout` has passed.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        value = cast(T, await result if inspect.isawaitable(result) else result)
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"not within {timeout} s: {what} (last: {value!r})")
        await asyncio.sleep(every)
