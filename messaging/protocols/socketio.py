"""Socket.IO clients (SPEC 9.1): python-socketio's server at `/socket.io/`, beside Channels.

A Socket.IO connection is a `SocketIOSession`: the native consumer
(`messaging.consumers.ChatConsumer`) with its input and output translated, so joins with
`after`, floors, the hub's groups, presence, MAX_SOCKETS_PER_USER, posting through
`messaging.writer` under CHAT_RATE_LIMIT, the flood close, revocations and the metrics
are the native code, run once more for another wire format. An event crosses processes
once, through `chatproject.hub`, and is translated once per event, not per socket.

- In: a Socket.IO event becomes the native frame of the same name
  (`socketio_translate.native_frame`; `room_id` may be a room's name or slug); an
  acknowledgement callback's id is the frame's `ref`.
- Out: an `ack` or `error` with a `ref` answers the callback (`{"error": {code,
  message}}` for an error); any other frame is emitted under its native name, in the
  seed's shape (`socketio_translate.payload`). Closing a session ends the Socket.IO
  connection.

The translation both ways is `socketio_translate`; the server (identity on connect,
dispatch, refusals) is `socketio_server`; the ASGI side (the version check, the Origin
check, packet checks before python-engineio parses anything, the drain) is
`socketio_app`.
"""

import asyncio
import json
from typing import TYPE_CHECKING, Any

from django.conf import settings

from chatproject import metrics
from chatproject.errors import ChatError, Unauthenticated, ValidationFailed
from chatproject.events import error as error_frame
from chatproject.hub import Frame
from chatproject.logs import get_logger
from chatproject.transport import CLOSE_RESTARTING, CLOSE_TRY_AGAIN
from messaging.consumers import CLOSE_UNAUTHENTICATED, ChatConsumer, _authenticate
from messaging.protocols.seed_guests import guest_named, guest_posts
from messaging.protocols.socketio_translate import (
    ack_packet,
    error_body,
    event_packet,
    event_text,
    native_frame,
    payload,
)

if TYPE_CHECKING:
    from chatproject.events import ClientFrame
    from messaging.protocols.socketio_server import ChatSocketIO

log = get_logger(__name__)


# ------------------------------------------------------------------- the session


class SocketIOSession(ChatConsumer):
    """One Socket.IO connection, served by the native consumer's code."""

    HANDLERS = dict(ChatConsumer.HANDLERS)

    def __init__(self, server: "ChatSocketIO", sid: str, eio_sid: str, scope: dict) -> None:
        super().__init__()
        self.server, self.sid, self.eio_sid = server, sid, eio_sid
        # Frames go through Engine.IO's framing: never the transport's direct write.
        self.scope = {**scope, "extensions": {}, "url_route": {"kwargs": {}}}
        self._events: dict[Frame, Any] = {}  # events being delivered, by their frame
        self._names: dict[str, int] = {}
        self._ended = False
        self._queued = 0  # bytes queued for a polling client since it last polled
        self.started: asyncio.Future[None] | None = None

    @property
    def address(self) -> str:
        """The client's address (the forwarded one from trusted proxies: `serve`)."""
        client = self.scope.get("client") or ("", 0)
        return str(client[0])

    # ----------------------------------------------------------- life cycle

    async def accept(self, subprotocol: str | None = None, headers: Any = None) -> None:
        pass  # Socket.IO accepted the connection already

    async def close(self, code: int | bool | None = None, reason: str | None = None) -> None:
        """End the connection. For a restart (1012, 1013) only Engine.IO's connection
        closes: the client reconnects ("transport close"), to another process; else the
        Socket.IO disconnect comes first, and a client does not retry ("io server
        disconnect"), as a native client does not after 4401, 4403 or 4429."""
        if self._ended:
            return
        self._ended = True
        log.info("sio_closing", code=code)
        retry = code in (CLOSE_RESTARTING, CLOSE_TRY_AGAIN)
        self.server.later(self.server.end(self.sid, self.eio_sid, retry=retry))

    async def deliver(self, event: dict[str, Any], frame: Frame) -> None:
        self._events[frame] = event
        try:
            await super().deliver(event, frame)
        finally:
            self._events.pop(frame, None)

    # --------------------------------------------------------------- input

    async def handle(self, name: str, args: list[Any], ack_id: int | None) -> None:
        """A client's event, as the consumer's `receive` takes a frame."""
        if self.started is not None:
            await asyncio.wait({self.started})
        if self._ended:
            return
        try:
            data = args[0] if args else {}
            if not isinstance(data, dict):
                raise ValidationFailed("An event's argument must be an object.")
            frame = await native_frame(name, data, user=self.user, names=self._names)
            if name == "message" and self.me.is_guest:  # (the frame's `type` may be the post's)
                await guest_posts(self.me, self.address)
            frame["ref"] = ack_id  # None: no callback, no answer but errors
            if ack_id is None:
                del frame["ref"]
            text = json.dumps(frame)
        except Exception as exc:
            if self._posting:
                await asyncio.wait({self._posting[-1]})
            await self._answer_error(exc, ack_id)
            return
        await self.receive(text_data=text)

    async def on_authenticate(self, frame: dict[str, Any], ref: Any) -> None:
        """A token as native; without one, the seed's `{user_id, username}`: a guest."""
        if self.user is not None:
            await ChatConsumer.on_authenticate(self, frame, ref)
            return
        try:
            if frame.get("token") is not None:
                user, expires = await _authenticate(frame["token"])
            else:
                user, expires = await guest_named(frame.get("username"), self.address), None
        except Unauthenticated as exc:
            await self.send_error(exc, None)  # the seed's clients listen to `error`
            if ref is not None:
                await self.send_error(exc, ref)
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        await self._start(user, expires=expires, ref=ref)

    HANDLERS["authenticate"] = on_authenticate

    # -------------------------------------------------------------- output

    async def send_frame(self, frame: "ClientFrame") -> None:
        await self._emit(dict(frame))

    async def send_error(self, exc: ChatError, ref: Any) -> None:
        await self._emit(dict(error_frame(exc, ref)))

    async def _write(self, text: str) -> None:
        await self._emit(json.loads(text))

    async def _send_frame(self, frame: Frame) -> None:
        event = self._events.get(frame)
        if event is None:
            await self._emit(json.loads(frame.text))
        else:
            await self._send(event_text(event, frame))

    async def _emit(self, frame: dict[str, Any]) -> None:
        kind, ref = frame["type"], frame.get("ref")
        if kind == "ack":
            if ref is not None:
                await self._send(ack_packet(ref, error_body(frame)))
        elif kind == "error":
            body = error_body(frame)
            if ref is not None:
                await self._send(ack_packet(ref, {"error": body}))
            else:
                await self._send(event_packet("error", body))
        elif kind == "pong":
            if ref is not None:
                await self._send(ack_packet(ref, {}))
        else:
            data = payload(frame, self.user)
            await self._send(event_packet(kind, data))
            if ref is not None:  # `authenticated` answers an `authenticate` with a ref
                await self._send(ack_packet(ref, data))

    async def _send(self, text: str) -> None:
        """Queue one Engine.IO message. A polling client holds at most
        WEBSOCKET_SEND_BUFFER bytes not yet fetched; beyond, it is dropped (a WebSocket's
        bound is the transport's, as for native sockets)."""
        if self._ended:
            return
        socket = self.server.eio.sockets.get(self.eio_sid)
        if socket is None or socket.closed:
            return
        if not socket.upgraded:
            if socket.queue.empty():
                self._queued = 0
            self._queued += len(text)
            if self._queued > settings.WEBSOCKET_SEND_BUFFER:
                await self._drop_slow(socket)
                return
        await self.server.eio.send(self.eio_sid, text)

    async def _drop_slow(self, socket: Any) -> None:
        self._ended = True
        metrics.SLOW_CLIENT_CLOSES.inc()
        log.info("sio_slow_client_closed", client=str(self.scope.get("client")))
        while not socket.queue.empty():  # what it never fetched is freed now
            socket.queue.get_nowait()
            socket.queue.task_done()
        await socket.close(wait=False, abort=True)
        self.server.eio.sockets.pop(self.eio_sid, None)
