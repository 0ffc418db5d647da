"""Reads of messages: history pages by `seq`, recovery by `pos`."""

from django.contrib.postgres.search import SearchQuery, SearchRank, SearchVector
from django.db import connection
from django.db.models import QuerySet

from accounts.models import User
from chatproject.errors import NotFound
from messaging.models import Attachment, Message
from rooms.models import Room
from rooms.selectors import can_see, visible_rooms

MAX_PAGE = 200


class MessageNotFound(NotFound):
    default_message = "No such message."


def with_details(messages: QuerySet[Message]) -> QuerySet[Message]:
    """What `MessageSerializer` reads, fetched in a constant number of queries."""
    return messages.select_related("sender").prefetch_related("files", "reaction_set")


def _messages(room: Room) -> QuerySet[Message]:
    return with_details(Message.objects.filter(room=room))


def history_page(*, room: Room, before: int | None, limit: int) -> tuple[list[Message], bool]:
    """The `limit` messages before `seq` `before` (the latest when None), oldest first."""
    messages = _messages(room)
    if before is not None:
        messages = messages.filter(seq__lt=before)
    page = list(messages.order_by("-seq")[: limit + 1])
    has_more = len(page) > limit
    return page[:limit][::-1], has_more


def around(*, room: Room, message_id: int, limit: int) -> tuple[list[Message], bool, bool]:
    """The page of history around a message of the room (the search's jump): `limit // 2`
    messages before it, it, and the rest after it, oldest first; then whether there are
    more before and after. Raises MessageNotFound."""
    target = get_message_in_room(room=room, message_id=message_id)
    wanted_before = limit // 2
    wanted_after = max(limit - wanted_before - 1, 0)
    before = list(_messages(room).filter(seq__lt=target.seq).order_by("-seq")[: wanted_before + 1])
    after = list(_messages(room).filter(seq__gt=target.seq).order_by("seq")[: wanted_after + 1])
    page = [*before[:wanted_before][::-1], target, *after[:wanted_after]]
    return page, len(before) > wanted_before, len(after) > wanted_after


def changes_after(*, room: Room, after: int, limit: int) -> tuple[list[Message], bool]:
    """Every message whose latest change has a position above `after`, in `pos` order."""
    page = list(_messages(room).filter(pos__gt=after).order_by("pos")[: limit + 1])
    return page[:limit], len(page) > limit


def get_message_in_room(*, room: Room, message_id: object) -> Message:
    try:
        return _messages(room).get(pk=int(message_id))  # type: ignore[call-overload]
    except (Message.DoesNotExist, TypeError, ValueError, OverflowError):
        raise MessageNotFound() from None


def room_position(*, room_id: int) -> int:
    return Room.objects.filter(pk=room_id).values_list("pos", flat=True).first() or 0


def get_message_for_user(*, message_id: object, user: User) -> Message:
    """A message in a room the user can see; MessageNotFound otherwise (never 403)."""
    try:
        message = with_details(Message.objects.select_related("room")).get(pk=int(message_id))  # type: ignore[call-overload]
    except (Message.DoesNotExist, TypeError, ValueError, OverflowError):
        raise MessageNotFound() from None
    if not can_see(room=message.room, user=user):
        raise MessageNotFound()
    return message


def search_messages(*, user: User, query: str, room: Room | None = None) -> QuerySet[Message]:
    """Messages matching `query` in rooms the user can read, best match first.

    PostgreSQL: full-text search (`simple` configuration, so any language works, ranked,
    served by a GIN index). SQLite: every word must appear (case-insensitive), newest first.
    """
    messages = Message.objects.filter(deleted=False).exclude(type=Message.Type.SYSTEM)
    messages = (
        messages.filter(room=room)
        if room is not None
        else messages.filter(room__in=visible_rooms(user=user).values("pk"))
    )
    if connection.vendor == "postgresql":
        vector = SearchVector("content", config="simple")
        search = SearchQuery(query, config="simple", search_type="websearch")
        ranked = (
            messages.annotate(document=vector, rank=SearchRank(vector, search))
            .filter(document=search)
            .order_by("-rank", "-pk")
        )
        return with_details(ranked)
    for word in query.split()[:10]:
        messages = messages.filter(content__icontains=word)
    return with_details(messages).order_by("-pk")


def get_attachment_for_user(*, attachment_id: object, user: User) -> Attachment:
    """An attachment the user may download: their own upload, or one in a room they can see."""
    try:
        attachment = Attachment.objects.select_related("message__room").get(pk=int(attachment_id))  # type: ignore[call-overload]
    except (Attachment.DoesNotExist, TypeError, ValueError, OverflowError):
        raise AttachmentNotFound() from None
    if attachment.message is None:
        if attachment.uploader_id != user.pk:
            raise AttachmentNotFound()
    elif attachment.message.deleted or not can_see(room=attachment.message.room, user=user):
        raise AttachmentNotFound()
    return attachment


class AttachmentNotFound(NotFound):
    default_message = "No such attachment."
