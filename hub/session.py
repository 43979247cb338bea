"""One WebSocket connection: read client frames, answer errors, drain the mailbox."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from litestar import WebSocket

from hub import protocol as p
from hub.errors import HubError, StorageUnavailable
from hub.fanout import Client
from hub.guard import POLICY_VIOLATION, Throttle, Verdict
from hub.importer import describe
from hub.mailbox import Mailbox, Outbox
from hub.service import ImportHub

log = logging.getLogger("hub.session")

SLOW_DOWN = "Too many messages; wait a moment before sending more."


async def serve_socket(
    socket: WebSocket[Any, Any, Any], hub: ImportHub, outbox: Outbox, address: str
) -> None:
    """Speak protocol v1 on an accepted socket until it closes.

    The socket's one task is this reader; the outbox writes its messages.
    """
    client = Client(Mailbox(socket.send_text, outbox), address=address)
    hub.fanout.connect(client)
    client.put(hub.hello())
    throttle = Throttle(hub.settings.ws_msgs_per_s)
    loop = asyncio.get_running_loop()
    try:
        while True:
            event = await socket.receive()
            if event["type"] == "websocket.disconnect":
                break
            verdict = throttle.check(loop.time())
            if verdict is Verdict.CLOSE:
                await socket.close(POLICY_VIOLATION, "too many messages")
                break
            if verdict is not Verdict.ALLOW:
                if verdict is Verdict.WARN:
                    client.put(p.Error("rate_limited", SLOW_DOWN))
                continue
            text = event.get("text")
            if not isinstance(text, str):
                client.put(p.Error("binary_frame", "Send JSON text frames, not binary ones."))
                continue
            await _handle(hub, client, text)
    finally:
        await hub.disconnected(client)


async def _handle(hub: ImportHub, client: Client, text: str) -> None:
    try:
        message = p.decode(text)
        if isinstance(message, p.Import):
            await hub.request_import(client, message.source, message.username, message.repair)
        elif isinstance(message, p.Resume):
            await hub.resume(client, message.ticket)
        elif isinstance(message, p.Cancel):
            await hub.cancel(client, message.ticket)
        elif isinstance(message, p.WatchQueue):
            hub.fanout.watch(client)
    except (p.ProtocolError, HubError) as exc:
        client.put(p.Error(exc.code, exc.message))
    except Exception as exc:
        if hub.store.is_unavailable(exc):  # in a fleet, the line itself lives in the database
            log.warning("storage unavailable - message refused", extra={"error": describe(exc)})
            unavailable = StorageUnavailable()
            client.put(p.Error(unavailable.code, unavailable.message))
            return
        log.exception("could not handle a client message")
        client.put(p.Error("internal", "The hub could not handle that message; try again."))
