"""Socket.IO clients (SPEC 9.1): python-socketio's server at `/socket.io/`, beside Channels.

A Socket.IO connection is a `SocketIOSession`: the native consumer
(`messaging.consumers.ChatConsumer`) with its input and output translated, so joins with
`after`, floors, the hub's groups, presence, MAX_SOCKETS_PER_USER, posting through
`messaging.writer` under CHAT_RATE_LIMIT, the flood close, revocations and the metrics
are the native code, run once more for another wire format. An event crosses processes
once, through `chatproject.hub`, and is translated here (once per event, not per socket:
`_encoded`).

- In: a Socket.IO event becomes the native frame of the same name (`room_id` may be a
  room's name or slug: `_room_id`); an acknowledgement callback's id is the frame's `ref`.
- Out: an `ack` or `error` with a `ref` answers the callback (`{"error": {code,
  message}}` for an error); any other frame is emitted under its native name, in the
  seed's shape (`payload`). Closing a session ends the Socket.IO connection.

The server (identity on connect, dispatch, refusals) is `socketio_server`; the ASGI side
(the version check, the Origin check, packet checks before python-engineio parses
anything, the drain) is `socketio_app`.
"""

import asyncio
import json
from typing import TYPE_CHECKING, Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.db.models import Q
from socketio import packet as sio_packet

from accounts.guests import check_guest_post, guest_for, touch_guest
from accounts.models import User
from accounts.tokens import user_for_access_token
from chatproject import metrics
from chatproject.errors import (
    ChatError,
    Forbidden,
    NotFound,
    Unauthenticated,
    ValidationFailed,
)
from chatproject.events import error as error_frame
from chatproject.hub import Frame
from chatproject.logs import get_logger
from chatproject.transport import CLOSE_RESTARTING, CLOSE_TRY_AGAIN
from messaging import frames
from messaging.consumers import CLOSE_UNAUTHENTICATED, ChatConsumer
from rooms.models import Room
from rooms.services import create_room

if TYPE_CHECKING:
    from chatproject.events import ClientFrame
    from messaging.protocols.socketio_server import ChatSocketIO

log = get_logger(__name__)

MESSAGE_FIELDS = ("content", "type", "title", "payload", "attachment_urls", "client_id")
ROOM_EVENTS = frozenset({"join", "leave", "message", "typing", "read"})
MAX_REMEMBERED_NAMES = 100  # room names a session resolved, kept per session

# The last event translated and encoded (`_encoded`): the hub writes one event to every
# socket of a group in a row, so one entry is enough to encode it once.
_last: tuple[Frame, str] | None = None


# ----------------------------------------------------------------- database calls


@database_sync_to_async
def token_user(token: object) -> tuple[User, int]:
    if not isinstance(token, str):
        raise Unauthenticated("`token` must be an access token string.")
    return user_for_access_token(token)


@database_sync_to_async
def _room_named(name: str, user: User, create: bool) -> int:
    """The id of the room of this name or slug (not a direct room); with `create`, a new
    public room of that name when there is none (the seed's dynamic rooms), under the
    creator's WRITE_RATE_LIMIT. Visibility is the join's to check, as for an id."""
    rooms = Room.objects.exclude(kind=Room.Kind.DIRECT)
    room = rooms.filter(Q(name__iexact=name) | Q(slug=name)).only("pk").first()
    if room is not None:
        return room.pk
    if not create:
        raise NotFound("No such room.")
    if user.is_guest:
        raise Forbidden("Guests cannot create rooms.")
    try:
        return create_room(creator=user, name=name).pk
    except ValidationFailed:  # taken meanwhile by a concurrent join
        room = rooms.filter(name__iexact=" ".join(name.split())).only("pk").first()
        if room is None:
            raise
        return room.pk


@database_sync_to_async
def _user_named(name: str) -> int:
    found = User.objects.filter(username__iexact=name, is_active=True).values_list("pk", flat=True)
    for pk in found[:1]:
        return pk
    raise NotFound("No such user.")


@database_sync_to_async
def _guest(name: object, address: str) -> User:
    if not isinstance(name, str):
        raise ValidationFailed("`username` must be a string.", fields={"username": ["Required."]})
    return guest_for(name=name, address=address)


@database_sync_to_async
def _guest_posts(user: User, address: str) -> None:
    """A guest's post also spends its address's budget, and keeps the guest alive."""
    check_guest_post(address=address)
    touch_guest(user)


# -------------------------------------------------------------- translation out


def payload(event: dict[str, Any], user: User | None = None) -> dict[str, Any]:
    """A native frame as the seed's Socket.IO event of the same name carries it: the
    seed's fields exactly, the native ones beside them."""
    kind = event["type"]
    if kind in ("user_online", "user_offline"):
        return dict(event)  # the seed's shape is the native one
    if kind == "authenticated":
        brief = event["user"]
        return {
            "user_id": brief["id"],
            "username": brief["username"],
            "display_name": brief["display_name"],
            "is_guest": bool(user and user.is_guest),
            "is_bot": bool(user and user.is_bot),
            **{k: event[k] for k in ("connection", "expires_at", "server", "limits")},
        }
    if kind in ("message", "message_updated"):
        data = event["message"]
        sender = data["sender"]
        return {
            **data,
            "room_id": data["room"],
            "user_id": sender["id"] if sender else None,
            "username": sender["username"] if sender else None,
            "timestamp": data["created_at"],
        }
    if kind in ("user_joined", "user_left"):
        brief = event["user"]
        return {
            "room_id": event["room"],
            "user_id": brief["id"],
            "username": brief["username"],
            "display_name": brief["display_name"],
        }
    if kind == "room_users":
        users = event["users"]
        return {"room_id": event["room"], "users": [u["id"] for u in users], "members": users}
    data = {key: value for key, value in event.items() if key != "type"}
    if "room" in data:
        data["room_id"] = data["room"]
    return data


def event_packet(name: str, data: Any) -> str:
    """The Engine.IO message text of a Socket.IO event on the default namespace."""
    encoded = sio_packet.Packet(sio_packet.EVENT, data=[name, data]).encode()
    assert isinstance(encoded, str)  # no binary data: JSON only
    return encoded


def ack_packet(ack_id: int, data: Any) -> str:
    encoded = sio_packet.Packet(sio_packet.ACK, data=[data], id=ack_id).encode()
    assert isinstance(encoded, str)
    return encoded


def _error_body(frame: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in frame.items() if key not in ("type", "ref")}


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
            frame = await self._native(name, data)
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

    async def _native(self, name: str, data: dict[str, Any]) -> dict[str, Any]:
        kind = name
        if kind == "authenticate":
            keep = ("token", "user_id", "username")
            return {"type": kind, **{k: data[k] for k in keep if k in data}}
        if kind in ("subscribe_status", "unsubscribe_status"):
            target = data.get("target_user_id", data.get("user_id"))
            return {"type": kind, "user_id": await self._user_id(target)}
        if kind == "ping":
            return {"type": kind}
        if kind not in ROOM_EVENTS:
            raise frames.UnknownType(f"Unknown event {name[:64]!r}.")
        if self.user is None:
            raise Unauthenticated("Send `authenticate` first, or connect with `auth: {token}`.")
        room_id = await self._room_id(data.get("room_id", data.get("room")), create=kind == "join")
        frame: dict[str, Any] = {"type": kind, "room": room_id}
        if kind == "join" and data.get("after") is not None:
            frame["after"] = data["after"]
        elif kind == "message":
            frame.update((k, data[k]) for k in MESSAGE_FIELDS if k in data)
            if self.me.is_guest:
                await _guest_posts(self.me, self.address)
        elif kind == "typing":
            frame["is_typing"] = data.get("is_typing", True)
        elif kind == "read":
            frame["message_id"] = data.get("message_id")
        return frame

    async def _room_id(self, value: object, *, create: bool) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if not isinstance(value, str) or not value.strip() or len(value) > 100:
            raise ValidationFailed(
                "`room_id` must be a room's id, name or slug.", fields={"room_id": ["Invalid."]}
            )
        if value.isdigit():
            return int(value)
        known = self._names.get(value)
        if known is None:
            known = await _room_named(value, self.me, create)
            if len(self._names) >= MAX_REMEMBERED_NAMES:
                self._names.clear()
            self._names[value] = known
        return known

    async def _user_id(self, value: object) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.isdigit():
            return int(value)
        if isinstance(value, str) and 0 < len(value) <= 150:
            return await _user_named(value)
        raise ValidationFailed(
            "`target_user_id` must be a user's id or username.",
            fields={"target_user_id": ["Invalid."]},
        )

    async def on_authenticate(self, frame: dict[str, Any], ref: Any) -> None:
        """A token as native; without one, the seed's `{user_id, username}`: a guest."""
        if self.user is not None:
            await ChatConsumer.on_authenticate(self, frame, ref)
            return
        try:
            if frame.get("token") is not None:
                user, expires = await token_user(frame["token"])
            else:
                user, expires = await _guest(frame.get("username"), self.address), None
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
            await self._send(self._encoded(event, frame))

    def _encoded(self, event: dict[str, Any], frame: Frame) -> str:
        global _last
        if _last is not None and _last[0] is frame:
            return _last[1]
        text = event_packet(event["type"], payload(event))
        _last = (frame, text)
        return text

    async def _emit(self, frame: dict[str, Any]) -> None:
        kind, ref = frame["type"], frame.get("ref")
        if kind == "ack":
            if ref is not None:
                await self._send(ack_packet(ref, _error_body(frame)))
        elif kind == "error":
            body = _error_body(frame)
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
