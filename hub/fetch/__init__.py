"""All upstream traffic of the hub: chess.com and lichess sources over one HTTP session."""

from __future__ import annotations

from hub.fetch.base import Page, Source, WaitCallback
from hub.fetch.chesscom import ChessCom
from hub.fetch.http import Http, HttpStats
from hub.fetch.lichess import Lichess
from hub.settings import Settings

__all__ = [
    "ChessCom",
    "Http",
    "HttpStats",
    "Lichess",
    "Page",
    "Source",
    "WaitCallback",
    "make_sources",
]


def make_sources(http: Http, settings: Settings) -> dict[str, Source]:
    """One source per site, all sharing the app's single HTTP session."""
    return {"chesscom": ChessCom(http, settings), "lichess": Lichess(http, settings)}
