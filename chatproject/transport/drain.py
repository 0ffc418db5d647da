"""The graceful stop on SIGTERM (or SIGINT): refuse new work, close every open WebSocket
with 1012, wait until their applications have finished, then stop the reactor.

The wait is on Daphne's own bookkeeping, not on the application: `server.connections`
holds, per protocol, the future of its application instance, and an instance ends only
once its consumer's `disconnect` has returned (Channels raises StopConsumer after it),
so presence, `user_offline` and `last_seen` are written before the process stops.
SHUTDOWN_TIMEOUT bounds the whole drain.
"""

import asyncio
import time
from typing import Any

from daphne.server import Server
from daphne.ws_protocol import WebSocketProtocol
from django.conf import settings

from .access_log import access_log
from .state import CLOSE_RESTARTING, drain_hooks, start_draining

# Keeps the drain task referenced while it runs (the loop holds tasks weakly).
_drain_task: asyncio.Future[None] | None = None


def open_websockets(server: Server) -> list[Any]:
    """WebSocket connections still open (a close frame may be on its way)."""
    return [
        protocol
        for protocol in server.connections
        if isinstance(protocol, WebSocketProtocol) and protocol.state == protocol.STATE_OPEN
    ]


def running_websockets(server: Server) -> list[Any]:
    """WebSocket connections whose application instance has not finished: sockets open
    or closing, and sockets gone whose consumer is still in `disconnect`. (Daphne's
    application checker forgets a connection once both are over.)"""
    running = []
    for protocol, details in list(server.connections.items()):
        if not isinstance(protocol, WebSocketProtocol):
            continue
        # Absent until create_application ran, and once the checker reaped it.
        instance = details.get("application_instance")
        if instance is not None and not instance.done():
            running.append(protocol)
    return running


def begin_drain(server: Server, reactor: Any, reason: str) -> None:
    """Start the drain (in the reactor's thread); a second signal changes nothing."""
    global _drain_task
    if not start_draining():  # from now on /readyz answers 503, new sockets get 1012
        return
    access_log.info("server_draining", signal=reason, sockets=len(running_websockets(server)))
    _drain_task = asyncio.ensure_future(_drain(server, reactor), loop=reactor._asyncioEventloop)


async def _drain(server: Server, reactor: Any) -> None:
    deadline = time.monotonic() + settings.SHUTDOWN_TIMEOUT
    try:
        for protocol in open_websockets(server):
            protocol.serverClose(code=CLOSE_RESTARTING)
        for hook in drain_hooks():  # e.g. Socket.IO's polling clients (`state.on_drain`)
            try:
                await hook(max(0.0, deadline - 1 - time.monotonic()))
            except Exception:
                access_log.exception("server_drain_hook_failed")
        # Each socket's close handshake ends (or autobahn drops it after
        # CLOSE_HANDSHAKE_TIMEOUT), then its consumer's `disconnect` runs; messages being
        # stored finish meanwhile. A second is left for the reactor's own shutdown.
        while running_websockets(server) and time.monotonic() < deadline - 1:
            await asyncio.sleep(0.05)
    finally:
        access_log.info("server_drained", sockets_left=len(running_websockets(server)))
        reactor.stop()
