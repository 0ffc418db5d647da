"""Who a message mentions, and its rendering (SPEC 11): the room's side of
`messaging.rendering`, for `messaging.stream.append` and `messaging.changes.edit_message`.

`@username` mentions a member of the room (any case); `@here`, the members online when
the message is stored (not its sender); `@room`, every member (a flag on the message,
counted by `rooms.selectors.mention_count`, no row per member). Each user mentioned by
name or by `@here` gets a `Mention` row (not the sender), what `mention_count` counts.

The writer stores up to a hundred posts in one transaction (`messaging.writer`): the
names of a whole batch are looked up with one query, and only for text with an `@`.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from django.db.models.functions import Lower

from accounts.presence import online_user_ids
from messaging.models import Mention, Message
from messaging.rendering import mention_candidates, render
from rooms.models import Membership


@dataclass(frozen=True, slots=True)
class Shown:
    """A message's rendering in its room: what `Message` stores."""

    html: str
    mentions: list[int]
    mentions_room: bool


def render_in_room(
    room_id: int, contents: Sequence[str], senders: Sequence[int | None], *, here: bool = True
) -> list[Shown]:
    """Render messages of one room (`senders[i]` wrote `contents[i]`; None: a notice),
    with one query for every name they mention, and one presence lookup when any says
    `@here` (not with `here=False`: who was online then is not known now)."""
    names: set[str] = set()
    for content in contents:
        names |= mention_candidates(content)
    mentionable = members_named(room_id, names) if names else {}
    shown: list[Shown] = []
    online: set[int] | None = None
    for content, sender in zip(contents, senders, strict=True):
        rendered = render(content, mentionable=mentionable)
        mentions = rendered.mentions
        if rendered.mentions_here and here:
            if online is None:
                online = online_members(room_id)
            mentions = mentions + sorted(online - {sender} - set(mentions))
        shown.append(Shown(rendered.html, mentions, rendered.mentions_room))
    return shown


def members_named(room_id: int, names: set[str]) -> dict[str, int]:
    """`{lower-case username: user id}` of the room's members among `names`."""
    rows = (
        Membership.objects.filter(room_id=room_id)
        .annotate(name=Lower("user__username"))
        .filter(name__in=names)
        .values_list("name", "user_id")
    )
    return dict(rows)


def online_members(room_id: int) -> set[int]:
    """The room's members with an open socket now, on any process."""
    members = Membership.objects.filter(room_id=room_id).values_list("user_id", flat=True)
    return online_user_ids(list(members))


def apply(message: Message, shown: Shown) -> None:
    message.content_html = shown.html
    message.mentions = shown.mentions
    message.mentions_room = shown.mentions_room


def mention_rows(messages: Sequence[Message]) -> list[Mention]:
    """The `Mention` rows of stored messages (their ids set): one per user mentioned by
    name or `@here`, not the sender."""
    return [
        Mention(message=message, user_id=user_id, room_id=message.room_id, seq=message.seq)
        for message in messages
        for user_id in dict.fromkeys(message.mentions)
        if user_id != message.sender_id
    ]


def store_mentions(messages: Sequence[Message]) -> None:
    rows = mention_rows(messages)
    if rows:
        Mention.objects.bulk_create(rows)


def replace_mentions(message: Message) -> None:
    """After an edit: the message's rows are the new text's."""
    Mention.objects.filter(message=message).delete()
    store_mentions([message])
