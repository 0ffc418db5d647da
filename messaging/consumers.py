"""The WebSocket consumer: parse a frame, call a selector or service, answer.

One socket serves any number of rooms (`/ws/`), or starts in one (`/ws/rooms/{id}/`).
Joining rooms and catching up on them, and on the user's own stream, is its `Recovery`
part (`messaging.recovery`).

Events reach the socket through `chatproject.hub` (`deliver`), not through a channel-layer
channel of its own: the consumer has no channel layer (`channel_layer_alias`).
"""

import asyncio
import time
import uuid
from typing import Any

import structlog
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from accounts.models import User
from accounts.presence import online_user_ids
from accounts.selectors import get_active_user, stream_position_if_signed_in
from accounts.sessions import session_expiry
from accounts.tokens import user_for_access_token
from chatproject import events, metrics
from chatproject.broadcast import room_group, status_group, user_group
from chatproject.errors import (
    ChatError,
    Forbidden,
    RateLimited,
    Unauthenticated,
    ValidationFailed,
)
from chatproject.hub import Frame, encode, hub
from chatproject.logs import get_logger
from chatproject.transport import CLOSE_RESTARTING, CLOSE_TRY_AGAIN, is_draining
from messaging import frames
from messaging.origins import header, origin_allowed
from messaging.recovery import Recovery
from messaging.sockets import local_sockets
from messaging.typists import TypingRelay
from messaging.writer import group_commit
from rooms.selectors import get_visible_room, mention_count, unread_count
from rooms.services import mark_read

log = get_logger(__name__)

MAX_STATUS_SUBSCRIPTIONS = 500
MAX_PRESENCE_MEMORY = 10_000

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN_ORIGIN = 4403
CLOSE_LIMIT = 4429  # kept flooding after `rate_limited`, or too many sockets
# Frames refused with `rate_limited` in a row before the socket is closed with 4429.
FLOOD_TOLERANCE = 10
# Posts of one socket queued before it stops reading frames until the oldest is answered.
MAX_POSTS_IN_FLIGHT = 32


class TooManySockets(RateLimited):
    pass


class ServiceUnavailable(ChatError):
    code = "unavailable"
    status = 503
    default_message = "The server cannot store this right now; try again."


# Database work, run in Channels' thread pool. Each is a selector or service call.


@database_sync_to_async
def _mark_read(user: User, room_id: int, message_id: int) -> events.AckFields:
    room = get_visible_room(room_id=room_id, user=user)
    membership = mark_read(room=room, user=user, message_id=message_id)
    return {
        "last_read_seq": membership.last_read_pos,
        "unread_count": unread_count(membership=membership),
        "mention_count": mention_count(membership=membership),
    }


@database_sync_to_async
def _status_of(user_id: int) -> events.UserStatus:
    user = get_active_user(user_id=user_id)
    last_seen = user.last_seen.isoformat().replace("+00:00", "Z") if user.last_seen else None
    return events.user_status(
        user_id=user.pk,
        username=user.username,
        is_online=user.pk in online_user_ids([user.pk]),
        last_seen=last_seen,
    )


@database_sync_to_async
def _authenticate(token: object) -> tuple[User, int]:
    if not isinstance(token, str):
        raise Unauthenticated("`token` must be an access token string.")
    return user_for_access_token(token)


@database_sync_to_async
def _session_expiry(key: str, user_id: int) -> float | None:
    return session_expiry(key=key, user_id=user_id)


_stream_position_if_signed_in = database_sync_to_async(stream_position_if_signed_in)


class ChatConsumer(Recovery, AsyncWebsocketConsumer):
    # No alias names a configured layer, so Channels gives the socket no channel (and no
    # per-socket layer reads): events arrive through the hub.
    channel_layer_alias = "none: events come from chatproject.hub"
    user: User | None = None
    _typist: TypingRelay | None = None  # made at the socket's first `typing` frame

    def _init_state(self) -> None:
        """The socket's state, which `disconnect` and the registries rely on (the
        adapters in messaging/protocols start from it too)."""
        self.socket_id = uuid.uuid4().hex
        # Every log line of this socket (its task and the threads it uses) carries its id.
        structlog.contextvars.bind_contextvars(socket_id=self.socket_id)
        self.rooms: dict[int, int] = {}  # room id -> floor position
        self._held: dict[int, list[tuple[dict[str, Any], Frame]]] = {}  # rooms being joined
        self.status_of: set[int] = set()  # users whose online status this socket follows
        self._presence: dict[int, bool] = {}  # last online state shown, per user
        self.connected_at = time.monotonic()
        # The server's direct write for pre-framed events, if it offers one (serve does).
        self._send_wire = self.scope.get("extensions", {}).get("chat.send_wire")
        self._refused = 0  # frames refused with `rate_limited` in a row
        self._posting: list[asyncio.Task] = []  # posts not answered yet, in order
        self._timers: list[asyncio.TimerHandle] = []
        self._running: set[asyncio.Task] = set()  # tasks the timers started
        self._expiry: asyncio.TimerHandle | None = None
        # The user's own stream (SPEC 12): the position shown so far, and its live events
        # held until then (the position is read after subscribing; a replay may follow).
        self.user_floor = 0
        self._user_held: list[tuple[dict[str, Any], Frame]] | None = []

    async def _refused_at_handshake(self) -> bool:
        """Close an accepted socket the server will not serve (draining, a foreign Origin
        or Host); True when it did."""
        if is_draining():
            await self.close(code=CLOSE_RESTARTING)
            return True
        if not origin_allowed(self.scope):
            log.info("ws_refused_origin", origin=header(self.scope, b"origin"))
            await self.close(code=CLOSE_FORBIDDEN_ORIGIN)
            return True
        return False

    async def connect(self) -> None:
        self._init_state()
        await self.accept()
        if await self._refused_at_handshake():
            return
        if self.scope.get("auth_error"):
            # Say why before closing: a close frame's reason is not shown by most clients.
            await self.send_error(Unauthenticated(self.scope["auth_error"]), None)
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        user = self.scope.get("user")
        if user is not None and user.is_authenticated:
            try:
                after_user = frames.query_integer(self.scope, "after_user")
            except ChatError as exc:
                await self.send_error(exc, None)
                after_user = None  # `authenticate` with `after_user` asks again
            # A session socket ends with its session: `_close_expired` re-checks it then.
            session = self.scope.get("session_auth")
            expires = self.scope.get("token_exp") or (session.expires if session else None)
            await self._start(user, expires=expires, after_user=after_user)
        else:
            self._timers.append(
                self._later(settings.WEBSOCKET_AUTH_TIMEOUT, self._close_unless_authenticated)
            )

    async def disconnect(self, code: int) -> None:
        for timer in [*self._timers, self._expiry]:
            if timer is not None:
                timer.cancel()
        for answer in list(self._posting):  # the posts are stored; nobody is left to tell
            answer.cancel()
        if self._typist is not None:
            self._typist.close()
        if self.user is None:
            return
        groups = [room_group(r) for r in self.rooms] + [status_group(u) for u in self.status_of]
        for group in [*groups, user_group(self.user.pk)]:
            await hub.unsubscribe(group, self)
        try:
            await local_sockets.remove(self)
        except Exception:
            # The presence store is down; its entries expire on their own (PRESENCE_TTL).
            log.exception("ws_cleanup_failed", user_id=self.user.pk)
        log.info(
            "ws_disconnected",
            user_id=self.user.pk,
            code=code,
            duration_ms=int((time.monotonic() - self.connected_at) * 1000),
        )

    @property
    def me(self) -> User:
        """The socket's user: frames other than `authenticate`, and events, reach a socket
        only once it has one."""
        assert self.user is not None
        return self.user

    # ------------------------------------------------------------------ session

    async def _register(self, user: User, *, expires: int | None, ref=None) -> bool:
        """Count the socket as the user's (presence, MAX_SOCKETS_PER_USER) and subscribe
        it to the user's group (revocations, deactivation); False when it was refused and
        closed, with an `error` frame saying why."""
        self.user = user
        structlog.contextvars.bind_contextvars(user_id=user.pk)
        current = True
        try:
            added = await local_sockets.add(self)
            if added:
                await hub.subscribe(user_group(user.pk), self)
                # A revocation or deactivation published before that subscription did not
                # reach this socket: look once more, now that any later one will. The
                # user's stream position, read now too, is where its live events start.
                position = await _stream_position_if_signed_in(user=user)
                current = position is not None
                self.user_floor = position or 0
        except Exception:
            # Redis failed (or is just back, with stale connections): no 1011, but a code
            # that tells the client to come back; `disconnect` undoes what was recorded.
            log.exception("ws_start_failed", user_id=user.pk)
            await self.send_error(ServiceUnavailable(), ref)
            await self.close(code=CLOSE_TRY_AGAIN)
            return False
        if not added:
            self.user = None  # nothing was recorded; the socket serves nothing
            log.info("ws_refused_too_many", user_id=user.pk)
            await self.send_error(
                TooManySockets(f"At most {settings.MAX_SOCKETS_PER_USER} open sockets per user."),
                ref,
            )
            await self.close(code=CLOSE_LIMIT)
            return False
        if not current:
            await self.send_error(Unauthenticated("You were signed out."), ref)
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return False
        self._expire_at(expires)
        return True

    async def _start(
        self, user: User, *, expires: int | None, ref=None, after_user: int | None = None
    ) -> None:
        if not await self._register(user, expires=expires, ref=ref):
            return
        log.info("ws_connected", user_id=user.pk, path=self.scope.get("path"))
        await self.send_frame(self._authenticated(user, expires, ref))
        await self._follow_user_stream(after_user)
        room_id = self.scope["url_route"]["kwargs"].get("room_id")
        if room_id is not None:
            try:
                await self._join(room_id, after=None, ref=None)
            except ChatError as exc:
                await self.send_error(exc, None)
            except Exception:
                log.exception("ws_frame_failed", user_id=user.pk)
                await self.send_error(ServiceUnavailable(), None)

    def _later(self, delay: float, callback) -> asyncio.TimerHandle:
        """Run `callback()` after `delay` seconds, keeping a reference to its task (the
        event loop keeps only weak ones: an unreferenced task can be collected midway)."""
        loop = asyncio.get_running_loop()

        def start() -> None:
            task = loop.create_task(callback())
            self._running.add(task)
            task.add_done_callback(self._running.discard)

        return loop.call_later(delay, start)

    def _authenticated(self, user: User, expires: int | None, ref) -> events.Authenticated:
        return events.authenticated(
            user=events.user_brief(user),
            connection=self.socket_id,
            expires_at=None if expires is None else int(expires),
            user_pos=self.user_floor,
            ref=ref,
        )

    def _expire_at(self, expires: int | None) -> None:
        """Close the socket when its access token expires (re-authenticating moves this)."""
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        if expires is not None:
            self._expiry = self._later(max(0.0, expires - time.time()), self._close_expired)

    async def _close_unless_authenticated(self) -> None:
        if self.user is None:
            await self.close(code=CLOSE_UNAUTHENTICATED)

    async def _close_expired(self) -> None:
        session = self.scope.get("session_auth")
        if session is not None and self.user is not None:
            # The session may have been extended since; it may also have ended.
            expires = await _session_expiry(session.key, self.user.pk)
            if expires is not None and expires > time.time():
                self._expire_at(expires)
                return
            log.info("ws_session_ended", user_id=self.user.pk)
            await self.send_error(Unauthenticated("Your session ended."), None)
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        log.info("ws_token_expired", user_id=self.user.pk if self.user else None)
        await self.send_error(Unauthenticated("Your access token expired."), None)
        await self.close(code=CLOSE_UNAUTHENTICATED)

    # ------------------------------------------------------------------- frames

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None):
        if bytes_data is not None:
            await self.send_error(frames.InvalidJSON("Binary frames are not accepted."), None)
            return
        ref = None
        try:
            frame = frames.parse(text_data)
            metrics.count_frame(frame.get("type"))
            ref = frames.ref_of(frame)
            frames.check_ref(frame)
            kind = frames.type_of(frame)
            if self.user is None and kind != "authenticate":
                raise Unauthenticated("Send an `authenticate` frame first.")
            handler = self.HANDLERS.get(kind)
            if handler is None:
                raise frames.UnknownType(f"Unknown frame type {kind!r}.")
            if kind == "message":
                await self.on_message(frame, ref)  # answered later, in order (`_answer_post`)
                return
            if self._posting:  # answers keep the order of the frames
                await asyncio.wait({self._posting[-1]})
            await handler(self, frame, ref)
            self._refused = 0
        except Exception as exc:
            if self._posting:
                await asyncio.wait({self._posting[-1]})
            await self._answer_error(exc, ref)

    async def _answer_error(self, exc: Exception, ref) -> None:
        """The `error` frame for a frame that failed; a client that keeps flooding after
        `rate_limited` is closed with 4429."""
        if isinstance(exc, RateLimited):
            self._refused += 1
            await self.send_error(exc, ref)
            if self._refused > FLOOD_TOLERANCE:
                log.info("ws_closed_flooding", user_id=self.user.pk if self.user else None)
                await self.close(code=CLOSE_LIMIT)
        elif isinstance(exc, ChatError):
            await self.send_error(exc, ref)
        else:
            # The database or Redis failed (or a bug): nothing was acknowledged, the client
            # may retry (with the same client_id), and the socket stays open.
            log.error(
                "ws_frame_failed",
                user_id=self.user.pk if self.user else None,
                exc_info=exc,
            )
            await self.send_error(ServiceUnavailable(), ref)

    async def on_authenticate(self, frame: dict[str, Any], ref) -> None:
        after_user = frames.integer(frame, "after_user", minimum=0, required=False)
        try:
            user, expires = await _authenticate(frame.get("token"))
        except Unauthenticated as exc:
            if self.user is None:
                await self.send_error(exc, ref)
                await self.close(code=CLOSE_UNAUTHENTICATED)
                return
            raise
        if self.user is None:
            await self._start(user, expires=expires, ref=ref, after_user=after_user)
        elif user.pk != self.user.pk:
            raise Forbidden("A socket cannot change its user; open a new one.")
        else:
            # From now on the socket stands on this token (its generation, its expiry),
            # no longer on the session it may have been opened with.
            self.user = user
            self.scope["session_auth"] = None
            self._expire_at(expires)
            await self.send_frame(self._authenticated(user, expires, ref))
            await self._follow_user_stream(after_user)

    async def on_join(self, frame: dict[str, Any], ref) -> None:
        if "rooms" in frame:
            await self._join_many(frames.join_list(frame), ref)
            return
        room_id = frames.integer(frame, "room", minimum=1)
        after = frames.integer(frame, "after", minimum=0, required=False)
        await self._join(room_id, after=after, ref=ref)

    async def on_leave(self, frame: dict[str, Any], ref) -> None:
        room_id = frames.integer(frame, "room", minimum=1)
        await self._unsubscribe(room_id)
        await self.send_frame(events.ack(ref, room=room_id))

    async def on_message(self, frame: dict[str, Any], ref) -> None:
        """Queue the post and go on reading: a socket's posts that arrive together are
        stored together (`messaging.writer`), and answered in the order they were sent."""
        room_id = frames.integer(frame, "room", minimum=1)
        data = {k: v for k, v in frame.items() if k not in ("type", "ref", "room")}
        stored = group_commit.submit(room_id, self.me, data)
        previous = self._posting[-1] if self._posting else None
        answer = asyncio.ensure_future(self._answer_post(stored, previous, room_id, ref))
        self._posting.append(answer)
        answer.add_done_callback(self._posting.remove)
        if len(self._posting) >= MAX_POSTS_IN_FLIGHT:  # read on once the oldest is answered
            await asyncio.wait({self._posting[0]})

    async def _answer_post(
        self, stored: asyncio.Future, previous: asyncio.Task | None, room_id: int, ref
    ) -> None:
        if previous is not None:
            await asyncio.wait({previous})
        try:
            outcome = await stored
            if isinstance(outcome, ChatError):
                raise outcome
            await hub.forwarded()  # acked means published to every process, not only stored
            await self.send_frame(events.ack(ref, room=room_id, message=outcome))
            self._refused = 0
        except Exception as exc:
            await self._answer_error(exc, ref)

    async def on_typing(self, frame: dict[str, Any], ref) -> None:
        room_id = frames.integer(frame, "room", minimum=1)
        is_typing = frames.boolean(frame, "is_typing")
        if room_id not in self.rooms:
            raise Forbidden("Join the room before typing in it.")
        # At most one `typing` frame per user and room per TYPING_EVERY; sooner ones are
        # held and the latest is relayed when the window opens (`messaging.typists`).
        if self._typist is None:
            self._typist = TypingRelay(self.me, subscribed=self.rooms.__contains__)
        await self._typist.typed(room_id, is_typing)
        if ref is not None:  # typing is frequent: answered only when the client asks
            await self.send_frame(events.ack(ref, room=room_id))

    async def on_read(self, frame: dict[str, Any], ref) -> None:
        room_id = frames.integer(frame, "room", minimum=1)
        message_id = frames.integer(frame, "message_id", minimum=1)
        state = await _mark_read(self.me, room_id, message_id)
        await self.send_frame(events.ack(ref, room=room_id, **state))

    async def on_subscribe_status(self, frame: dict[str, Any], ref) -> None:
        user_id = frames.integer(frame, "user_id", minimum=1)
        if user_id not in self.status_of and len(self.status_of) >= MAX_STATUS_SUBSCRIPTIONS:
            raise ValidationFailed(f"A socket follows at most {MAX_STATUS_SUBSCRIPTIONS} users.")
        status = await _status_of(user_id)
        if user_id not in self.status_of:
            self.status_of.add(user_id)
            await hub.subscribe(status_group(user_id), self)
        self._presence[user_id] = status["is_online"]
        await self.send_frame(
            events.ack(
                ref,
                user_id=status["user_id"],
                username=status["username"],
                is_online=status["is_online"],
                last_seen=status["last_seen"],
            )
        )

    async def on_unsubscribe_status(self, frame: dict[str, Any], ref) -> None:
        user_id = frames.integer(frame, "user_id", minimum=1)
        if user_id in self.status_of:
            self.status_of.discard(user_id)
            await hub.unsubscribe(status_group(user_id), self)
        await self.send_frame(events.ack(ref, user_id=user_id))

    async def on_ping(self, frame: dict[str, Any], ref) -> None:
        await self.send_frame(events.pong(ref))

    HANDLERS = {
        "authenticate": on_authenticate,
        "join": on_join,
        "leave": on_leave,
        "message": on_message,
        "typing": on_typing,
        "read": on_read,
        "subscribe_status": on_subscribe_status,
        "unsubscribe_status": on_unsubscribe_status,
        "ping": on_ping,
    }

    # ------------------------------------------------------------- hub events

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels' dispatch first closes stale database connections in the database
        # thread, for every frame; our database calls do that themselves
        # (`database_sync_to_async`), so frames that need no database skip the hop.
        kind = message["type"]
        if kind.startswith("_"):  # as Channels refuses: never a private method
            raise ValueError(f"Malformed type in message (leading underscore): {kind}")
        handler = getattr(self, kind.replace(".", "_"), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def deliver(self, event: dict[str, Any], frame: Frame) -> None:
        """A room, user or status event from the hub; `frame` is `event` encoded."""
        kind = event["type"]
        if kind in ("user_online", "user_offline"):
            await self._presence_event(event, frame)
            return
        if kind == "user_deactivated":
            await self.send_error(Unauthenticated("This account was deactivated."), None)
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if kind == "credentials_revoked":  # sockets signed in before the revocation
            if self.me.token_generation < event["generation"]:
                await self.send_error(Unauthenticated("You were signed out everywhere."), None)
                await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if kind == "session_ended":  # sockets opened with the session that signed out
            session = self.scope.get("session_auth")
            if session is not None and session.digest == event["session"]:
                await self.send_error(Unauthenticated("You signed out."), None)
                await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if "user_pos" in event:  # the user's own stream
            if self._user_held is not None:
                self._user_held.append((event, frame))
            else:
                await self._user_change(event, frame)
            return
        room_id: int = event["room"]  # every other event is of one room
        if room_id in self._held:
            self._held[room_id].append((event, frame))
            return
        if kind == "typing" and event["user"]["id"] == self.me.pk:
            return  # never echo typing to the typist's own sockets
        floor = self.rooms.get(room_id)
        if floor is None:
            return  # not (or no longer) subscribed
        pos = event.get("pos")
        if pos is not None and pos <= floor:
            return  # already shown by the join answer or the replay
        if kind == "room_deleted":
            await self._unsubscribe(room_id)
        await self._send_frame(frame)

    async def _presence_event(self, event: dict[str, Any], frame: Frame) -> None:
        """One user's online state reaches a socket through each room it shares with that
        user and through `subscribe_status`; show each change once."""
        user_id, online = event["user_id"], event["is_online"]
        if self._presence.get(user_id) == online:
            return
        if len(self._presence) >= MAX_PRESENCE_MEMORY:
            self._presence.clear()
        self._presence[user_id] = online
        await self._send_frame(frame)

    # ----------------------------------------------------------------- output

    async def send_frame(self, frame: events.ClientFrame) -> None:
        await self._write(encode(frame))

    async def _write(self, text: str) -> None:
        if self._send_wire is not None:  # framed here, written at once (see _send_frame)
            self._send_wire(Frame(text).wire, text)
        else:
            await self.base_send({"type": "websocket.send", "text": text})

    async def _send_frame(self, frame: Frame) -> None:
        """An event's frame, encoded once by the hub: under `manage.py serve` written
        straight to the connection (the `chat.send_wire` scope extension), else sent as
        text through ASGI."""
        if self._send_wire is not None:
            self._send_wire(frame.wire, frame.text)
        else:
            await self._write(frame.text)

    async def send_error(self, exc: ChatError, ref) -> None:
        await self._write(encode(events.error(exc, ref)))
