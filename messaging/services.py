"""Writes of messages. Every change to a room's stream goes through `advance_position`.

The room stream: each change (a new message, an edit, a delete, a reaction) takes the
room's next position in the same transaction, under a lock on the room row. Positions
therefore commit in order and without gaps, and "every message with pos > N" is a
complete answer to "what did I miss since N".
"""

import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import User
from chatproject import metrics, throttle
from chatproject.errors import ChatError, Forbidden, RateLimited, TooLong, ValidationFailed
from messaging import events
from messaging.models import Attachment, Message, Reaction
from rooms.models import Room

MAX_ATTACHMENT_URLS = 10
MAX_TITLE_LENGTH = 200
MAX_PAYLOAD_BYTES = 8 * 1024
CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# NUL breaks PostgreSQL text; lone surrogates cannot be encoded as UTF-8.
_FORBIDDEN_CHARS = re.compile("[\x00\ud800-\udfff]")


def clean_text(value: str, *, field: str, max_length: int) -> str:
    """The one content check for REST and WebSocket: same characters, same counting.

    Length is counted in Unicode code points (what Python's `len` counts).
    """
    if _FORBIDDEN_CHARS.search(value):
        raise ValidationFailed(
            f"{field} contains a NUL or a lone surrogate character.",
            fields={field: ["Contains a NUL or a lone surrogate character."]},
        )
    if len(value) > max_length:
        raise TooLong(
            f"{field} is {len(value)} characters long; the limit is {max_length}.",
            fields={field: [f"Ensure this field has no more than {max_length} characters."]},
        )
    return value


def lock_room(room_id: int) -> Room:
    """Lock the room row until the end of the caller's transaction and return it fresh."""
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


def _existing(author: User, client_id: str, room: Room) -> Message | None:
    # `get`, not `first()`: no ORDER BY id, which PostgreSQL may answer by walking the
    # primary key index instead of the (sender, client_id) unique index.
    try:
        message = Message.objects.select_related("sender").get(sender=author, client_id=client_id)
    except Message.DoesNotExist:
        return None
    if message.room_id != room.pk:
        raise ValidationFailed(
            "client_id was already used for a message in another room.",
            fields={"client_id": ["Already used in another room."]},
        )
    return message


def post_message(
    *,
    room: Room,
    author: User,
    content: str = "",
    type: str = Message.Type.TEXT,
    title: str | None = None,
    payload: dict[str, Any] | None = None,
    attachment_urls: Sequence[str] = (),
    reply_to: Message | None = None,
    client_id: str | None = None,
    attachments: Sequence[Attachment] = (),
) -> tuple[Message, bool]:
    """Store a message and broadcast it after commit. Returns (message, created).

    Idempotent per sender and `client_id`: a retry returns the first message and stores
    and delivers nothing. The caller has checked that `author` may post in `room`.
    """
    draft = _draft(
        author=author,
        content=content,
        type=type,
        title=title,
        payload=payload,
        attachment_urls=attachment_urls,
        client_id=client_id,
        has_files=bool(attachments),
    )
    if reply_to is not None and reply_to.room_id != room.pk:
        raise ValidationFailed(
            "reply_to must be a message of the same room.",
            fields={"reply_to": ["Not a message of this room."]},
        )
    try:
        with transaction.atomic():
            locked = lock_room(room.pk)
            existing = _existing(author, draft.client_id, room)
            if existing is not None:
                return existing, False
            if locked.is_archived:
                raise Forbidden("This room is archived and read-only.")
            position = advance_position(locked, new_message=True)
            message = draft.message(locked, position, reply_to=reply_to)
            message.save(force_insert=True)
            if attachments:
                _attach(message, attachments)
                del message._prefetched_objects_cache["files"]  # read them back
            events.broadcast_room_event(locked.pk, events.message_event(message))
    except IntegrityError:
        # The same sender's concurrent retry (with the same client_id, into another
        # room's lock) committed first: answer with that message.
        existing = _existing(author, draft.client_id, room)
        if existing is None:
            raise
        return existing, False
    metrics.MESSAGES_STORED.inc()
    return message, True


@dataclass(slots=True)
class _Draft:
    """A checked message, not stored yet: what `post_message` and `post_batch` insert."""

    author: User
    content: str
    type: str
    title: str | None
    payload: dict[str, Any]
    attachment_urls: list[str]
    client_id: str

    def message(self, room: Room, position: int, *, reply_to: Message | None = None) -> Message:
        message = Message(
            room=room,
            seq=position,
            pos=position,
            sender=self.author,
            type=self.type,
            content=self.content,
            title=self.title,
            payload=self.payload,
            attachment_urls=self.attachment_urls,
            reply_to=reply_to,
            client_id=self.client_id,
        )
        # A new message has no reactions and (unless attached later) no files: the
        # serializer, for the event and the answer, need not ask the database.
        message._prefetched_objects_cache = _nothing_prefetched()
        return message


@cache
def _empty(model: type) -> QuerySet:
    empty = model.objects.none()
    list(empty)  # evaluated once (to nothing, without a query), then shared
    return empty


def _nothing_prefetched() -> dict[str, QuerySet]:
    return {"reaction_set": _empty(Reaction), "files": _empty(Attachment)}


def _draft(
    *,
    author: User,
    content: str,
    type: str,
    title: str | None,
    payload: dict[str, Any] | None,
    attachment_urls: Sequence[str],
    client_id: str | None,
    has_files: bool = False,
) -> _Draft:
    """Every check of a new message that needs no database."""
    content = clean_text(content or "", field="content", max_length=settings.MAX_MESSAGE_LENGTH)
    if title is not None:
        title = clean_text(title, field="title", max_length=MAX_TITLE_LENGTH) or None
    if not content.strip() and not attachment_urls and not has_files:
        raise ValidationFailed(
            "A message needs content or attachments.",
            fields={"content": ["This field may not be blank."]},
        )
    if type == Message.Type.SYSTEM:
        raise Forbidden("Nobody posts system messages.")
    if type == Message.Type.ANNOUNCEMENT and not author.is_staff:
        raise Forbidden("Only staff may post announcements.")
    if type not in Message.Type.values:
        raise ValidationFailed(f"Unknown message type {type!r}.", fields={"type": ["Unknown."]})
    if client_id is None:
        client_id = uuid.uuid4().hex
    elif not CLIENT_ID_RE.match(client_id):
        raise ValidationFailed(
            "client_id must be 1 to 64 letters, digits or ._:-",
            fields={"client_id": ["1 to 64 letters, digits or ._:-"]},
        )
    return _Draft(
        author=author,
        content=content,
        type=type,
        title=title,
        payload=payload or {},
        attachment_urls=list(attachment_urls),
        client_id=client_id,
    )


def _attach(message: Message, attachments: Sequence[Attachment]) -> None:
    ids = [a.pk for a in attachments]
    taken = Attachment.objects.filter(pk__in=ids, message=None).update(message=message)
    if taken != len(ids):  # used by a concurrent message of the same uploader
        raise ValidationFailed(
            "An attachment was already used.", fields={"attachments": ["Already used."]}
        )


def post_system_message(
    *, room: Room, content: str, payload: dict[str, Any] | None = None
) -> Message:
    """A stored notice (membership, rename, archive). The caller holds the room lock."""
    position = advance_position(room, new_message=True)
    message = Message.objects.create(
        room=room,
        seq=position,
        pos=position,
        sender=None,
        type=Message.Type.SYSTEM,
        content=content,
        payload=payload or {},
        client_id=uuid.uuid4().hex,
    )
    events.broadcast_room_event(room.pk, events.message_event(message))
    return message


def post_message_from_input(*, room: Room, author: User, data: Any) -> tuple[Message, bool]:
    """Validate client input (a REST body or a socket frame) and post it.

    REST and WebSocket share this (and `post_batch`), so both accept and refuse exactly
    the same input. The caller has checked that `author` may post in `room`.
    """
    check_send_rate(user=author)
    return _post_fields(room=room, author=author, fields=_input_fields(data))


_PLAIN_KEYS = frozenset(("content", "client_id"))


def _input_fields(data: Any) -> dict[str, Any]:
    """`MessageCreateSerializer`'s validated data. The common post (text, maybe a
    client_id) is checked here without DRF, which deep-copies its fields for every
    instance; anything else, and anything DRF would refuse, goes through DRF."""
    plain = _plain_input(data)
    if plain is not None:
        return plain
    from messaging.serializers import MessageCreateSerializer

    serializer = MessageCreateSerializer(data=data)
    if not serializer.is_valid():
        raise validation_failed(serializer.errors)
    return dict(serializer.validated_data)


def _plain_input(data: Any) -> dict[str, Any] | None:
    if not isinstance(data, dict) or not data.keys() <= _PLAIN_KEYS:
        return None
    content = data.get("content", "")
    client_id = data.get("client_id")
    if not isinstance(content, str) or _FORBIDDEN_CHARS.search(content):
        return None
    if client_id is not None and not (isinstance(client_id, str) and CLIENT_ID_RE.match(client_id)):
        return None  # DRF's answer (blank, too long, trimmed) and ours must not differ
    fields: dict[str, Any] = {
        "content": content,
        "type": Message.Type.TEXT,
        "payload": {},
        "attachment_urls": [],
        "attachments": [],
    }
    if "client_id" in data:
        fields["client_id"] = client_id
    return fields


def _post_fields(*, room: Room, author: User, fields: dict[str, Any]) -> tuple[Message, bool]:
    """Post validated input: look up its attachments and the message it replies to."""
    from messaging.selectors import get_message_in_room

    fields = dict(fields)
    attachment_ids = fields.pop("attachments", None) or []
    if attachment_ids:
        from messaging.attachments import attachments_for_message

        fields["attachments"] = attachments_for_message(uploader=author, ids=attachment_ids)
    reply_to_id = fields.pop("reply_to", None)
    reply_to = None
    if reply_to_id is not None:
        try:
            reply_to = get_message_in_room(room=room, message_id=reply_to_id)
        except ChatError:
            raise ValidationFailed(
                "reply_to must be a message of the same room.",
                fields={"reply_to": ["Not a message of this room."]},
            ) from None
    return post_message(room=room, author=author, reply_to=reply_to, **fields)


# ------------------------------------------------------------------- group commit

Outcome = dict[str, Any] | ChatError


def post_batch(*, room_id: int, posts: Sequence[tuple[User, Any]]) -> list[Outcome]:
    """Group commit: posts to one room that arrived together (over sockets), stored with
    one room lock, one lookup of retries, one position update and one insert, then
    broadcast in order.

    Each post gets what `post_message_from_input` would have answered it alone, after
    the checks of `rooms.selectors.get_room_for_member`: its message (as the API shows
    it), or its error; one post's error is not another's. Posts with attachments or a
    reply are stored one by one after the batch. An error of the database raises.
    """
    outcomes: list[Outcome | None] = [None] * len(posts)
    checked: dict[int, dict[str, Any]] = {}
    try:
        with transaction.atomic():
            room = _lock_room_for_posts(room_id, posts, outcomes)
            for i, (author, data) in enumerate(posts):
                if outcomes[i] is None:
                    try:
                        check_send_rate(user=author)
                        checked[i] = _input_fields(data)
                    except ChatError as exc:
                        outcomes[i] = exc
            if room is not None:
                _store_batch(room, posts, checked, outcomes)
    except IntegrityError:
        # A concurrent post with one of these client_ids (the same sender, into another
        # room's lock) committed first: store them one by one, each with its answer.
        for i in checked:
            outcomes[i] = None
    for i, fields in checked.items():  # files, replies, and the retries above
        if outcomes[i] is None:
            try:
                outcomes[i] = _post_checked(room_id, posts[i][0], fields)
            except ChatError as exc:
                outcomes[i] = exc
    return outcomes  # type: ignore[return-value]  (every post has its outcome now)


def _lock_room_for_posts(
    room_id: int, posts: Sequence[tuple[User, Any]], outcomes: list[Outcome | None]
) -> Room | None:
    """Lock the room; refuse the posts whose authors may not post in it."""
    from rooms.models import Membership
    from rooms.selectors import RoomNotFound

    try:
        room = lock_room(room_id)
    except Room.DoesNotExist:
        outcomes[:] = [RoomNotFound() for _ in posts]
        return None
    authors = {author.pk for author, _ in posts}
    members = set(
        Membership.objects.filter(room=room, user_id__in=authors).values_list("user_id", flat=True)
    )
    for i, (author, _) in enumerate(posts):
        if author.pk in members or author.is_staff:
            continue
        if room.kind == Room.Kind.PUBLIC:
            outcomes[i] = Forbidden("Join the room first.")
        else:
            outcomes[i] = RoomNotFound()
    return room


def _store_batch(
    room: Room,
    posts: Sequence[tuple[User, Any]],
    checked: dict[int, dict[str, Any]],
    outcomes: list[Outcome | None],
) -> None:
    """Store the plain posts of a batch; leave those with files or a reply for later."""
    from messaging.serializers import message_data

    drafts: dict[int, _Draft] = {}
    for i, fields in checked.items():
        if fields.get("attachments") or fields.get("reply_to") is not None:
            continue
        try:
            drafts[i] = _draft(author=posts[i][0], **_draft_fields(fields))
        except ChatError as exc:
            outcomes[i] = exc
    if not drafts:
        return
    earlier = _retries_of(drafts.values())
    first_of: dict[tuple[int, str], int] = {}
    fresh: list[tuple[int, _Draft]] = []
    copies: list[tuple[int, int]] = []
    for i, draft in drafts.items():
        key = (draft.author.pk, draft.client_id)
        existing = earlier.get(key)
        if existing is not None:
            outcomes[i] = (
                message_data(existing)
                if existing.room_id == room.pk
                else ValidationFailed(
                    "client_id was already used for a message in another room.",
                    fields={"client_id": ["Already used in another room."]},
                )
            )
        elif key in first_of:  # the same post twice in one batch: one message
            copies.append((i, first_of[key]))
        elif room.is_archived:
            outcomes[i] = Forbidden("This room is archived and read-only.")
        else:
            first_of[key] = i
            fresh.append((i, draft))
    if fresh:
        last = advance_position(room, new_message=True, count=len(fresh))
        first = last - len(fresh) + 1
        messages = [draft.message(room, first + k) for k, (_, draft) in enumerate(fresh)]
        Message.objects.bulk_create(messages)
        for (i, _), message in zip(fresh, messages, strict=True):
            event = events.message_event(message)
            events.broadcast_room_event(room.pk, event)
            outcomes[i] = event["message"]
        metrics.MESSAGES_STORED.inc(len(fresh))
    for i, j in copies:
        outcomes[i] = outcomes[j]


def _draft_fields(fields: dict[str, Any]) -> dict[str, Any]:
    return {
        "content": fields.get("content", ""),
        "type": fields.get("type", Message.Type.TEXT),
        "title": fields.get("title"),
        "payload": fields.get("payload"),
        "attachment_urls": fields.get("attachment_urls", ()),
        "client_id": fields.get("client_id"),
    }


def _retries_of(drafts: Iterable[_Draft]) -> dict[tuple[int, str], Message]:
    """Messages already stored under these (sender, client_id) pairs, in one query."""
    wanted = {(d.author.pk, d.client_id) for d in drafts}
    found = Message.objects.select_related("sender").filter(
        sender_id__in={sender for sender, _ in wanted},
        client_id__in={client_id for _, client_id in wanted},
    )
    return {(m.sender_id, m.client_id): m for m in found if (m.sender_id, m.client_id) in wanted}


def _post_checked(room_id: int, author: User, fields: dict[str, Any]) -> dict[str, Any]:
    """One post of a batch, alone (its rate and input were checked)."""
    from messaging.serializers import message_data
    from rooms.selectors import get_room_for_member

    room, _ = get_room_for_member(room_id=room_id, user=author)
    message, _ = _post_fields(room=room, author=author, fields=fields)
    return message_data(message)


def check_send_rate(*, user: User) -> None:
    """CHAT_RATE_LIMIT: one budget per user over all their sockets, HTTP and processes."""
    count, window = settings.CHAT_RATE_LIMIT
    allowed, retry_after = throttle.hit(f"send:{user.pk}", limit=count, window=window)
    if not allowed:
        metrics.RATE_LIMITED.labels(limit="chat").inc()
        raise RateLimited(
            f"At most {count} messages per {window} s; try again in {retry_after} s.",
            retry_after=retry_after,
        )


def validation_failed(errors: dict[str, Any]) -> ValidationFailed:
    """Turn a serializer's errors into our error, keeping DRF's field shape."""
    field, messages = next(iter(errors.items()))
    first = messages[0] if isinstance(messages, list) and messages else messages
    while isinstance(first, dict):  # nested (list items): take the first leaf
        first = next(iter(first.values()))
        first = first[0] if isinstance(first, list) and first else first
    return ValidationFailed(f"{field}: {first}", fields=dict(errors))


# ------------------------------------------------------------ changes to a message


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
        message.content = content
        message.edited_at = timezone.now()
        message.pos = advance_position(room)
        message.save(update_fields=["content", "edited_at", "pos"])
        events.broadcast_room_event(room.pk, events.message_event(message, "message_updated"))
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
        message.deleted = True
        message.deleted_at = timezone.now()
        message.pos = advance_position(room)
        message.save(update_fields=["deleted", "deleted_at", "pos"])
        events.broadcast_room_event(room.pk, events.message_deleted_event(message))
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
        events.broadcast_room_event(room.pk, events.message_event(message, "message_updated"))
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
        _reaction_changed(room, message, user, emoji, "reaction_removed")
    return True


def _reaction_changed(room: Room, message: Message, user: User, emoji: str, kind: str) -> None:
    message.pos = advance_position(room)
    message.save(update_fields=["pos"])
    events.broadcast_room_event(
        room.pk,
        {
            "type": kind,
            "room": room.pk,
            "pos": message.pos,
            "message_id": message.pk,
            "emoji": emoji,
            "user_id": user.pk,
        },
    )
