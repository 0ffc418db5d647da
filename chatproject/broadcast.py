"""The one road from a change to the sockets that must see it.

Services call `broadcast_room_event` / `broadcast_user_event` inside their transaction;
the event leaves only after the commit (`transaction.on_commit`), so no socket ever sees
a change that was rolled back. Events are built by `chatproject.events` (the catalogue);
`chatproject.hub` encodes each once and writes it to every socket of the group, on every
process. Group names come from ids only.
"""

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from chatproject.events import Event
from chatproject.hub import hub
from chatproject.logs import get_logger

log = get_logger(__name__)


def room_group(room_id: int) -> str:
    """Sockets subscribed to a room (`join`)."""
    return f"room.{room_id}"


def user_group(user_id: int) -> str:
    """Every socket of one user."""
    return f"user.{user_id}"


def status_group(user_id: int) -> str:
    """Sockets that asked for one user's online status (`subscribe_status`)."""
    return f"status.{user_id}"


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
    """Deliver an event to every socket of one user, after the commit."""
    transaction.on_commit(lambda: _send(user_group(user_id), event))


def publish(group: str, event: Event) -> None:
    """Send an event that no transaction stands behind (presence, typing) right away;
    from the event loop."""
    hub.publish(group, event)
