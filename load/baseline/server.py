"""The old design, reproduced: `POST /import` waits for a slot (`asyncio.Semaphore(N)`), runs the
import and answers when it is done. Nobody learns a position or an estimate while waiting.

`python -m load.baseline.server --port P --slots N --sim URL --database sqlite:///path`.
The import is the hub's own (`hub.importer.run_import`: the same fetch layer and store), so
the two designs differ only in how they admit and tell.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from hub.fetch import make_sources
from hub.fetch.http import Http
from hub.importer import run_import
from hub.settings import load_settings
from hub.store import ImportRecord, open_store

SLOTS = web.AppKey("slots", asyncio.Semaphore)
STATE = web.AppKey("state", dict[str, Any])


async def import_handler(request: web.Request) -> web.Response:
    body = await request.json()
    source, username = str(body["source"]), str(body["username"]).lower()
    state = request.app[STATE]
    state["waiting"] += 1
    queued_at = time.monotonic()
    async with request.app[SLOTS]:
        state["waiting"] -= 1
        state["running"] += 1
        state["peak_running"] = max(state["peak_running"], state["running"])
        try:
            import_id = secrets.token_hex(8)
            store = state["store"]
            await store.create_import(
                ImportRecord(
                    id=import_id,
                    source=source,
                    username=username,
                    state="queued",
                    created_at=time.time(),
                )
            )
            outcome = await run_import(
                import_id,
                state["sources"][source],
                username,
                store,
                asyncio.Event(),
                lambda page, pages, games: None,
                lambda reason, retry_in_s: None,
                time.time,
            )
        finally:
            state["running"] -= 1
    state["finished"] += 1
    return web.json_response(
        {
            "state": outcome.state,
            "games": outcome.games_new,
            "waited_s": round(time.monotonic() - queued_at, 3),
        }
    )


async def stats_handler(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response({k: v for k, v in state.items() if isinstance(v, int)})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def make_app(slots: int, sim_url: str, database_url: str) -> web.Application:
    app = web.Application()
    app[SLOTS] = asyncio.Semaphore(slots)
    app[STATE] = {"waiting": 0, "running": 0, "peak_running": 0, "finished": 0}

    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        settings = load_settings(
            environ={}, chesscom_url=sim_url, lichess_url=sim_url, database_url=database_url
        )
        store = open_store(database_url)
        await store.connect()
        http = await Http.open(settings)
        app[STATE]["store"] = store
        app[STATE]["sources"] = make_sources(http, settings)
        yield
        await http.close()
        await store.close()

    app.cleanup_ctx.append(lifespan)
    app.router.add_post("/import", import_handler)
    app.router.add_get("/stats", stats_handler)
    app.router.add_get("/healthz", healthz)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m load.baseline.server", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--sim", required=True, help="simulator base URL")
    parser.add_argument("--database", required=True)
    args = parser.parse_args()
    web.run_app(
        make_app(args.slots, args.sim, args.database),
        host="127.0.0.1",
        port=args.port,
        print=None,
        access_log=None,
    )


if __name__ == "__main__":
    main()
