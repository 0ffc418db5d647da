"""The one road from a committed change to the sockets that must see it.

Services call `broadcast_room_event` / `broadcast_user_event` inside their transaction;
the event leaves only after the commit (`transaction.on_commit`), so no socket ever sees
a change that was rolled back. Each event is built once, here, from the REST serializer,
so a message looks the same over REST and over the socket; `messaging.hub` encodes it
once and writes it to every socket of the group, on every process.
"""

from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from chatproject.logs import get_logger
from messaging.hub import hub
from messaging.models import Message

log = get_logger(__name__)

Event = dict[str, Any]


def room_group(room_id: int) -> str:
    return f"room.{room_id}"


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def message_event(
    message: Message, event_type: str = "message", *, viewer_id: int | None = None
) -> Event:
    """A `message` / `message_updated` frame. With `viewer_id`, reactions carry `me`."""
    from messaging.serializers import message_data

    return {
        "type": event_type,
        "room": message.room_id,
        "pos": message.pos,
        "message": message_data(message, viewer_id=viewer_id),
    }


def message_deleted_event(message: Message) -> Event:
    return {
        "type": "message_deleted",
        "room": message.room_id,
        "pos": message.pos,
        "message_id": message.pk,
    }


def change_event(message: Message, *, viewer_id: int | None = None) -> Event:
    """The frame that shows a message's current state during recovery."""
    if message.deleted:
        return message_deleted_event(message)
    kind = "message_updated" if message.pos != message.seq else "message"
    return message_event(message, kind, viewer_id=viewer_id)


def _send(group: str, event: Event) -> None:
    """Hand a committed change to the fan-out. In the server this returns at once (the
    event loop delivers it); a process without one (a management command) can reach
    other processes only through the channel layer."""
    if hub.publish_soon(group, event):
        return
    try:
        async_to_sync(get_channel_layer().group_send)(
            group, {"type": "hub.event", "origin": None, "group": group, "event": event}
        )
    except Exception:
        # The change is committed; live delivery is best effort and clients recover
        # with `after`. Say so loudly rather than fail the sender.
        log.exception("broadcast_failed", group=group, event_type=event.get("type"))


def broadcast_room_event(room_id: int, event: Event) -> None:
    """Deliver `event` to every socket subscribed to the room, after the commit."""
    transaction.on_commit(lambda: _send(room_group(room_id), event))


def broadcast_user_event(user_id: int, event: Event) -> None:
    """Deliver a control event to every socket of one user, after the commit."""
    transaction.on_commit(lambda: _send(user_group(user_id), event))


def publish(group: str, event: Event) -> None:
    """Send an event that no transaction stands behind (presence, typing) right away;
    from the event loop."""
    hub.publish(group, event)


def status_group(user_id: int) -> str:
    """Sockets that asked for one user's online status (`subscribe_status`)."""
    return f"status.{user_id}"
