"""The simple endpoint `/ws` (no trailing slash): one room per socket, in the dialect of
the seed server whose client connects (SPEC 9.4).

- `/ws?roomId=N` (seed 003): identity from `Authorization: <token>` or `Bearer <token>`;
  room N; the client sends `{"content"}`; the server sends
  `{"type":"message","room_id","sender_id","username","content","ts"}` (ts in ms).
- `/ws?username=Name` (seed 002): a guest (`accounts.guests`); General; the client sends
  `{"type":"chat","content"}`; the server sends `{"type":"join"|"leave"|"chat"|"error",
  "username","content","timestamp"}`.
- `/ws` (seeds 000, 001): a token or the session, else a generated guest; General; the
  client sends `{"type":2,"body"}` or plain text; the server sends `{"type":1|2,"body"}`
  (1: system notices, 2: chat).

This module parses and encodes only. Identity is the middleware's (plus seed 003's bare
`Authorization: <token>`, checked by the same `user_for_access_token`), the room is
entered with `rooms.services.enter_room`, posts go through `messaging.writer.group_commit`
(so `messaging.posting.post_messages`, its access rule and CHAT_RATE_LIMIT), presence and
MAX_SOCKETS_PER_USER through `messaging.sockets.local_sockets`, and events arrive from
`chatproject.hub` as for the native consumer, whose session handling (expiry, revocation,
deactivation, the drain, the clean-up on close) this consumer inherits.

The frames of these dialects are the seeds' own, not the native catalogue's
(`chatproject.events`): they are declared and built here, by `Dialect` subclasses, and
their type values are named constants so that the catalogue's scan for native frames
built elsewhere does not mistake seed 003's `"message"` or seed 002's `"error"` for one.
Fields a seed does not define are added only to errors (`code`), which no seed defines.
"""

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any, Literal, TypedDict
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.utils import timezone

from accounts.guests import (
    GUEST_PREFIX,
    GUESTS_OFF,
    check_guest_post,
    generated_name,
    guest_for,
    guests_allowed,
    touch_guest,
)
from accounts.models import User
from accounts.tokens import user_for_access_token
from chatproject import events
from chatproject.broadcast import room_group, user_group
from chatproject.errors import ChatError, NotFound, Unauthenticated, ValidationFailed
from chatproject.hub import Frame, encode, hub
from chatproject.logs import get_logger
from chatproject.transport import CLOSE_RESTARTING, CLOSE_TRY_AGAIN, is_draining
from messaging.consumers import (
    CLOSE_FORBIDDEN_ORIGIN,
    CLOSE_LIMIT,
    CLOSE_UNAUTHENTICATED,
    ChatConsumer,
    ServiceUnavailable,
    TooManySockets,
    _signed_in_still,
)
from messaging.origins import header, origin_allowed
from messaging.sockets import local_sockets
from messaging.writer import group_commit
from rooms.models import Room
from rooms.services import ensure_general_room, enter_room

log = get_logger(__name__)

CLOSE_NOT_FOUND = 4404
# Control events of the user's group that end the socket, handled as the native one does.
_SESSION_EVENTS = frozenset(("user_deactivated", "credentials_revoked", "session_ended"))
# How many generated guest names to try before giving up (a clash is one in 16 million).
_NAME_ATTEMPTS = 3

# The seeds' frame types (see the module's text for why they are constants).
SEED3_MESSAGE: Literal["message"] = "message"
SEED3_ERROR: Literal["error"] = "error"
SEED2_JOIN: Literal["join"] = "join"
SEED2_LEAVE: Literal["leave"] = "leave"
SEED2_CHAT: Literal["chat"] = "chat"
SEED2_ERROR: Literal["error"] = "error"
SYSTEM_NOTICE: Literal[1] = 1  # seeds 000/001
CHAT_MESSAGE: Literal[2] = 2


class RoomMessage(TypedDict):
    """Seed 003's message, on its socket and in `GET /api/messages`."""

    type: Literal["message"]
    room_id: int
    sender_id: int | None
    username: str
    content: str
    ts: int  # milliseconds since the epoch


class RoomError(TypedDict):
    type: Literal["error"]
    code: str
    message: str


class NicknameFrame(TypedDict, total=False):
    """Seed 002's frame (`code` on errors only)."""

    type: Literal["join", "leave", "chat", "error"]
    username: str
    content: str
    timestamp: str
    code: str


class BroadcastFrame(TypedDict, total=False):
    """Seeds 000/001's frame: 1 a system notice, 2 a chat message (`code` on errors)."""

    type: Literal[1, 2]
    body: str
    code: str


def shown_name(user: events.UserBrief | dict[str, Any] | None) -> str:
    """The name a seed client shows: the username, or a guest's nickname."""
    if not user:
        return ""
    username = str(user.get("username") or "")
    if username.startswith(GUEST_PREFIX):
        return str(user.get("display_name") or username[len(GUEST_PREFIX) :])
    return username


def millis(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def _now_iso() -> str:
    return timezone.now().astimezone(UTC).isoformat().replace("+00:00", "Z")


def room_message(data: events.MessageData) -> RoomMessage:
    sender = data["sender"]
    return {
        "type": SEED3_MESSAGE,
        "room_id": data["room"],
        "sender_id": sender["id"] if sender else None,
        "username": shown_name(sender),
        "content": data["content"],
        "ts": millis(data["created_at"]),
    }


class Dialect:
    """One seed's frames: what a client's frame posts, and what events look like."""

    def content_of(self, text: str) -> str:
        raise NotImplementedError

    def chat(self, data: events.MessageData) -> dict[str, Any] | None:
        raise NotImplementedError

    def presence(self, name: str, *, joined: bool) -> dict[str, Any] | None:
        return None

    def error(self, exc: ChatError) -> dict[str, Any]:
        raise NotImplementedError


def _json_object(text: str) -> dict[str, Any]:
    try:
        frame = json.loads(text)
    except ValueError:
        raise ValidationFailed("Send a JSON object.") from None
    if not isinstance(frame, dict):
        raise ValidationFailed("Send a JSON object.")
    return frame


def _text_field(frame: dict[str, Any], name: str) -> str:
    value = frame.get(name)
    if not isinstance(value, str):
        raise ValidationFailed(f"`{name}` must be a string.", fields={name: ["A string."]})
    return value


class RoomDialect(Dialect):
    """Seed 003: `{"content"}` in, `{"type":"message",…}` out."""

    def content_of(self, text: str) -> str:
        return _text_field(_json_object(text), "content")

    def chat(self, data: events.MessageData) -> dict[str, Any] | None:
        return dict(room_message(data))

    def error(self, exc: ChatError) -> dict[str, Any]:
        frame: RoomError = {"type": SEED3_ERROR, "code": exc.code, "message": exc.message}
        return dict(frame)


class NicknameDialect(Dialect):
    """Seed 002: `{"type":"chat","content"}` in; join, leave, chat and error out."""

    def content_of(self, text: str) -> str:
        frame = _json_object(text)
        if frame.get("type", SEED2_CHAT) != SEED2_CHAT:
            raise ValidationFailed("Send frames of type `chat`.", fields={"type": ["chat"]})
        return _text_field(frame, "content")

    def chat(self, data: events.MessageData) -> dict[str, Any] | None:
        frame: NicknameFrame = {
            "type": SEED2_CHAT,
            "username": shown_name(data["sender"]),
            "content": data["content"],
            "timestamp": data["created_at"],
        }
        return dict(frame)

    def presence(self, name: str, *, joined: bool) -> dict[str, Any] | None:
        frame: NicknameFrame = {
            "type": SEED2_JOIN if joined else SEED2_LEAVE,
            "username": name,
            "content": f"{name} {'joined' if joined else 'left'} the chat",
            "timestamp": _now_iso(),
        }
        return dict(frame)

    def error(self, exc: ChatError) -> dict[str, Any]:
        frame: NicknameFrame = {
            "type": SEED2_ERROR,
            "username": "system",
            "content": exc.message,
            "timestamp": _now_iso(),
            "code": exc.code,
        }
        return dict(frame)


class BroadcastDialect(Dialect):
    """Seeds 000/001: `{"type":2,"body"}` or plain text in; `{"type":1|2,"body"}` out."""

    def content_of(self, text: str) -> str:
        try:
            frame = json.loads(text)
        except ValueError:
            return text  # plain text is a chat message
        if isinstance(frame, str):
            return frame
        if not isinstance(frame, dict):
            return text
        if frame.get("type", CHAT_MESSAGE) != CHAT_MESSAGE:
            raise ValidationFailed("Send chat messages as type 2.", fields={"type": ["2"]})
        return _text_field(frame, "body")

    def chat(self, data: events.MessageData) -> dict[str, Any] | None:
        frame: BroadcastFrame = {"type": CHAT_MESSAGE, "body": data["content"]}
        return dict(frame)

    def presence(self, name: str, *, joined: bool) -> dict[str, Any] | None:
        frame: BroadcastFrame = {
            "type": SYSTEM_NOTICE,
            "body": f"{name} {'joined' if joined else 'left'} the chat",
        }
        return dict(frame)

    def error(self, exc: ChatError) -> dict[str, Any]:
        frame: BroadcastFrame = {
            "type": SYSTEM_NOTICE,
            "body": f"Error: {exc.message}",
            "code": exc.code,
        }
        return dict(frame)


# Database work, in Channels' thread pool.


@database_sync_to_async
def _user_of_token(raw: str) -> tuple[User, int]:
    return user_for_access_token(raw)


@database_sync_to_async
def _guest(name: str, address: str) -> User:
    return guest_for(name=name, address=address)


@database_sync_to_async
def _generated_guest(address: str) -> User:
    for attempt in range(_NAME_ATTEMPTS):
        try:
            return guest_for(name=generated_name(), address=address)
        except ValidationFailed:  # the name was taken: another
            if attempt == _NAME_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


@database_sync_to_async
def _enter(room_id: object, user: User) -> Room:
    if room_id is None:
        room_id = ensure_general_room()[0].pk
    return enter_room(room_id=room_id, user=user)


_touch_guest = database_sync_to_async(touch_guest)


def close_code(exc: ChatError) -> int:
    """4000 + the error's HTTP status (4401, 4403, 4404, 4429, 4400); 1013 for 5xx."""
    return 4000 + exc.status if exc.status < 500 else CLOSE_TRY_AGAIN


class SimpleConsumer(ChatConsumer):
    """`/ws` in one of the seeds' dialects (chosen by the query string)."""

    dialect: Dialect = BroadcastDialect()
    room_id: int | None = None
    _accepted: bool = False
    _pending: list[str]

    async def connect(self) -> None:
        self._setup()
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        room_param = query.get("roomId", [None])[0]
        nickname = query.get("username", [None])[0]
        if room_param is not None:
            self.dialect = RoomDialect()
        elif nickname is not None:
            self.dialect = NicknameDialect()
        # The handshake completes once the socket is in its room (`_open`): these clients
        # have no "ready" frame, and send at once. Refusals accept, then send their error
        # and close (`close`): a refused handshake would show the client a bare HTTP 403.
        if is_draining():
            await self.close(code=CLOSE_RESTARTING)
            return
        if not origin_allowed(self.scope):
            log.info("ws_refused_origin", origin=header(self.scope, b"origin"))
            await self.close(code=CLOSE_FORBIDDEN_ORIGIN)
            return
        try:
            user, expires = await self._identify(nickname, rooms=room_param is not None)
        except ChatError as exc:
            await self.send_error(exc, None)
            await self.close(code=close_code(exc))
            return
        except Exception:  # the database is away: the client may come back
            log.exception("ws_identify_failed")
            await self.send_error(ServiceUnavailable(), None)
            await self.close(code=CLOSE_TRY_AGAIN)
            return
        if not await self._begin(user, expires):
            return
        try:
            room = await _enter(room_param, user)
            self.room_id = room.pk
            await hub.subscribe(room_group(room.pk), self)
            self.rooms[room.pk] = 0
            await local_sockets.enter_room(self, room.pk)
        except ChatError as exc:
            await self.send_error(exc, None)
            await self.close(code=close_code(exc))
            return
        except Exception:
            log.exception("ws_start_failed", user_id=user.pk)
            await self.send_error(ServiceUnavailable(), None)
            await self.close(code=CLOSE_TRY_AGAIN)
            return
        await self._open()
        log.info("ws_connected", user_id=user.pk, path=self.scope.get("path"), room_id=room.pk)

    async def _open(self) -> None:
        """Accept the handshake, then send what was written before (events of the room
        that arrived while the socket was being set up, or a refusal's error)."""
        if self._accepted:
            return
        await self.accept()
        self._accepted = True
        pending, self._pending = self._pending, []
        for text in pending:
            await self.base_send({"type": "websocket.send", "text": text})

    async def _write(self, text: str) -> None:
        if not self._accepted:
            self._pending.append(text)
            return
        await self.base_send({"type": "websocket.send", "text": text})

    async def close(self, code=None, reason=None) -> None:
        await self._open()
        await super().close(code=code, reason=reason)

    def _setup(self) -> None:
        """The state `ChatConsumer.disconnect` and the registries rely on."""
        self.socket_id = uuid.uuid4().hex
        self.rooms: dict[int, int] = {}
        self._held = {}
        self.status_of: set[int] = set()
        self._presence = {}
        self.connected_at = time.monotonic()
        self._send_wire = None  # frames are the dialect's, always encoded here
        self._refused = 0
        self._posting = []
        self._timers = []
        self._running = set()
        self._expiry = None
        self._accepted = False
        self._pending = []

    @property
    def address(self) -> str:
        client = self.scope.get("client")
        return str(client[0]) if client else "unknown"

    async def _identify(self, nickname: str | None, *, rooms: bool) -> tuple[User, int | None]:
        """Who the socket is: a token (Bearer, seed 003's bare `Authorization: <token>`, or
        `?token=`), else the session, else a guest (seeds 000-002) when guests are on."""
        if self.scope.get("auth_error"):
            raise Unauthenticated(self.scope["auth_error"])
        authorization = (header(self.scope, b"authorization") or "").strip()
        if authorization and not authorization.lower().startswith("bearer "):
            return await _user_of_token(authorization)
        user = self.scope.get("user")
        if user is not None and user.is_authenticated:
            session = self.scope.get("session_auth")
            return user, self.scope.get("token_exp") or (session.expires if session else None)
        if rooms:
            raise Unauthenticated("Send your token in the Authorization header.")
        if not guests_allowed():
            raise Unauthenticated(GUESTS_OFF)
        if nickname is not None:
            return await _guest(nickname, self.address), None
        return await _generated_guest(self.address), None

    async def _begin(self, user: User, expires: int | None) -> bool:
        """Register the socket as the native one does (presence, MAX_SOCKETS_PER_USER, the
        user's group for revocations); False when it was refused and closed."""
        self.user = user
        current = True
        try:
            added = await local_sockets.add(self)
            if added:
                await hub.subscribe(user_group(user.pk), self)
                current = await _signed_in_still(user=user)
        except Exception:
            log.exception("ws_start_failed", user_id=user.pk)
            await self.send_error(ServiceUnavailable(), None)
            await self.close(code=CLOSE_TRY_AGAIN)
            return False
        if not added:
            self.user = None
            await self.send_error(TooManySockets("Too many open sockets for this user."), None)
            await self.close(code=CLOSE_LIMIT)
            return False
        if not current:
            await self.send_error(Unauthenticated("You were signed out."), None)
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return False
        self._expire_at(expires)
        return True

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None):
        if self.user is None or self.room_id is None:
            return  # refused or not set up yet: nothing is read
        try:
            if text_data is None:
                raise ValidationFailed("Binary frames are not accepted; send text.")
            content = self.dialect.content_of(text_data)
            if self.me.is_guest:
                await database_sync_to_async(check_guest_post)(address=self.address)
            await group_commit.post(self.room_id, self.me, {"content": content})
            if self.me.is_guest:
                await _touch_guest(self.me)
            self._refused = 0
        except Exception as exc:
            await self._answer_error(exc, None)

    async def deliver(self, event: dict[str, Any], frame: Frame) -> None:
        kind = event["type"]
        if kind in _SESSION_EVENTS:
            await super().deliver(event, frame)
            return
        if event.get("room") != self.room_id:
            return  # the user's group also carries other rooms' news
        out: dict[str, Any] | None = None
        if kind == "message" and event["message"]["type"] != "system":
            out = self.dialect.chat(event["message"])
        elif kind in ("user_joined", "user_left"):
            out = self.dialect.presence(shown_name(event["user"]), joined=kind == "user_joined")
        elif kind in ("room_deleted", "room_revoked"):
            await self.send_error(NotFound("This room is gone for you."), None)
            await self.close(code=CLOSE_NOT_FOUND)
            return
        if out is not None:
            await self._write(encode(out))

    async def send_error(self, exc: ChatError, ref) -> None:
        await self._write(encode(self.dialect.error(exc)))


class UnknownPathConsumer(AsyncWebsocketConsumer):
    """A WebSocket to a path nobody serves: accepted, then closed with 4404 (a close code
    a client can read, where a refused handshake shows it a bare HTTP 403)."""

    async def connect(self) -> None:
        await self.accept()
        await self.close(code=CLOSE_NOT_FOUND)
