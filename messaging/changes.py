"""Changes to stored messages: edits, soft deletes and restores, reactions, and purging a
room's history. Each takes the room's next position (`messaging.stream`) under the room
lock, room first, then the message, always in that order. A change that others will see
spends the actor's WRITE_RATE_LIMIT (`rooms.services.check_write_rate`) first; a change
that changes nothing (the same content, a reaction already there) spends nothing."""

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from chatproject import events
from chatproject.broadcast import broadcast_room_event
from chatproject.errors import ChatError, Forbidden, ValidationFailed
from chatproject.text import clean_text
from messaging import mentions
from messaging.models import Message, Reaction
from messaging.stream import advance_position, deleted_frame, lock_room, message_frame, post_notice
from rooms.models import Room
from rooms.services import check_write_rate


def _lock_message(message: Message) -> tuple[Room, Message]:
    """Lock the message's room, then re-read the message. Order: room first, always."""
    room = lock_room(message.room_id)
    return room, Message.objects.select_related("sender").get(pk=message.pk)


def _writable(room: Room, message: Message) -> None:
    if room.is_archived:
        raise Forbidden("This room is archived and read-only.")
    if message.deleted:
        raise MessageGone()


class MessageGone(ChatError):
    code = "not_found"
    status = 404
    default_message = "That message was deleted."


def edit_message(*, message: Message, editor: User, content: str) -> Message:
    """Replace a message's content (its author only); takes a new room position."""
    content = clean_text(content, field="content", max_length=settings.MAX_MESSAGE_LENGTH)
    if not content.strip():
        raise ValidationFailed(
            "Content may not be blank.", fields={"content": ["This field may not be blank."]}
        )
    if message.sender_id != editor.pk:
        raise Forbidden("Only the author may edit a message.")
    with transaction.atomic():
        room, message = _lock_message(message)
        _writable(room, message)
        if message.content == content:
            return message
        check_write_rate(user=editor)
        message.content = content
        (shown,) = mentions.render_in_room(room.pk, [content], [message.sender_id])
        mentions.apply(message, shown)
        message.edited_at = timezone.now()
        message.pos = advance_position(room)
        rendered = ["content_html", "mentions", "mentions_room"]
        message.save(update_fields=["content", *rendered, "edited_at", "pos"])
        mentions.replace_mentions(message)
        broadcast_room_event(room.pk, message_frame(message, "message_updated"))
    return message


def delete_message(*, message: Message, actor: User, can_moderate: bool) -> Message:
    """Soft-delete: the message keeps its place, shows no content, takes a new position.

    `can_moderate`: the actor is an owner/admin of the room or staff (checked by the caller).
    """
    if message.sender_id != actor.pk and not can_moderate:
        raise Forbidden("Only the author, the room's owner or admins, or staff may delete it.")
    if message.type == Message.Type.SYSTEM and not can_moderate:
        raise Forbidden("System messages are deleted by moderators only.")
    with transaction.atomic():
        room, message = _lock_message(message)
        if message.deleted:
            return message
        check_write_rate(user=actor)
        message.deleted = True
        message.deleted_at = timezone.now()
        message.pos = advance_position(room)
        message.save(update_fields=["deleted", "deleted_at", "pos"])
        broadcast_room_event(room.pk, deleted_frame(message))
    return message


def restore_message(*, message: Message) -> Message:
    """Undo a soft delete (moderation); clients see it again as `message_updated`."""
    with transaction.atomic():
        room, message = _lock_message(message)
        if not message.deleted:
            return message
        message.deleted = False
        message.deleted_at = None
        message.pos = advance_position(room)
        message.save(update_fields=["deleted", "deleted_at", "pos"])
        broadcast_room_event(room.pk, message_frame(message, "message_updated"))
    return message


MAX_EMOJI_LENGTH = 16
MAX_DISTINCT_REACTIONS = 20


def clean_emoji(emoji: object) -> str:
    if not isinstance(emoji, str) or not emoji or len(emoji) > MAX_EMOJI_LENGTH:
        raise ValidationFailed(
            f"emoji must be 1 to {MAX_EMOJI_LENGTH} characters.", fields={"emoji": ["Invalid."]}
        )
    # The zero-width joiner (not "printable") binds multi-person emoji like 👨‍👩‍👧.
    if any(ch.isspace() or (not ch.isprintable() and ch != "\u200d") for ch in emoji):
        raise ValidationFailed(
            "emoji may not contain spaces or control characters.", fields={"emoji": ["Invalid."]}
        )
    return clean_text(emoji, field="emoji", max_length=MAX_EMOJI_LENGTH)


def add_reaction(*, message: Message, user: User, emoji: str) -> bool:
    """React once per user and emoji; a repeat changes nothing. True when added."""
    emoji = clean_emoji(emoji)
    with transaction.atomic():
        room, message = _lock_message(message)
        _writable(room, message)
        if Reaction.objects.filter(message=message, user=user, emoji=emoji).exists():
            return False
        distinct = Reaction.objects.filter(message=message).values("emoji").distinct().count()
        if (
            distinct >= MAX_DISTINCT_REACTIONS
            and not Reaction.objects.filter(message=message, emoji=emoji).exists()
        ):
            raise ValidationFailed(f"A message takes at most {MAX_DISTINCT_REACTIONS} emoji.")
        check_write_rate(user=user)
        Reaction.objects.create(message=message, user=user, emoji=emoji)
        _reaction_changed(room, message, user, emoji, "reaction_added")
    return True


def remove_reaction(*, message: Message, user: User, emoji: str) -> bool:
    """Take a reaction back; removing one that is not there changes nothing."""
    emoji = clean_emoji(emoji)
    with transaction.atomic():
        room, message = _lock_message(message)
        _writable(room, message)
        deleted, _ = Reaction.objects.filter(message=message, user=user, emoji=emoji).delete()
        if not deleted:
            return False
        check_write_rate(user=user)  # refused: the delete above is rolled back
        _reaction_changed(room, message, user, emoji, "reaction_removed")
    return True


def _reaction_changed(
    room: Room, message: Message, user: User, emoji: str, kind: events.ReactionKind
) -> None:
    message.pos = advance_position(room)
    message.save(update_fields=["pos"])
    frame = events.reaction_changed(
        kind, room=room.pk, pos=message.pos, message_id=message.pk, emoji=emoji, user_id=user.pk
    )
    broadcast_room_event(room.pk, frame)


def purge_messages(*, room: Room, actor: User) -> int:
    """Delete every message of the room for good (moderation). Returns how many.

    Positions are not reused: a system notice takes the next one, and sockets in the
    room are told with `room_purged` to drop what they show.
    """
    check_write_rate(user=actor)
    with transaction.atomic():
        locked = lock_room(room.pk)
        _, deleted = Message.objects.filter(room=locked).delete()
        # `room_purged` first: a client clears the room, then shows the notice.
        broadcast_room_event(locked.pk, events.room_purged(locked.pk))
        post_notice(
            room=locked,
            content=f"{actor.shown_name} removed the room's message history.",
            payload={"event": "room_purged", "user_id": actor.pk},
        )
    return deleted.get(Message._meta.label, 0)
