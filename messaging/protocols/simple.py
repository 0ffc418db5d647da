"""The simple endpoint `/ws` (no trailing slash): one room per socket, in the dialect of
the seed server whose client connects (SPEC 9.4). The dialects' frames are
`messaging.protocols.seed_dialects`; this module serves them.

- `/ws?roomId=N` (seed 003, `RoomDialect`): identity from `Authorization: <token>` or
  `Bearer <token>`; room N.
- `/ws?username=Name` (seed 002, `NicknameDialect`): a guest (`accounts.guests`); General.
- `/ws` (seeds 000, 001, `BroadcastDialect`): a token or the session, else a generated
  guest; General.

This module parses and encodes only (through the dialect). Identity is the middleware's
(plus seed 003's bare `Authorization: <token>`, checked by the same
`user_for_access_token`), the room is entered with `rooms.services.enter_room`, posts go
through `messaging.writer.group_commit` (so `messaging.posting.post_messages`, its access
rule and CHAT_RATE_LIMIT), presence and MAX_SOCKETS_PER_USER through
`messaging.sockets.local_sockets`, and events arrive from `chatproject.hub` as for the
native consumer, whose session handling (expiry, revocation, deactivation, the drain, the
clean-up on close) this consumer inherits.
"""

from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from accounts.guests import GUESTS_OFF, check_guest_post, guests_allowed, touch_guest
from accounts.models import User
from chatproject.broadcast import room_group
from chatproject.errors import ChatError, NotFound, Unauthenticated, ValidationFailed
from chatproject.hub import Frame, encode, hub
from chatproject.logs import get_logger
from chatproject.transport import CLOSE_TRY_AGAIN
from messaging.consumers import (
    ChatConsumer,
    ServiceUnavailable,
    _authenticate,
)
from messaging.origins import header
from messaging.protocols.seed_dialects import (
    BroadcastDialect,
    Dialect,
    NicknameDialect,
    RoomDialect,
    shown_name,
)
from messaging.protocols.seed_guests import generated_guest, guest_named
from messaging.sockets import local_sockets
from messaging.writer import group_commit
from rooms.models import Room
from rooms.services import ensure_general_room, enter_room

log = get_logger(__name__)

CLOSE_NOT_FOUND = 4404
# Control events of the user's group that end the socket, handled as the native one does.
_SESSION_EVENTS = frozenset(("user_deactivated", "credentials_revoked", "session_ended"))


# Database work, in Channels' thread pool.


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
        if await self._refused_at_handshake():
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
        """The native socket's state, and what the dialects add."""
        self._init_state()
        self._send_wire = None  # frames are the dialect's, always encoded here
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
            return await _authenticate(authorization)
        user = self.scope.get("user")
        if user is not None and user.is_authenticated:
            session = self.scope.get("session_auth")
            return user, self.scope.get("token_exp") or (session.expires if session else None)
        if rooms:
            raise Unauthenticated("Send your token in the Authorization header.")
        if not guests_allowed():
            raise Unauthenticated(GUESTS_OFF)
        if nickname is not None:
            return await guest_named(nickname, self.address), None
        return await generated_guest(self.address), None

    async def _begin(self, user: User, expires: int | None) -> bool:
        """Register the socket as the native one does (presence, MAX_SOCKETS_PER_USER, the
        user's group for revocations); False when it was refused and closed."""
        return await self._register(user, expires=expires)

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
        elif kind in ("room_deleted", "room_removed"):
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
