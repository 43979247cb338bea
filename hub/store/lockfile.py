"""One hub per SQLite file: an exclusive lock on `<file>.lock` for the life of the process."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from hub.store import sqlite_path


class DatabaseInUse(RuntimeError):
    """Another live process serves this SQLite file."""


@contextlib.contextmanager
def hold_database(url: str) -> Iterator[None]:
    """Hold the SQLite file of `url` for this process alone; other databases need nothing.

    The OS drops the lock when the process ends however it ends, so a hub started
    after a stopped or killed one gets the file, and marks its leftovers interrupted.
    """
    path = sqlite_path(url)
    if path is None:
        yield
        return
    lock = Path(path + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise DatabaseInUse(
                f"{path} is in use by another running hub (pid {holder}); "
                "stop it first or give this one another DATABASE_URL"
            ) from None
        # For the message above, seen by the next hub that tries.
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock
