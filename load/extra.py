"""The load tool's optional dependencies: one clear line when they are not installed."""

from __future__ import annotations

INSTALL = "pip install -e '.[load]'"
MODULES = ("rich", "matplotlib")


def missing(exc: ModuleNotFoundError) -> SystemExit:
    """The exit for a module of the `load` extra that is not installed.

    Any other missing module is a different fault and is raised as it was.
    """
    if (exc.name or "").partition(".")[0] not in MODULES:
        raise exc
    return SystemExit(f"load: {exc.name} is not installed; install the load extra: {INSTALL}")
