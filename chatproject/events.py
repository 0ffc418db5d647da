"""The event catalogue: every frame the server sends, with its fields, and the one
function that builds it.

A frame type that is not declared here is never sent (as in Zulip's `event_types.py`).
Each frame is a `TypedDict` named for what it says; each builder is named for the frame
type and is the only place that frame is put together, so the consumer, the services,
the presence registry and any other protocol adapter send the same shapes. The README's
protocol table and an end-to-end test that records a real session are held to
`CLIENT_FRAMES` (`tests/test_event_catalogue.py`, `tests/e2e/test_catalogue.py`).

Two kinds of event travel the fan-out:

- frames a client receives (`CLIENT_FRAMES`);
- control events between processes (`CONTROL_EVENTS`): a socket acts on them (leaves a
  room, closes) and never forwards them.

`ref` is present only when the client's frame carried one.
"""

from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Literal, NotRequired, Protocol, TypedDict, Unpack

from django.conf import settings

from chatproject.errors import ChatError, RateLimited

try:
    SERVER_VERSION = version("chatproject")
except PackageNotFoundError:  # run from a checkout that was not installed
    SERVER_VERSION = "unknown"

Ref = str | int


class Person(Protocol):
    """What a brief of a user is built from (an `accounts.models.User`)."""

    pk: Any
    username: str
    display_name: str
    is_bot: bool
    is_guest: bool

    @property
    def avatar_url(self) -> str:
        """The picture's URL, "" when the user has none."""
        ...


# ----------------------------------------------------------------- the objects inside


class UserBrief(TypedDict):
    """A user as frames and messages name them. `is_bot` (an integration key's bot) and
    `is_guest` (a guest's nickname, SPEC 9.3) are present, and true, only for those: a
    person who registered is the brief without them. `avatar`: the URL of the user's
    picture, present only when they uploaded one (else the page draws initials)."""

    id: int
    username: str
    display_name: str
    is_bot: NotRequired[Literal[True]]
    is_guest: NotRequired[Literal[True]]
    avatar: NotRequired[str]


class FileData(TypedDict):
    """An uploaded attachment."""

    id: int
    url: str
    name: str
    size: int
    content_type: str


class LinkData(TypedDict):
    """An attachment given by URL (`attachment_urls`)."""

    url: str


class ReactionData(TypedDict):
    emoji: str
    count: int
    user_ids: list[int]
    me: NotRequired[bool]  # when the reader is known (REST answers, recovery)


MessageType = Literal["text", "system", "announcement"]


class MessageData(TypedDict):
    """A message as REST answers and socket frames show it (`MessageSerializer`)."""

    id: int
    room: int
    seq: int
    pos: int
    sender: UserBrief | None
    type: MessageType
    content: str
    # `content` rendered from Markdown and sanitized (`messaging.rendering`); "" when deleted.
    content_html: str
    # Users mentioned by `@username` (members) or `@here` (members online when it was
    # sent); `mentions_room`: it says `@room` (every member).
    mentions: list[int]
    mentions_room: bool
    title: str | None
    payload: dict[str, Any]
    attachments: list[FileData | LinkData]
    reply_to: int | None
    client_id: str
    reactions: list[ReactionData]
    created_at: str
    edited_at: str | None
    deleted: bool


# ------------------------------------------------------------- frames a client receives


class Limits(TypedDict):
    """What a client must not exceed, so it need not guess (README: Limits)."""

    max_message_length: int  # characters of `content`
    message_rate: list[int]  # [count, seconds]: CHAT_RATE_LIMIT
    write_rate: list[int]  # [count, seconds]: WRITE_RATE_LIMIT
    max_frame_bytes: int
    max_upload_mb: int


class Authenticated(TypedDict):
    type: Literal["authenticated"]
    user: UserBrief
    connection: str  # this socket's id, as the server's logs name it (`socket_id`)
    expires_at: int | None  # epoch seconds when the access token ends (None: a session)
    user_pos: int  # the position of the user's own stream (SPEC 12)
    server: str  # the server's version
    limits: Limits
    ref: NotRequired[Ref]


class JoinedRoom(TypedDict):
    """A room a batched `join` subscribed to, and its position."""

    room: int
    pos: int


class RefusedRoom(TypedDict):
    """A room a batched `join` did not subscribe to, and why (an `error` frame's code)."""

    room: int
    code: str
    message: str


class AckFields(TypedDict, total=False):
    """What an `ack` answers, by the frame it answers (README: "Client → server")."""

    room: int  # join, leave, message, typing, read
    pos: int  # join: the room's position
    rooms: list[JoinedRoom]  # join with `rooms`: those subscribed to
    refused: list[RefusedRoom]  # join with `rooms`: those that were not
    message: MessageData  # message: the stored message
    last_read_seq: int  # read
    unread_count: int  # read
    mention_count: int  # read
    user_id: int  # subscribe_status, unsubscribe_status
    username: str  # subscribe_status
    is_online: bool  # subscribe_status
    last_seen: str | None  # subscribe_status


class Ack(AckFields):
    """The answer to a client frame; `ref` when the frame carried one."""

    type: Literal["ack"]
    ref: NotRequired[Ref]


class Error(TypedDict):
    type: Literal["error"]
    code: str
    message: str
    fields: NotRequired[dict[str, Any]]
    retry_after: NotRequired[int]  # rate_limited: seconds
    ref: NotRequired[Ref]


class Pong(TypedDict):
    type: Literal["pong"]
    ref: NotRequired[Ref]


class MessageFrame(TypedDict):
    """A new message (`message`), or a message's new state (`message_updated`)."""

    type: Literal["message", "message_updated"]
    room: int
    pos: int
    message: MessageData


class MessageDeleted(TypedDict):
    type: Literal["message_deleted"]
    room: int
    pos: int
    message_id: int


class ReactionChanged(TypedDict):
    type: Literal["reaction_added", "reaction_removed"]
    room: int
    pos: int
    message_id: int
    emoji: str
    user_id: int


class RoomPresence(TypedDict):
    """A user's first socket joined the room (`user_joined`), or their last left it."""

    type: Literal["user_joined", "user_left"]
    room: int
    user: UserBrief


class RoomUsers(TypedDict):
    """Who is in the room, sent after the `join` ack: at most ROOM_USERS_MAX of them (the
    lowest ids), and `count`, how many are present (the rest: `GET
    /api/rooms/{id}/members/?online=true`)."""

    type: Literal["room_users"]
    room: int
    users: list[UserBrief]
    count: int


class PresenceBatch(TypedDict):
    """A big room's joins and leaves of one period (`roompresence.batch_period`), not a
    `user_joined` / `user_left` each: a user is in one of the two lists, the one of their
    state at the end of the period; `count` is how many are present then."""

    type: Literal["room_presence"]
    room: int
    joined: list[UserBrief]
    left: list[int]
    count: int


class UserStatus(TypedDict):
    type: Literal["user_online", "user_offline"]
    user_id: int
    username: str
    is_online: bool
    last_seen: str | None


class Typing(TypedDict):
    type: Literal["typing"]
    room: int
    user: UserBrief
    is_typing: bool


class RoomPurged(TypedDict):
    """The room's history was removed (clear it)."""

    type: Literal["room_purged"]
    room: int


class RoomDeleted(TypedDict):
    """The room is gone. Its members get it in their own stream (with `user_pos`); a
    socket that was only reading the room gets it from the room, without: clients treat
    it as idempotent."""

    type: Literal["room_deleted"]
    room: int
    user_pos: NotRequired[int]


# ------------------------------------------- the user's own stream (SPEC 12, `user_pos`)


class RoomMembership(TypedDict):
    """`room_added`: the user was added to a room (invited, a new direct room, joined on
    another device): fetch it, join it. `room_removed`: the user left or was removed."""

    type: Literal["room_added", "room_removed"]
    room: int
    user_pos: int


class RoomUpdated(TypedDict):
    """A room of the user's was renamed, described, archived or unarchived."""

    type: Literal["room_updated"]
    room: int
    name: str
    description: str
    is_archived: bool
    user_pos: int


class MembershipChanged(TypedDict):
    """The user's role in a room changed, or the user muted or unmuted it."""

    type: Literal["membership_changed"]
    room: int
    role: str
    muted: bool
    user_pos: int


class RoomRead(TypedDict):
    """The user's read marker in a room moved (on this socket or any other)."""

    type: Literal["room_read"]
    room: int
    last_read_seq: int
    unread_count: int
    mention_count: int
    user_pos: int


UserStreamFrame = RoomMembership | RoomUpdated | RoomDeleted | MembershipChanged | RoomRead


# ------------------------------------------------------------ control events (internal)


class UserDeactivated(TypedDict):
    """The account was deactivated: its sockets are closed with 4401."""

    type: Literal["user_deactivated"]


class CredentialsRevoked(TypedDict):
    """The user's tokens and sessions were revoked (a password change, "sign out
    everywhere"): their sockets authenticated under an older generation are closed with
    4401."""

    type: Literal["credentials_revoked"]
    generation: int


class SessionEnded(TypedDict):
    """A session signed out: the sockets it authenticated are closed with 4401. `session`
    is a digest of the session key, never the key."""

    type: Literal["session_ended"]
    session: str


ClientFrame = (
    Authenticated
    | Ack
    | Error
    | Pong
    | MessageFrame
    | MessageDeleted
    | ReactionChanged
    | RoomPresence
    | RoomUsers
    | PresenceBatch
    | UserStatus
    | Typing
    | RoomPurged
    | UserStreamFrame
)
ControlEvent = UserDeactivated | CredentialsRevoked | SessionEnded
Event = ClientFrame | ControlEvent

CLIENT_FRAMES: dict[str, type] = {
    "authenticated": Authenticated,
    "ack": Ack,
    "error": Error,
    "pong": Pong,
    "message": MessageFrame,
    "message_updated": MessageFrame,
    "message_deleted": MessageDeleted,
    "reaction_added": ReactionChanged,
    "reaction_removed": ReactionChanged,
    "user_joined": RoomPresence,
    "user_left": RoomPresence,
    "room_users": RoomUsers,
    "room_presence": PresenceBatch,
    "user_online": UserStatus,
    "user_offline": UserStatus,
    "typing": Typing,
    "room_purged": RoomPurged,
    "room_deleted": RoomDeleted,
    "room_added": RoomMembership,
    "room_removed": RoomMembership,
    "room_updated": RoomUpdated,
    "membership_changed": MembershipChanged,
    "room_read": RoomRead,
}

CONTROL_EVENTS: dict[str, type] = {
    "user_deactivated": UserDeactivated,
    "credentials_revoked": CredentialsRevoked,
    "session_ended": SessionEnded,
}


# ------------------------------------------------------------------------- builders


def user_brief(user: Person) -> UserBrief:
    return brief_of(
        pk=user.pk,
        username=user.username,
        display_name=user.display_name,
        is_bot=user.is_bot,
        is_guest=user.is_guest,
        avatar=user.avatar_url,
    )


def brief_of(
    *,
    pk: int,
    username: str,
    display_name: str,
    is_bot: bool = False,
    is_guest: bool = False,
    avatar: str = "",
) -> UserBrief:
    """A `UserBrief` from a user's values (a query's rows, a message's sender). `avatar`:
    the picture's URL (`accounts.avatars.avatar_url`), "" for none."""
    brief: UserBrief = {"id": pk, "username": username, "display_name": display_name}
    if is_bot:
        brief["is_bot"] = True
    if is_guest:
        brief["is_guest"] = True
    if avatar:
        brief["avatar"] = avatar
    return brief


def authenticated(
    *,
    user: UserBrief,
    connection: str,
    expires_at: int | None,
    user_pos: int,
    ref: Ref | None = None,
) -> Authenticated:
    frame: Authenticated = {
        "type": "authenticated",
        "user": user,
        "connection": connection,
        "expires_at": expires_at,
        "user_pos": user_pos,
        "server": SERVER_VERSION,
        "limits": {
            "max_message_length": settings.MAX_MESSAGE_LENGTH,
            "message_rate": list(settings.CHAT_RATE_LIMIT),
            "write_rate": list(settings.WRITE_RATE_LIMIT),
            "max_frame_bytes": settings.WEBSOCKET_MAX_FRAME_BYTES,
            "max_upload_mb": settings.MAX_UPLOAD_MB,
        },
    }
    if ref is not None:
        frame["ref"] = ref
    return frame


def ack(ref: Ref | None, **fields: Unpack[AckFields]) -> Ack:
    """The `ack` of one client frame, with the fields its kind answers."""
    frame: Ack = {"type": "ack", **fields}
    if ref is not None:
        frame["ref"] = ref
    return frame


def error(exc: ChatError, ref: Ref | None = None) -> Error:
    frame: Error = {"type": "error", "code": exc.code, "message": exc.message}
    if exc.fields:
        frame["fields"] = exc.fields
    if isinstance(exc, RateLimited):
        frame["retry_after"] = exc.retry_after
    if ref is not None:
        frame["ref"] = ref
    return frame


def pong(ref: Ref | None = None) -> Pong:
    frame: Pong = {"type": "pong"}
    if ref is not None:
        frame["ref"] = ref
    return frame


def message(
    data: MessageData, *, kind: Literal["message", "message_updated"] = "message"
) -> MessageFrame:
    return {"type": kind, "room": data["room"], "pos": data["pos"], "message": data}


def message_deleted(*, room: int, pos: int, message_id: int) -> MessageDeleted:
    return {"type": "message_deleted", "room": room, "pos": pos, "message_id": message_id}


ReactionKind = Literal["reaction_added", "reaction_removed"]


def reaction_changed(
    kind: ReactionKind,
    *,
    room: int,
    pos: int,
    message_id: int,
    emoji: str,
    user_id: int,
) -> ReactionChanged:
    return {
        "type": kind,
        "room": room,
        "pos": pos,
        "message_id": message_id,
        "emoji": emoji,
        "user_id": user_id,
    }


def user_joined(*, room: int, user: UserBrief) -> RoomPresence:
    return {"type": "user_joined", "room": room, "user": user}


def user_left(*, room: int, user: UserBrief) -> RoomPresence:
    return {"type": "user_left", "room": room, "user": user}


def room_users(*, room: int, users: Iterable[UserBrief], count: int) -> RoomUsers:
    return {"type": "room_users", "room": room, "users": list(users), "count": count}


def room_presence(
    *, room: int, joined: Iterable[UserBrief], left: Iterable[int], count: int
) -> PresenceBatch:
    return {
        "type": "room_presence",
        "room": room,
        "joined": list(joined),
        "left": list(left),
        "count": count,
    }


def user_status(
    *, user_id: int, username: str, is_online: bool, last_seen: str | None
) -> UserStatus:
    """`user_online` or `user_offline`, as `is_online` says."""
    return {
        "type": "user_online" if is_online else "user_offline",
        "user_id": user_id,
        "username": username,
        "is_online": is_online,
        "last_seen": last_seen,
    }


def typing(*, room: int, user: UserBrief, is_typing: bool) -> Typing:
    return {"type": "typing", "room": room, "user": user, "is_typing": is_typing}


def room_purged(room: int) -> RoomPurged:
    return {"type": "room_purged", "room": room}


def room_deleted(room: int, *, user_pos: int | None = None) -> RoomDeleted:
    frame: RoomDeleted = {"type": "room_deleted", "room": room}
    if user_pos is not None:
        frame["user_pos"] = user_pos
    return frame


def room_added(room: int, *, user_pos: int) -> RoomMembership:
    return {"type": "room_added", "room": room, "user_pos": user_pos}


def room_removed(room: int, *, user_pos: int) -> RoomMembership:
    return {"type": "room_removed", "room": room, "user_pos": user_pos}


def room_updated(
    room: int, *, name: str, description: str, is_archived: bool, user_pos: int
) -> RoomUpdated:
    return {
        "type": "room_updated",
        "room": room,
        "name": name,
        "description": description,
        "is_archived": is_archived,
        "user_pos": user_pos,
    }


def membership_changed(room: int, *, role: str, muted: bool, user_pos: int) -> MembershipChanged:
    return {
        "type": "membership_changed",
        "room": room,
        "role": role,
        "muted": muted,
        "user_pos": user_pos,
    }


def room_read(
    room: int, *, last_read_seq: int, unread_count: int, mention_count: int, user_pos: int
) -> RoomRead:
    return {
        "type": "room_read",
        "room": room,
        "last_read_seq": last_read_seq,
        "unread_count": unread_count,
        "mention_count": mention_count,
        "user_pos": user_pos,
    }


def user_deactivated() -> UserDeactivated:
    return {"type": "user_deactivated"}


def credentials_revoked(generation: int) -> CredentialsRevoked:
    return {"type": "credentials_revoked", "generation": generation}


def session_ended(session: str) -> SessionEnded:
    return {"type": "session_ended", "session": session}
