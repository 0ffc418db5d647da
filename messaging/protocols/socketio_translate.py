"""Socket.IO events to and from native frames (SPEC 9.1), for `socketio.SocketIOSession`.

- In (`native_frame`): a Socket.IO event becomes the native frame of the same name.
  `room_id` may be a room's name or slug (`room_id_of`: a join of an unknown name creates
  the room, as the seed's dynamic rooms), `target_user_id` a username (`user_id_of`).
  The acknowledgement callback's id, the frame's `ref`, is the session's to add.
- Out (`payload`, `event_packet`, `ack_packet`, `error_body`): a native frame as the
  seed's Socket.IO event of the same name carries it, in Engine.IO message text. An event
  the hub delivers is translated once for every socket of its group (`event_text`).

Translation only: whether a frame is allowed, and what it does, is the native
consumer's (`messaging.consumers.ChatConsumer`), which the session runs.
"""

from typing import Any

from channels.db import database_sync_to_async
from django.db.models import Q
from socketio import packet as sio_packet

from accounts.models import User
from chatproject.errors import Forbidden, NotFound, Unauthenticated, ValidationFailed
from chatproject.hub import Frame
from messaging import frames
from rooms.models import Room
from rooms.services import create_room

MESSAGE_FIELDS = ("content", "title", "payload", "attachment_urls", "client_id")
# The seed's `type` of a message: only text is posted over a socket (staff post
# announcements over REST or the admin). It is not copied into the native frame, whose
# own `type` says which frame it is.
SOCKET_MESSAGE_TYPES = (None, "text")
ROOM_EVENTS = frozenset({"join", "leave", "message", "typing", "read"})
MAX_REMEMBERED_NAMES = 100  # room names a session resolved, kept per session

# The last event translated and encoded (`event_text`): the hub writes one event to every
# socket of a group in a row, so one entry is enough to encode it once.
_last: tuple[Frame, str] | None = None


# ----------------------------------------------------------------- database calls


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


# --------------------------------------------------------------- translation in


async def native_frame(
    name: str, data: dict[str, Any], *, user: User | None, names: dict[str, int]
) -> dict[str, Any]:
    """The native frame of the Socket.IO event `name` with its argument `data`, sent by a
    session of `user` (None before `authenticate`); `names` is the session's memory of
    the room names it resolved (`room_id_of`)."""
    kind = name
    if kind == "authenticate":
        keep = ("token", "user_id", "username")
        return {"type": kind, **{k: data[k] for k in keep if k in data}}
    if kind in ("subscribe_status", "unsubscribe_status"):
        target = data.get("target_user_id", data.get("user_id"))
        return {"type": kind, "user_id": await user_id_of(target)}
    if kind == "ping":
        return {"type": kind}
    if kind not in ROOM_EVENTS:
        raise frames.UnknownType(f"Unknown event {name[:64]!r}.")
    if user is None:
        raise Unauthenticated("Send `authenticate` first, or connect with `auth: {token}`.")
    room_id = await room_id_of(
        data.get("room_id", data.get("room")), user=user, names=names, create=kind == "join"
    )
    frame: dict[str, Any] = {"type": kind, "room": room_id}
    if kind == "join" and data.get("after") is not None:
        frame["after"] = data["after"]
    elif kind == "message":
        if data.get("type") not in SOCKET_MESSAGE_TYPES:
            raise ValidationFailed(
                "Only `text` messages are sent over a socket; staff post announcements "
                "over REST or in the admin.",
                fields={"type": ["Only `text`."]},
            )
        frame.update((k, data[k]) for k in MESSAGE_FIELDS if k in data)
    elif kind == "typing":
        frame["is_typing"] = data.get("is_typing", True)
    elif kind == "read":
        frame["message_id"] = data.get("message_id")
    return frame


async def room_id_of(value: object, *, user: User, names: dict[str, int], create: bool) -> int:
    """A room's id from the id, digits, or a name or slug (remembered in `names`)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, str) or not value.strip() or len(value) > 100:
        raise ValidationFailed(
            "`room_id` must be a room's id, name or slug.", fields={"room_id": ["Invalid."]}
        )
    if value.isdigit():
        return int(value)
    known = names.get(value)
    if known is None:
        known = await _room_named(value, user, create)
        if len(names) >= MAX_REMEMBERED_NAMES:
            names.clear()
        names[value] = known
    return known


async def user_id_of(value: object) -> int:
    """A user's id from the id, digits, or an active user's username."""
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


def error_body(frame: dict[str, Any]) -> dict[str, Any]:
    """An `ack` or `error` frame's fields, as an acknowledgement or `error` event carries them."""
    return {key: value for key, value in frame.items() if key not in ("type", "ref")}


def event_text(event: dict[str, Any], frame: Frame) -> str:
    """The Engine.IO message of an event the hub delivers as `frame`, encoded once for all
    the sockets it is written to in a row."""
    global _last
    if _last is not None and _last[0] is frame:
        return _last[1]
    text = event_packet(event["type"], payload(event))
    _last = (frame, text)
    return text
