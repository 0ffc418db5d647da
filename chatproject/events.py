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


# ----------------------------------------------------------------- the objects inside


class UserBrief(TypedDict):
    """A user as frames and messages name them. `is_bot` (an integration key's bot) and
    `is_guest` (a guest's nickname, SPEC 9.3) are present, and true, only for those: a
    person who registered is the brief without them."""

    id: int
    username: str
    display_name: str
    is_bot: NotRequired[Literal[True]]
    is_guest: NotRequired[Literal[True]]


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
    server: str  # the server's version
    limits: Limits
    ref: NotRequired[Ref]


class AckFields(TypedDict, total=False):
    """What an `ack` answers, by the frame it answers (README: "Client → server")."""

    room: int  # join, leave, message, typing, read
    pos: int  # join: the room's position
    message: MessageData  # message: the stored message
    last_read_seq: int  # read
    unread_count: int  # read
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
    type: Literal["room_users"]
    room: int
    users: list[UserBrief]


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


class RoomChanged(TypedDict):
    """`room_added`: the user was added to a room (fetch it, join it); `room_deleted`:
    the room is gone; `room_purged`: its history was removed (clear it)."""

    type: Literal["room_added", "room_deleted", "room_purged"]
    room: int


# ------------------------------------------------------------ control events (internal)


class RoomRevoked(TypedDict):
    """The user left or was removed: their sockets stop receiving the room."""

    type: Literal["room_revoked"]
    room: int


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
    | UserStatus
    | Typing
    | RoomChanged
)
ControlEvent = RoomRevoked | UserDeactivated | CredentialsRevoked | SessionEnded
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
    "user_online": UserStatus,
    "user_offline": UserStatus,
    "typing": Typing,
    "room_added": RoomChanged,
    "room_deleted": RoomChanged,
    "room_purged": RoomChanged,
}
CONTROL_EVENTS: dict[str, type] = {
    "room_revoked": RoomRevoked,
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
    )


def brief_of(
    *, pk: int, username: str, display_name: str, is_bot: bool = False, is_guest: bool = False
) -> UserBrief:
    """A `UserBrief` from a user's values (a query's rows, a message's sender)."""
    brief: UserBrief = {"id": pk, "username": username, "display_name": display_name}
    if is_bot:
        brief["is_bot"] = True
    if is_guest:
        brief["is_guest"] = True
    return brief


def authenticated(
    *, user: UserBrief, connection: str, expires_at: int | None, ref: Ref | None = None
) -> Authenticated:
    frame: Authenticated = {
        "type": "authenticated",
        "user": user,
        "connection": connection,
        "expires_at": expires_at,
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


def room_users(*, room: int, users: Iterable[UserBrief]) -> RoomUsers:
    return {"type": "room_users", "room": room, "users": list(users)}


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


def room_added(room: int) -> RoomChanged:
    return {"type": "room_added", "room": room}


def room_deleted(room: int) -> RoomChanged:
    return {"type": "room_deleted", "room": room}


def room_purged(room: int) -> RoomChanged:
    return {"type": "room_purged", "room": room}


def room_revoked(room: int) -> RoomRevoked:
    return {"type": "room_revoked", "room": room}


def user_deactivated() -> UserDeactivated:
    return {"type": "user_deactivated"}


def credentials_revoked(generation: int) -> CredentialsRevoked:
    return {"type": "credentials_revoked", "generation": generation}


def session_ended(session: str) -> SessionEnded:
    return {"type": "session_ended", "session": session}
