"""The room stream: the one place a room's position advances and messages are stored.

Each change to a room (a new message, an edit, a delete, a reaction, a system notice)
takes the room's next position in the same transaction, under a lock on the room row.
Positions therefore commit in order and without gaps, and "every message with pos > N"
is a complete answer to "what did I miss since N" (SPEC section 3, "The room stream").

Every new message, whoever sends it (a socket, REST, the admin, a system notice), is
stored by `append`; the rules about who may post what live in `messaging.posting`.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import User
from chatproject import events, metrics
from chatproject.broadcast import broadcast_room_event
from messaging import mentions
from messaging.models import Attachment, Message, Reaction
from messaging.serializers import message_data
from rooms.models import Room


def lock_room(room_id: int) -> Room:
    """Lock the room row until the end of the caller's transaction and return it fresh.
    Raises Room.DoesNotExist."""
    return Room.objects.select_for_update().get(pk=room_id)


def advance_position(room: Room, *, new_message: bool = False, count: int = 1) -> int:
    """Take the room's next stream position (the last of `count` new ones). The caller
    holds the lock (`lock_room`)."""
    room.pos += count
    fields = ["pos"]
    if new_message:
        room.last_message_at = timezone.now()
        fields.append("last_message_at")
    room.save(update_fields=fields)
    return room.pos


@dataclass(slots=True)
class Draft:
    """A checked message, not stored yet: what `append` stores."""

    author: User | None  # None: a system notice
    content: str
    type: str
    client_id: str
    title: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    attachment_urls: list[str] = field(default_factory=list)
    reply_to: Message | None = None
    files: Sequence[Attachment] = ()  # uploads claimed for it (`posting` checked them)

    def message(self, room: Room, position: int, shown: mentions.Shown) -> Message:
        message = Message(
            room=room,
            seq=position,
            pos=position,
            sender=self.author,
            type=self.type,
            content=self.content,
            content_html=shown.html,
            mentions=shown.mentions,
            mentions_room=shown.mentions_room,
            title=self.title,
            payload=self.payload,
            attachment_urls=self.attachment_urls,
            reply_to=self.reply_to,
            client_id=self.client_id,
        )
        # A new message has no reactions, and its files are the draft's: the serializer,
        # for the event and the answer, need not ask the database.
        message._prefetched_objects_cache = {  # type: ignore[attr-defined]
            "reaction_set": _empty(Reaction),
            "files": _empty(Attachment),
        }
        return message


@cache
def _empty(model: type[Reaction] | type[Attachment]) -> QuerySet[Any]:
    empty = model.objects.none()
    list(empty)  # evaluated once (to nothing, without a query), then shared
    return empty


def append(room: Room, drafts: Sequence[Draft]) -> list[tuple[Message, events.MessageFrame]]:
    """Store new messages at the room's next positions, in order, and broadcast each after
    the commit; answer each message with its frame. The caller holds the room lock, and
    has checked that the room is writable and the drafts are new (not retries) with their
    files free."""
    if not drafts:
        return []
    # Markdown to HTML, and the names the batch mentions in one query (`mentions`).
    shown = mentions.render_in_room(
        room.pk,
        [draft.content for draft in drafts],
        [draft.author.pk if draft.author is not None else None for draft in drafts],
    )
    last = advance_position(room, new_message=True, count=len(drafts))
    first = last - len(drafts) + 1
    messages = [draft.message(room, first + k, shown[k]) for k, draft in enumerate(drafts)]
    Message.objects.bulk_create(messages)
    mentions.store_mentions(messages)
    stored = []
    for draft, message in zip(drafts, messages, strict=True):
        if draft.files:
            ids = [attachment.pk for attachment in draft.files]
            Attachment.objects.filter(pk__in=ids).update(message=message)
            del message._prefetched_objects_cache["files"]  # type: ignore[attr-defined]
        frame = message_frame(message)
        broadcast_room_event(room.pk, frame)
        stored.append((message, frame))
    metrics.MESSAGES_STORED.inc(len(messages))
    return stored


def post_notice(*, room: Room, content: str, payload: dict[str, Any] | None = None) -> Message:
    """A stored system notice (membership, rename, archive, purge). The caller holds the
    room lock."""
    draft = Draft(
        author=None,
        content=content,
        type=Message.Type.SYSTEM,
        client_id=uuid.uuid4().hex,
        payload=payload or {},
    )
    return append(room, [draft])[0][0]


# --------------------------------------------------------------- how changes look


def message_frame(
    message: Message,
    kind: Literal["message", "message_updated"] = "message",
    *,
    viewer_id: int | None = None,
) -> events.MessageFrame:
    """A `message` / `message_updated` frame. With `viewer_id`, reactions carry `me`."""
    return events.message(message_data(message, viewer_id=viewer_id), kind=kind)


def change_frame(
    message: Message, *, viewer_id: int | None = None
) -> events.MessageFrame | events.MessageDeleted:
    """The frame that shows a message's current state during recovery."""
    if message.deleted:
        return deleted_frame(message)
    kind: Literal["message", "message_updated"] = (
        "message_updated" if message.pos != message.seq else "message"
    )
    return message_frame(message, kind, viewer_id=viewer_id)


def deleted_frame(message: Message) -> events.MessageDeleted:
    return events.message_deleted(room=message.room_id, pos=message.pos, message_id=message.pk)
