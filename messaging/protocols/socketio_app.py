"""The ASGI side of `/socket.io/`: what is refused before python-engineio reads a request.

- A client of another Engine.IO version (`EIO=3`: Socket.IO v2 clients) gets HTTP 400
  naming the version spoken here; python-engineio's own answer names none.
- The Host and Origin checks of every request and WebSocket handshake are the native
  ones (`messaging.origins.origin_allowed`): 403 (HTTP) or a 4403 close.
- While the process drains, a new connection gets 503 (HTTP) or a 1012 close.
- Every Engine.IO packet is checked before python-engineio parses it: one it cannot
  parse would raise out of it (a 500 and a traceback). A polling body with such a packet
  is answered 400 and its session ended; a WebSocket frame ends the connection (4400).
"""

import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import socketio
from django.conf import settings

from chatproject.logs import get_logger
from chatproject.transport import is_draining
from chatproject.transport.state import on_drain
from messaging.consumers import CLOSE_FORBIDDEN_ORIGIN
from messaging.origins import origin_allowed
from messaging.protocols.socketio_server import ChatSocketIO, close_engine

log = get_logger(__name__)

PATH = "socket.io"
SUPPORTED = "4"
CLOSE_POLICY = 4400  # a refused version or packet (autobahn sends only 1000, 3000-4999)
CLOSE_RESTARTING = 1012
# The types of Engine.IO packets a client may send, as their first character.
PACKET_TYPES = frozenset("0123456")

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def valid_packet(text: str) -> bool:
    return bool(text) and text[0] in PACKET_TYPES


def valid_payload(body: bytes) -> bool:
    """A polling POST body: Engine.IO v4 packets separated by the record separator."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(valid_packet(part) for part in text.split("\x1e"))


async def answer(send: Send, status: int, code: str, detail: str) -> None:
    body = json.dumps({"detail": detail, "code": code}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class SocketIOApp:
    """`/socket.io/`: the checks above, then python-socketio's ASGI app."""

    def __init__(self) -> None:
        self.server = ChatSocketIO()
        self.app = socketio.ASGIApp(self.server, socketio_path=PATH)
        on_drain(self.drain)

    def serves(self, scope: dict[str, Any]) -> bool:
        return scope["type"] in ("http", "websocket") and (
            scope["path"] == f"/{PATH}" or scope["path"].startswith(f"/{PATH}/")
        )

    async def drain(self, timeout: float) -> None:
        await self.server.drain(timeout)

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        refusal = self._refusal(scope, query)
        if scope["type"] == "websocket":
            if refusal is not None:
                await self._close(receive, send, refusal[0])
                return
            await self.app(scope, self._checked_frames(receive, send), send)
            return
        if refusal is not None:
            await answer(send, *refusal[1:])
            return
        if scope.get("method") == "POST":
            checked = await self._checked_body(receive, send, query)
            if checked is None:
                return
            receive = checked
        await self.app(scope, receive, send)

    def _refusal(
        self, scope: dict[str, Any], query: dict[str, list[str]]
    ) -> tuple[int, int, str, str] | None:
        """(close code, status, code, detail) of a request refused before Engine.IO."""
        if "sid" not in query and query.get("EIO") != [SUPPORTED]:
            version = (query.get("EIO") or ["none"])[0][:8]
            detail = (
                f"Engine.IO protocol version {version} is not supported; this server speaks "
                f"Engine.IO {SUPPORTED} only (socket.io-client v3 and v4)."
            )
            return CLOSE_POLICY, 400, "unsupported_version", detail
        checked = scope
        if scope["type"] == "http":  # the Origin check reads the socket's scheme
            scheme = {"http": "ws", "https": "wss"}.get(scope.get("scheme", "http"), "ws")
            checked = {**scope, "scheme": scheme}
        if not origin_allowed(checked):
            return CLOSE_FORBIDDEN_ORIGIN, 403, "forbidden_origin", "This origin is not allowed."
        if is_draining() and "sid" not in query:
            return CLOSE_RESTARTING, 503, "unavailable", "The server is restarting; reconnect."
        return None

    async def _close(self, receive: Receive, send: Send, code: int) -> None:
        """Refuse a WebSocket handshake with a close code the client can read."""
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": code})

    def _checked_frames(self, receive: Receive, send: Send) -> Receive:
        closed = False

        async def checked() -> dict[str, Any]:
            nonlocal closed
            if closed:
                return {"type": "websocket.disconnect", "code": CLOSE_POLICY}
            message = await receive()
            if message["type"] == "websocket.receive":
                text = message.get("text")
                if text is None or not valid_packet(text):
                    closed = True
                    log.info("sio_bad_frame", binary=text is None)
                    with contextlib.suppress(Exception):
                        await send({"type": "websocket.close", "code": CLOSE_POLICY})
                    return {"type": "websocket.disconnect", "code": CLOSE_POLICY}
            return message

        return checked

    async def _checked_body(
        self, receive: Receive, send: Send, query: dict[str, list[str]]
    ) -> Receive | None:
        """Read a polling POST's body (bounded), check its packets, then hand it on."""
        body, more = b"", True
        limit = settings.WEBSOCKET_MAX_FRAME_BYTES
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return None
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > limit:
                await self._end_session(query)
                await answer(send, 413, "too_large", f"A payload holds at most {limit} bytes.")
                return None
        if not valid_payload(body):
            log.info("sio_bad_payload", size=len(body))
            await self._end_session(query)
            await answer(send, 400, "bad_packet", "Malformed Engine.IO payload.")
            return None
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay

    async def _end_session(self, query: dict[str, list[str]]) -> None:
        self.server.later(close_engine(self.server.eio.sockets.get((query.get("sid") or [""])[0])))
