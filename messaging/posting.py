"""Posting: who may post what, and the one way a post becomes a stored message.

Every post goes through `post_messages`, a batch of one or many posts to one room: socket
posts (grouped by `messaging.writer`), REST posts, admin announcements. For each post it
applies, in this order, the room's access rule (`rooms.selectors.posting_refusal`), the
sender's budget (`CHAT_RATE_LIMIT`, for client input), the input checks, and then, under
the room lock, idempotency by `client_id`, the archive, and the claim of uploaded files;
the posts that pass are stored together by `messaging.stream.append`. One post's error is
never another's: input is checked in full before the room is locked (ids within the
database's integers, nesting within the socket's depth limit), a post's own lookups run
in a savepoint of their own, and an insert that fails is retried post by post, so a
crafted post can fail only itself. System notices are written by the stream itself
(`post_notice`).
"""

import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import DatabaseError, DataError, IntegrityError, transaction

from accounts.models import User
from chatproject import events, throttle
from chatproject.errors import ChatError, Forbidden, Unavailable, ValidationFailed
from chatproject.logs import get_logger
from chatproject.text import FORBIDDEN_CHARS, clean_text
from messaging import stream
from messaging.attachments import attachments_for_message
from messaging.frames import MAX_DEPTH, depth
from messaging.models import Attachment, Message
from messaging.selectors import get_message_in_room
from messaging.serializers import MAX_TITLE_LENGTH, MessageCreateSerializer, message_data
from rooms.models import Room
from rooms.selectors import RoomNotFound, member_ids, posting_refusal

log = get_logger(__name__)

CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


@dataclass(slots=True)
class Posted:
    """A post's answer: its message, whether this post created it (False: a retry), and,
    when created, the message as the API shows it (serialized once, for the broadcast)."""

    message: Message
    created: bool
    data: events.MessageData | None = None

    def shown(self) -> events.MessageData:
        return self.data if self.data is not None else message_data(self.message)


Outcome = Posted | ChatError


def post_messages(
    *, room_id: int, posts: Sequence[tuple[User, Any]], from_client: bool = True
) -> list[Outcome]:
    """Store posts to one room: each gets its `Posted`, or its error. The one write path.

    `posts` are (author, data) pairs. With `from_client`, data is a client's input (a REST
    body, a socket frame without `type`, `ref` and `room`): the access rule, the budget
    and `MessageCreateSerializer`'s checks apply. Without it, data holds checked values
    (`post_message`): the caller has checked that the author may post. An error of the
    database raises.
    """
    try:
        return _post(room_id, posts, from_client=from_client, count=from_client)
    except (IntegrityError, DataError):
        # The batch's insert failed, and nothing of it was stored. Usually a concurrent
        # post with one of these client_ids (the same sender, under another room's lock)
        # committed between the lookup and the insert; else one post's values were
        # refused by the database. Store them one by one, each with its own answer. Their
        # budget was counted once, above.
        return [_alone(room_id, author, data, from_client=from_client) for author, data in posts]


def _alone(room_id: int, author: User, data: Any, *, from_client: bool) -> Outcome:
    """One post of a batch whose insert failed, stored in a transaction of its own."""
    try:
        (outcome,) = _post(room_id, [(author, data)], from_client=from_client, count=False)
    except IntegrityError:
        return _clash(room_id, author, data.get("client_id") if isinstance(data, dict) else None)
    except DataError:
        log.exception("post_refused_by_database", room_id=room_id)
        return Unavailable("The database refused this message.")
    return outcome


def _post(
    room_id: int, posts: Sequence[tuple[User, Any]], *, from_client: bool, count: bool
) -> list[Outcome]:
    outcomes: list[Outcome | None] = [None] * len(posts)
    # Client input is parsed before the room is locked (DRF's checks are CPU, not data);
    # its error is answered in its turn, after the access rule and the budget.
    parsed = [_parsed(data) for _, data in posts] if from_client else []
    with transaction.atomic():
        try:
            room = stream.lock_room(room_id)
        except Room.DoesNotExist:
            return [RoomNotFound() for _ in posts]
        members = member_ids(room=room, user_ids={a.pk for a, _ in posts}) if from_client else ()
        drafts: dict[int, stream.Draft] = {}
        for i, (author, data) in enumerate(posts):
            try:
                if from_client:
                    refusal = posting_refusal(
                        room=room, user=author, is_member=author.pk in members
                    )
                    if refusal is not None:
                        raise refusal
                    if count:
                        check_send_rate(user=author)
                    fields = parsed[i]
                    if isinstance(fields, ChatError):
                        raise fields
                    files, reply_to = _referenced_alone(room=room, author=author, fields=fields)
                else:
                    fields, files, reply_to = data, data["attachments"], data["reply_to"]
                drafts[i] = _draft(
                    room=room, author=author, fields=fields, files=files, reply_to=reply_to
                )
            except ChatError as exc:
                outcomes[i] = exc
        for i, outcome in _store(room, drafts).items():
            outcomes[i] = outcome
    answered: list[Outcome] = []
    for answer in outcomes:
        assert answer is not None  # every post has its answer now
        answered.append(answer)
    return answered


def _store(room: Room, drafts: dict[int, stream.Draft]) -> dict[int, Outcome]:
    """Under the room lock: idempotency, the archive and the files' claim, then one
    `stream.append` for the new posts."""
    outcomes: dict[int, Outcome] = {}
    earlier = _retries_of(drafts.values())
    free = _free_files(drafts.values())
    first_of: dict[tuple[int, str], int] = {}
    fresh: list[tuple[int, stream.Draft]] = []
    copies: list[tuple[int, int]] = []
    for i, draft in drafts.items():
        assert draft.author is not None
        key = (draft.author.pk, draft.client_id)
        existing = earlier.get(key)
        if existing is not None:
            outcomes[i] = (
                Posted(existing, created=False)
                if existing.room_id == room.pk
                else _used_elsewhere()
            )
        elif key in first_of:  # the same post twice in one batch: one message
            copies.append((i, first_of[key]))
        elif room.is_archived:
            outcomes[i] = Forbidden("This room is archived and read-only.")
        elif not _claim(draft.files, free):
            outcomes[i] = ValidationFailed(
                "An attachment was already used.", fields={"attachments": ["Already used."]}
            )
        else:
            first_of[key] = i
            fresh.append((i, draft))
    appended = stream.append(room, [draft for _, draft in fresh])
    for (i, _), (message, frame) in zip(fresh, appended, strict=True):
        outcomes[i] = Posted(message, created=True, data=frame["message"])
    for i, j in copies:
        first = outcomes[j]
        if isinstance(first, Posted):
            first = Posted(first.message, created=False, data=first.data)
        outcomes[i] = first
    return outcomes


def _clash(room_id: int, author: User, client_id: object) -> Outcome:
    """The answer to a post whose insert met the same sender's `client_id`."""
    try:  # `get`: the (sender, client_id) unique index, no ORDER BY id
        existing = Message.objects.select_related("sender").get(sender=author, client_id=client_id)
    except Message.DoesNotExist:  # not a client_id clash after all (a reply_to just deleted?)
        log.warning("post_not_stored", room_id=room_id)
        return Unavailable()
    if existing.room_id == room_id:
        return Posted(existing, created=False)
    return _used_elsewhere()


def _used_elsewhere() -> ValidationFailed:
    return ValidationFailed(
        "client_id was already used for a message in another room.",
        fields={"client_id": ["Already used in another room."]},
    )


def _retries_of(drafts: Iterable[stream.Draft]) -> dict[tuple[int, str], Message]:
    """Messages already stored under these (sender, client_id) pairs, in one query."""
    wanted: set[tuple[int, str]] = {(d.author.pk, d.client_id) for d in drafts if d.author}
    found = Message.objects.select_related("sender").filter(
        sender_id__in={sender for sender, _ in wanted},
        client_id__in={client_id for _, client_id in wanted},
    )
    return {
        (m.sender_id, m.client_id): m
        for m in found
        if m.sender_id is not None and (m.sender_id, m.client_id) in wanted
    }


def _free_files(drafts: Iterable[stream.Draft]) -> set[int]:
    """The drafts' uploads that no message uses yet, locked until the commit: a concurrent
    post of the same upload (into another room) waits, then finds it taken."""
    ids = {attachment.pk for draft in drafts for attachment in draft.files}
    if not ids:
        return set()
    free = Attachment.objects.select_for_update().filter(pk__in=ids, message=None)
    return set(free.values_list("pk", flat=True))


def _claim(files: Sequence[Attachment], free: set[int]) -> bool:
    """Take a post's uploads from `free`, all or none."""
    ids = {attachment.pk for attachment in files}
    if not ids <= free:
        return False
    free -= ids
    return True


# ---------------------------------------------------------------- one post, checked


def _referenced_alone(
    *, room: Room, author: User, fields: dict[str, Any]
) -> tuple[list[Attachment], Message | None]:
    """`_referenced`, in a savepoint when the post names anything: a database error of
    one post's lookups (on PostgreSQL it would abort the whole transaction) answers that
    post `unavailable` and leaves the others of its batch alone. The caller holds the
    room lock in a transaction."""
    if not fields.get("attachments") and fields.get("reply_to") is None:
        return [], None  # the common post: no lookup, no savepoint
    try:
        with transaction.atomic():
            return _referenced(room=room, author=author, fields=fields)
    except (DatabaseError, OverflowError):  # OverflowError: SQLite's, for an id over 2**63
        log.exception("post_lookup_failed", room_id=room.pk)
        raise Unavailable() from None


def _referenced(
    *, room: Room, author: User, fields: dict[str, Any]
) -> tuple[list[Attachment], Message | None]:
    """The uploads and the message that a client's post names by id."""
    files: list[Attachment] = []
    if fields.get("attachments"):
        files = attachments_for_message(uploader=author, ids=fields["attachments"])
    reply_to = None
    if fields.get("reply_to") is not None:
        try:
            reply_to = get_message_in_room(room=room, message_id=fields["reply_to"])
        except ChatError:
            raise _not_in_room() from None
    return files, reply_to


def _not_in_room() -> ValidationFailed:
    return ValidationFailed(
        "reply_to must be a message of the same room.",
        fields={"reply_to": ["Not a message of this room."]},
    )


def _draft(
    *,
    room: Room,
    author: User,
    fields: dict[str, Any],
    files: Sequence[Attachment],
    reply_to: Message | None,
) -> stream.Draft:
    """Every check of one post's values that needs no database."""
    if reply_to is not None and reply_to.room_id != room.pk:
        raise _not_in_room()
    content = clean_text(
        fields.get("content") or "", field="content", max_length=settings.MAX_MESSAGE_LENGTH
    )
    title = fields.get("title")
    if title is not None:
        title = clean_text(title, field="title", max_length=MAX_TITLE_LENGTH) or None
    attachment_urls = list(fields.get("attachment_urls") or ())
    if not content.strip() and not attachment_urls and not files:
        raise ValidationFailed(
            "A message needs content or attachments.",
            fields={"content": ["This field may not be blank."]},
        )
    kind = fields.get("type", Message.Type.TEXT)
    if kind == Message.Type.SYSTEM:
        raise Forbidden("Nobody posts system messages.")
    if kind == Message.Type.ANNOUNCEMENT and not author.is_staff:
        raise Forbidden("Only staff may post announcements.")
    if kind not in Message.Type.values:
        raise ValidationFailed(f"Unknown message type {kind!r}.", fields={"type": ["Unknown."]})
    payload = fields.get("payload") or {}
    if depth(payload) > MAX_DEPTH - 1:  # one level below the post (or frame) holding it
        raise _too_deep()
    client_id = fields.get("client_id")
    if client_id is None:
        client_id = uuid.uuid4().hex
    elif not CLIENT_ID_RE.match(client_id):
        raise ValidationFailed(
            "client_id must be 1 to 64 letters, digits or ._:-",
            fields={"client_id": ["1 to 64 letters, digits or ._:-"]},
        )
    return stream.Draft(
        author=author,
        content=content,
        type=kind,
        client_id=client_id,
        title=title,
        payload=payload,
        attachment_urls=attachment_urls,
        reply_to=reply_to,
        files=files,
    )


_PLAIN_KEYS = frozenset(("content", "client_id"))


def _parsed(data: Any) -> dict[str, Any] | ChatError:
    try:
        return input_fields(data)
    except ChatError as exc:
        return exc


def input_fields(data: Any) -> dict[str, Any]:
    """`MessageCreateSerializer`'s validated data. The common post (text, maybe a
    client_id) is checked here without DRF, which deep-copies its fields for every
    instance; anything else, and anything DRF would refuse, goes through DRF.

    A post nests at most as deep as a socket frame may (`messaging.frames.MAX_DEPTH`):
    the same limit for REST bodies, socket frames and what the admin stores."""
    if depth(data) > MAX_DEPTH:
        raise _too_deep()
    plain = _plain_input(data)
    if plain is not None:
        return plain
    serializer = MessageCreateSerializer(data=data)
    if not serializer.is_valid():
        raise validation_failed(serializer.errors)
    return dict(serializer.validated_data)


def _too_deep() -> ValidationFailed:
    return ValidationFailed(
        f"The message is nested deeper than {MAX_DEPTH} levels.",
        fields={"payload": [f"Nested deeper than {MAX_DEPTH - 1} levels."]},
    )


def _plain_input(data: Any) -> dict[str, Any] | None:
    if not isinstance(data, dict) or not data.keys() <= _PLAIN_KEYS:
        return None
    content = data.get("content", "")
    client_id = data.get("client_id")
    if not isinstance(content, str) or FORBIDDEN_CHARS.search(content):
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


def validation_failed(errors: Any) -> ValidationFailed:
    """Turn a serializer's errors into our error, keeping DRF's field shape."""
    field, messages = next(iter(errors.items()))
    first = messages[0] if isinstance(messages, list) and messages else messages
    while isinstance(first, dict):  # nested (list items): take the first leaf
        first = next(iter(first.values()))
        first = first[0] if isinstance(first, list) and first else first
    return ValidationFailed(f"{field}: {first}", fields=dict(errors))


def check_send_rate(*, user: User) -> None:
    """CHAT_RATE_LIMIT: one budget per user over all their sockets, HTTP and processes."""
    throttle.spend(
        f"send:{user.pk}",
        rate=settings.CHAT_RATE_LIMIT,
        budget="chat",
        refusal="At most {count} messages per {window} s; try again in {retry_after} s.",
    )


# ------------------------------------------------------------------- the callers


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
    """One post from checked values (the admin's announcements, commands, tests): the
    caller has checked that `author` may post in `room`. Returns (message, created);
    raises the post's ChatError."""
    values = {
        "content": content,
        "type": type,
        "title": title,
        "payload": payload,
        "attachment_urls": list(attachment_urls),
        "attachments": list(attachments),
        "reply_to": reply_to,
        "client_id": client_id,
    }
    return _one(post_messages(room_id=room.pk, posts=[(author, values)], from_client=False))


def post_message_from_input(*, room: Room, author: User, data: Any) -> tuple[Message, bool]:
    """One post from a client's input (a REST body). Returns (message, created)."""
    return _one(post_messages(room_id=room.pk, posts=[(author, data)]))


def _one(outcomes: list[Outcome]) -> tuple[Message, bool]:
    (outcome,) = outcomes
    if isinstance(outcome, ChatError):
        raise outcome
    return outcome.message, outcome.created


def post_batch(
    *, room_id: int, posts: Sequence[tuple[User, Any]]
) -> list[events.MessageData | ChatError]:
    """Socket posts that arrived together (`messaging.writer`): each gets its message as
    the API shows it, or its error."""
    return [
        outcome.shown() if isinstance(outcome, Posted) else outcome
        for outcome in post_messages(room_id=room_id, posts=posts)
    ]
