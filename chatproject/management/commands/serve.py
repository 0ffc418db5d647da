"""`python manage.py serve`: Daphne with the project's limits, a structured access log,
and a graceful drain on SIGTERM (SHUTDOWN_TIMEOUT bounds it)."""

import asyncio
import gc
import signal
import time
from functools import partial
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from chatproject import health, metrics
from chatproject.logs import get_logger
from messaging.consumers import CLOSE_RESTARTING, CLOSE_TOO_SLOW, CLOSE_TRY_AGAIN
from messaging.sockets import local_sockets

access_log = get_logger("chatproject.access")

# Seconds a client gets to answer our close frame before the connection is dropped
# (the drain still ends by SHUTDOWN_TIMEOUT).
CLOSE_HANDSHAKE_TIMEOUT = 5.0


def scrub(path: str) -> str:
    """The path with secrets removed from its query string (`?token=` never reaches a log)."""
    parts = urlsplit(path)
    if not parts.query:
        return parts.path
    query = [
        (k, "[redacted]" if k.lower() in ("token", "access", "refresh") else v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return f"{parts.path}?{urlencode(query, safe='[]')}"


def log_action(protocol: str, action: str, details: dict[str, Any]) -> None:
    """Daphne's action logger, as one structured line per request or socket event."""
    path = scrub(str(details.get("path", "")))
    if protocol == "http" and action == "complete":
        access_log.info(
            "http_request",
            method=details.get("method"),
            path=path,
            status=details.get("status"),
            duration_ms=round((details.get("time_taken") or 0) * 1000, 1),
            size=details.get("size"),
            client=details.get("client"),
        )
    elif protocol == "websocket" and action in ("rejected", "disconnected"):
        access_log.info(f"ws_{action}", path=path, client=details.get("client"))


def pending_bytes(transport: Any) -> int:
    """Bytes Twisted holds for a connection that the kernel would not take yet."""
    buffered = len(getattr(transport, "dataBuffer", b"")) - getattr(transport, "offset", 0)
    return buffered + getattr(transport, "_tempDataLen", 0)


def write_now(transport: Any, data: bytes) -> bytes:
    """Hand `data` to the kernel at once when nothing is queued before it; answer what the
    kernel did not take, for the transport's buffer.

    Twisted's `write` always buffers: it registers the socket for writability and sends
    on the next turn of the loop, which costs two `epoll_ctl` calls and most of a fan-out
    delivery's CPU. A connection that keeps up has an empty buffer and a socket that takes
    the frame; then this is one `send`. TLS connections (framed by Twisted) are left alone.
    """
    if (
        getattr(transport, "TLS", True)
        or not transport.connected
        or transport.disconnecting
        or pending_bytes(transport)
    ):
        return data
    sent = transport.writeSomeData(data)
    if not isinstance(sent, int):  # the connection is gone: Twisted's buffer finds out
        return data
    return data[sent:]


def chat_protocol():
    """Daphne's WebSocket protocol with two additions:

    - a bounded outgoing buffer: Daphne buffers frames for a client that does not read
      without limit; past WEBSOCKET_SEND_BUFFER bytes this one stops queueing, closes
      the socket with 4408 (the client reconnects and recovers with `after`) and drops
      the connection if the close handshake does not finish within two seconds;
    - close codes 1012 ("service restart") and 1013 ("try again later"), in the IANA
      WebSocket close code registry, which autobahn's `sendClose` refuses (it takes only
      1000 and 3000-4999).
    """
    from daphne.ws_protocol import WebSocketProtocol
    from twisted.internet import reactor

    limit = settings.WEBSOCKET_SEND_BUFFER

    class ChatWebSocketProtocol(WebSocketProtocol):
        too_slow = False

        def serverSend(self, content: Any, binary: bool = False) -> None:
            if self.too_slow:
                return  # closing: nothing more is queued
            if self.state == self.STATE_OPEN and self._over_limit():
                return
            super().serverSend(content, binary)

        def send_wire(self, wire: bytes, text: str) -> None:
            """Write a text frame the fan-out framed once for all its sockets (the
            `chat.send_wire` scope extension), past ASGI, Daphne and autobahn's framing."""
            if self.too_slow or self.state != self.STATE_OPEN:
                return
            if self._perMessageCompress is not None:  # compression: framed per socket
                self.serverSend(text)
                return
            rest = write_now(self.transport, wire)
            if rest and not self._over_limit():
                self.transport.write(rest)

        def _over_limit(self) -> bool:
            if pending_bytes(self.transport) <= limit:
                return False
            self.too_slow = True
            metrics.SLOW_CLIENT_CLOSES.inc()
            access_log.info("ws_slow_client_closed", client=str(self.client_addr))
            self.sendClose(code=CLOSE_TOO_SLOW)
            reactor.callLater(2, self._drop_if_open)
            return True

        def _drop_if_open(self) -> None:
            if self.state != self.STATE_CLOSED:
                self.dropConnection(abort=True)  # frees the buffer at once

        def serverClose(self, code: int | None = None) -> None:
            if code in (CLOSE_RESTARTING, CLOSE_TRY_AGAIN) and self.state == self.STATE_OPEN:
                self.sendCloseFrame(code=code, isReply=False)
                return
            super().serverClose(code)

    return ChatWebSocketProtocol


class Inbox:
    """What Daphne needs of an application's input queue (`put_nowait`, `get`), without
    asyncio.Queue's three deques and Event: ~2.9 KiB per connection, most of it idle.

    As in asyncio.Queue, an item stays queued until a getter takes it, so a getter that
    is cancelled after being woken loses nothing.
    """

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._waiter: asyncio.Future | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def get(self) -> Any:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.pop(0)


def chat_server_class(server_class: type) -> type:
    """Daphne's server, with a lighter input queue per application (`Inbox`), and telling
    each WebSocket application how to write a pre-framed event straight to its
    connection: `scope["extensions"]["chat.send_wire"]`."""

    class ChatServer(server_class):
        listen_failure: str | None = None

        def listen_error(self, failure: Any) -> None:
            # Daphne logs the failure and stops, and its `run` returns as after a clean
            # stop; `serve` must exit non-zero so a supervisor sees the port was taken.
            self.listen_failure = failure.getErrorMessage()
            super().listen_error(failure)

        def create_application(self, protocol: Any, scope: dict[str, Any]):
            # Daphne 4.2's create_application, with an Inbox for its asyncio.Queue.
            assert "application_instance" not in self.connections[protocol]
            send_wire = getattr(protocol, "send_wire", None)
            if send_wire is not None:
                scope["extensions"] = {**scope.get("extensions", {}), "chat.send_wire": send_wire}
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

    return ChatServer


def begin_drain(reactor: Any, reason: str) -> None:
    """The graceful stop: refuse new work, close open sockets with 1012, then stop."""
    global _drain_task
    if health.draining:
        return  # a second signal while draining changes nothing
    health.draining = True  # /readyz answers 503, new sockets are closed with 1012
    access_log.info("server_draining", signal=reason, sockets=len(local_sockets))
    _drain_task = asyncio.ensure_future(_drain(reactor), loop=reactor._asyncioEventloop)


_drain_task: asyncio.Future | None = None


async def _drain(reactor: Any) -> None:
    deadline = time.monotonic() + settings.SHUTDOWN_TIMEOUT
    try:
        await local_sockets.close_all(code=CLOSE_RESTARTING)
        # Each socket leaves the registry once its close handshake is done and its
        # `disconnect` has run (presence, groups); messages being stored finish meanwhile.
        while len(local_sockets) and time.monotonic() < deadline - 1:
            await asyncio.sleep(0.05)
    finally:
        access_log.info("server_drained", sockets_left=len(local_sockets))
        reactor.stop()


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


class Command(BaseCommand):
    help = "Serve HTTP and WebSockets with Daphne (HOST/PORT from the environment)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=None, help=f"default: HOST ({settings.HOST})")
        parser.add_argument(
            "--port", type=int, default=None, help=f"default: PORT ({settings.PORT})"
        )
        parser.add_argument(
            "--proxy-headers",
            action="store_true",
            help="trust X-Forwarded-For/-Port/-Proto (only behind your own load balancer)",
        )

    def handle(self, *args, host=None, port=None, proxy_headers=False, **options):
        from channels.routing import get_default_application
        from daphne.endpoints import build_endpoint_description_strings
        from daphne.server import Server

        host = host or settings.HOST
        port = settings.PORT if port is None else port
        application = get_default_application()

        def ready() -> None:
            # Autobahn fails a connection (a frame over the limit, a protocol error) by
            # dropping TCP unless told otherwise; clients are promised a close code (1009).
            # Autobahn waits 1 s for a client to answer our close frame; mobile clients
            # on a slow link need longer, and a drain should not cut them off that soon.
            server.ws_factory.setProtocolOptions(
                failByDrop=False, closeHandshakeTimeout=CLOSE_HANDSHAKE_TIMEOUT
            )
            server.ws_factory.protocol = chat_protocol()
            access_log.info("server_starting", host=host, port=port)

        server = chat_server_class(Server)(
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
            proxy_forwarded_address_header="X-Forwarded-For" if proxy_headers else None,
            proxy_forwarded_port_header="X-Forwarded-Port" if proxy_headers else None,
            proxy_forwarded_proto_header="X-Forwarded-Proto" if proxy_headers else None,
            ready_callable=ready,
            server_name="chat",
            verbosity=0,
            # SIGTERM and SIGINT are ours: Daphne alone would stop at once, without a close
            # frame for any socket (clients would see 1006, as after a crash).
            signal_handlers=False,
        )
        from twisted.internet import reactor

        def on_signal(signum: int, frame: Any) -> None:
            reactor.callFromThread(begin_drain, reactor, signal.Signals(signum).name)

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        settle_the_heap()
        server.run()
        if server.listen_failure:
            raise CommandError(f"could not listen: {server.listen_failure}")
        access_log.info("server_stopped")
