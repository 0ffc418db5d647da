"""Daphne's server with the project's limits, run until SIGTERM or SIGINT drains it.

`daphne.server` installs Twisted's asyncio reactor when it is imported, so this module is
imported only by `chatproject.transport.serve`, after `internals.check_dependencies`.
"""

import asyncio
import gc
import signal
from functools import partial
from types import FrameType
from typing import Any

from autobahn.websocket.compress_deflate import PerMessageDeflateOffer, PerMessageDeflateOfferAccept
from channels.routing import get_default_application
from daphne.endpoints import build_endpoint_description_strings
from daphne.server import Server  # before Twisted's reactor: it installs the asyncio one
from django.conf import settings
from twisted.internet import reactor as _reactor

from chatproject import metrics

from . import ListenFailed
from .access_log import access_log, log_action
from .deflate import accept_deflate
from .drain import begin_drain
from .edge import ChatHTTPFactory, EdgeLimits
from .inbox import Inbox
from .protocol import ChatWebSocketProtocol, defer_debug_formatting
from .proxies import apply_forwarded

reactor: Any = _reactor  # Twisted types the reactor as a module; it is the asyncio one

# Seconds a client gets to answer our close frame before the connection is dropped
# (the drain still ends by SHUTDOWN_TIMEOUT).
CLOSE_HANDSHAKE_TIMEOUT = 5.0


class ChatServer(Server):
    """Daphne's server, with a lighter input queue per application (`Inbox`), telling
    each WebSocket application how to write a pre-framed event straight to its
    connection (`scope["extensions"]["chat.send_wire"]`), serving HTTP through the
    project's edge (`edge.ChatHTTPFactory`: body limit, head deadline, pending
    connections), and reading `X-Forwarded-*` from trusted proxies only (`proxies`)."""

    listen_failure: str | None = None

    def __init__(self, *args: Any, limits: EdgeLimits, **kwargs: Any) -> None:
        self.limits = limits
        super().__init__(*args, **kwargs)

    @property
    def http_factory(self) -> ChatHTTPFactory:
        return self._http_factory

    @http_factory.setter
    def http_factory(self, daphne_factory: Any) -> None:
        # `run` builds Daphne's factory and listens with it at once; ours takes its place
        # (a subclass: same requests, same WebSocket handover).
        self._http_factory = ChatHTTPFactory(self, self.limits)

    def listen_error(self, failure: Any) -> None:
        # Daphne logs the failure and stops, and its `run` returns as after a clean
        # stop; `serve` must exit non-zero so a supervisor sees the port was taken.
        self.listen_failure = failure.getErrorMessage()
        super().listen_error(failure)

    def create_application(self, protocol: Any, scope: dict[str, Any]) -> Inbox | None:
        # Daphne 4.2's create_application, with an Inbox for its asyncio.Queue.
        assert "application_instance" not in self.connections[protocol]
        # Daphne put the TCP peer in `client` (it is given no proxy header to read).
        peer = scope.get("client")
        apply_forwarded(scope, self.limits.trusted_proxies)
        if scope.get("client") != peer:  # Daphne's access log shows the client too
            protocol.client_addr = scope["client"]
        if isinstance(protocol, ChatWebSocketProtocol):
            extensions = {**scope.get("extensions", {}), "chat.send_wire": protocol.send_wire}
            scope["extensions"] = extensions
        scope.setdefault("asgi", {"version": "3.0"})
        inbox = Inbox()
        instance = self.application(
            scope=scope, receive=inbox.get, send=partial(self.handle_reply, protocol)
        )
        if protocol not in self.connections:
            return None
        self.connections[protocol]["application_instance"] = asyncio.ensure_future(
            instance, loop=asyncio.get_event_loop()
        )
        return inbox


def settle_the_heap() -> None:
    """Move what startup built (Django, the apps, their modules: ~140,000 objects) out of
    the collector's sight. A full collection walks every tracked object and stops the
    whole process meanwhile (~160 ms for these alone on a small machine); they live as
    long as the process, so walking them finds nothing. Instagram's `gc.freeze` recipe.
    """
    gc.collect()
    gc.freeze()
    # Then collect less often: a young collection every 20,000 allocations instead of
    # 700 lets a frame's temporaries die young instead of being promoted, and a full
    # pass is considered after 100 middle ones instead of 10. With 1,000 sockets a full
    # pass takes ~90 ms here; at the defaults one came every few seconds of fan-out.
    gc.set_threshold(20_000, 50, 100)
    metrics.time_full_collections()


def refuse_compression(offers: Any) -> None:
    """No extension: every offer is declined (WEBSOCKET_COMPRESSION off)."""
    return None


def run(*, host: str, port: int, proxy_headers: bool) -> None:
    """Serve until drained; raise ListenFailed if the endpoint cannot be bound."""
    application = get_default_application()

    def ready() -> None:
        # Autobahn fails a connection (a frame over the limit, a protocol error) by
        # dropping TCP unless told otherwise; clients are promised a close code (1009).
        # Autobahn waits 1 s for a client to answer our close frame; mobile clients
        # on a slow link need longer, and a drain should not cut them off that soon.
        # permessage-deflate for clients that offer it (WEBSOCKET_COMPRESSION), without
        # server context takeover so that a frame is compressed once per event (`deflate`).
        accept = (
            accept_deflate(
                PerMessageDeflateOffer,
                PerMessageDeflateOfferAccept,
                max_message_size=settings.WEBSOCKET_MAX_FRAME_BYTES,
            )
            if settings.WEBSOCKET_COMPRESSION
            else refuse_compression
        )
        server.ws_factory.setProtocolOptions(
            failByDrop=False,
            closeHandshakeTimeout=CLOSE_HANDSHAKE_TIMEOUT,
            perMessageCompressionAccept=accept,
        )
        server.ws_factory.protocol = ChatWebSocketProtocol
        defer_debug_formatting()
        # Under --proxy-headers, the proxies whose X-Forwarded-* are believed; else None.
        trusted = [str(network) for network in limits.trusted_proxies] if proxy_headers else None
        # The address to open, as `runserver` prints it (a wildcard host is not one).
        shown = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(host, host)
        access_log.info(
            "server_starting",
            host=host,
            port=port,
            url=f"http://{shown}:{port}/",
            trusted_proxies=trusted,
        )

    limits = EdgeLimits.from_settings(proxy_headers=proxy_headers)
    server = ChatServer(
        limits=limits,
        application=application,
        endpoints=build_endpoint_description_strings(host=host, port=port),
        action_logger=log_action,
        # Daphne closes every socket after 24 h by default; clients here stay.
        websocket_timeout=-1,
        websocket_connect_timeout=20,
        websocket_handshake_timeout=5,
        # Frames over 64 KiB are closed with 1009 by the WebSocket protocol layer.
        websocket_max_message_size=settings.WEBSOCKET_MAX_FRAME_BYTES,
        websocket_max_frame_size=settings.WEBSOCKET_MAX_FRAME_BYTES,
        ping_interval=20,
        ping_timeout=30,
        application_close_timeout=settings.SHUTDOWN_TIMEOUT,
        # No proxy header for Daphne, which believes any peer's left-most X-Forwarded-For:
        # create_application reads them, from TRUSTED_PROXIES only (`proxies`).
        ready_callable=ready,
        server_name="chat",
        verbosity=0,
        # SIGTERM and SIGINT are ours: Daphne alone would stop at once, without a close
        # frame for any socket (clients would see 1006, as after a crash).
        signal_handlers=False,
    )

    def on_signal(signum: int, frame: FrameType | None) -> None:
        reactor.callFromThread(begin_drain, server, reactor, signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    settle_the_heap()
    server.run()
    if server.listen_failure:
        raise ListenFailed(server.listen_failure)
    access_log.info("server_stopped")
