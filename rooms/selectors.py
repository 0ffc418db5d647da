"""Reads of rooms and the access rules, shared by the REST views and the consumer.

A private or direct room the user may not see raises `RoomNotFound` (404), never
`Forbidden`, so its existence and its name never leak.
"""

from collections import Counter
from collections.abc import Iterable
from typing import Any

from django.db.models import (
    BooleanField,
    Count,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce

from accounts.models import User
from accounts.selectors import online_user_ids
from chatproject.errors import ChatError, Forbidden, NotFound
from messaging.models import Mention, Message  # unread and mention counts (see pyproject)
from rooms.models import Membership, Room


class RoomNotFound(NotFound):
    default_message = "No such room."


def visible_rooms(*, user: User) -> QuerySet[Room]:
    """Public rooms and the rooms the user belongs to (staff see every room; guests,
    public rooms only)."""
    if user.is_staff:
        return Room.objects.all()
    if user.is_guest:
        return Room.objects.filter(kind=Room.Kind.PUBLIC)
    return Room.objects.filter(Q(kind=Room.Kind.PUBLIC) | Q(memberships__user=user)).distinct()


def get_visible_room(*, room_id: object, user: User) -> Room:
    try:
        pk = int(room_id)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise RoomNotFound() from None
    if not 0 < pk < 2**63:  # no such id; SQLite would fail the query (OverflowError)
        raise RoomNotFound()
    room = Room.objects.filter(pk=pk).first()
    if room is None or not can_see(room=room, user=user):
        raise RoomNotFound()
    return room


def can_see(*, room: Room, user: User, member: bool | None = None) -> bool:
    """The access rule. `member`: whether the user is a member of the room, when the
    caller already knows (a batch of rooms); else it is asked, only if it matters."""
    if room.kind == Room.Kind.PUBLIC or user.is_staff:
        return True
    if user.is_guest:  # guests use public rooms only, even when invited (SPEC 9.3)
        return False
    if member is None:
        member = Membership.objects.filter(room=room, user=user).exists()
    return member


def get_membership(*, room: Room, user: User) -> Membership | None:
    # `get`, not `first()`: no ORDER BY id, which PostgreSQL may answer by walking the
    # primary key index instead of the (room, user) unique index.
    try:
        return Membership.objects.get(room=room, user=user)
    except Membership.DoesNotExist:
        return None


def posting_refusal(*, room: Room, user: User, is_member: bool) -> ChatError | None:
    """Why `user` may not post in (or otherwise act as a member of) `room`; None when they
    may. The rule, for every caller: members and staff may; an outsider of a public room
    must join first; a private or direct room stays invisible to outsiders (404); guests
    may use public rooms only (SPEC 9.3), even a private room they were invited to."""
    if user.is_guest and room.kind != Room.Kind.PUBLIC:
        return Forbidden("Guests may post in public rooms only.")
    if is_member or user.is_staff:
        return None
    if room.kind == Room.Kind.PUBLIC:
        return Forbidden("Join the room first.")
    return RoomNotFound()


def member_ids(*, room: Room, user_ids: Iterable[int]) -> set[int]:
    """Which of these users are members of the room, in one query."""
    members = Membership.objects.filter(room=room, user_id__in=set(user_ids))
    return set(members.values_list("user_id", flat=True))


def get_room_for_member(*, room_id: object, user: User) -> tuple[Room, Membership | None]:
    """A room the user may post in (`posting_refusal`). Raises RoomNotFound / Forbidden."""
    room = get_visible_room(room_id=room_id, user=user)
    membership = get_membership(room=room, user=user)
    refusal = posting_refusal(room=room, user=user, is_member=membership is not None)
    if refusal is not None:
        raise refusal
    return room, membership


def get_room_for_manager(*, room_id: object, user: User) -> tuple[Room, Membership | None]:
    """A room the user may manage: its owner or an admin of it, or staff."""
    room = get_visible_room(room_id=room_id, user=user)
    membership = get_membership(room=room, user=user)
    if not user.is_staff and (membership is None or not membership.can_manage):
        raise Forbidden("Only the room's owner or admins may do this.")
    return room, membership


def rooms_for_listing(*, user: User, base: QuerySet[Room] | None = None) -> QuerySet[Room]:
    """Rooms annotated with member_count, my_role, muted, unread_count and
    mention_count, in one query."""
    mine = Membership.objects.filter(room=OuterRef("pk"), user=user)
    unread = (
        Message.objects.filter(room=OuterRef("pk"), seq__gt=OuterRef("my_last_read"))
        .exclude(sender=user)
        .exclude(type=Message.Type.SYSTEM)
        .filter(deleted=False)
        .order_by()
        .values("room")
        .annotate(n=Count("pk"))
        .values("n")
    )
    rooms = base if base is not None else visible_rooms(user=user)
    return rooms.select_related("created_by").annotate(
        member_count=Coalesce(
            Subquery(
                Membership.objects.filter(room=OuterRef("pk"))
                .order_by()
                .values("room")
                .annotate(n=Count("pk"))
                .values("n"),
                output_field=IntegerField(),
            ),
            Value(0),
        ),
        my_role=Subquery(mine.values("role")[:1]),
        my_last_read=Subquery(mine.values("last_read_pos")[:1]),
        unread_count=Coalesce(Subquery(unread, output_field=IntegerField()), Value(0)),
        muted=Coalesce(
            Subquery(mine.values("muted")[:1], output_field=BooleanField()), Value(False)
        ),
        mention_count=Coalesce(
            _counted(_mentions_after(OuterRef("pk"), user.pk, OuterRef("my_last_read"))),
            Value(0),
        )
        + Coalesce(
            _counted(_room_mentions_after(OuterRef("pk"), user.pk, OuterRef("my_last_read"))),
            Value(0),
        ),
        # The other member of a direct room (for its name and presence dot).
        peer_id=Subquery(
            Membership.objects.filter(room=OuterRef("pk"))
            .exclude(user=user)
            .filter(room__kind=Room.Kind.DIRECT)
            .values("user_id")[:1]
        ),
    )


def room_online_counts(*, room_ids: Iterable[int]) -> dict[int, int]:
    """How many members of each room are online, with one query and one presence lookup."""
    room_ids = list(room_ids)
    pairs = list(Membership.objects.filter(room_id__in=room_ids).values_list("room_id", "user_id"))
    online = online_user_ids({user_id for _, user_id in pairs})
    return dict(Counter(room_id for room_id, user_id in pairs if user_id in online))


def room_member_ids(*, room_id: int) -> list[int]:
    return list(Membership.objects.filter(room_id=room_id).values_list("user_id", flat=True))


def user_room_ids(*, user_id: int) -> list[int]:
    return list(Membership.objects.filter(user_id=user_id).values_list("room_id", flat=True))


def unread_count(*, membership: Membership) -> int:
    return (
        Message.objects.filter(room_id=membership.room_id, seq__gt=membership.last_read_pos)
        .exclude(sender_id=membership.user_id)
        .exclude(type=Message.Type.SYSTEM)
        .filter(deleted=False)
        .count()
    )


def mention_count(*, membership: Membership) -> int:
    """Mentions of the member after their read marker: the messages that name them or
    said `@here` while they were online (`Mention` rows), and the `@room` messages of
    others, not deleted."""
    room_id, user_id, after = membership.room_id, membership.user_id, membership.last_read_pos
    return (
        _mentions_after(room_id, user_id, after).count()
        + _room_mentions_after(room_id, user_id, after).count()
    )


def _mentions_after(room_id: Any, user_id: int, after: Any) -> QuerySet[Mention]:
    """The user's Mention rows in the room after `after` (the index on (user, room,
    seq)), of messages not deleted. `room_id` and `after` may be `OuterRef`s."""
    return Mention.objects.filter(
        user_id=user_id, room_id=room_id, seq__gt=after, message__deleted=False
    )


def _room_mentions_after(room_id: Any, user_id: int, after: Any) -> QuerySet[Message]:
    """The room's `@room` messages after `after`, not the user's own, not deleted."""
    return Message.objects.filter(
        room_id=room_id, seq__gt=after, mentions_room=True, deleted=False
    ).exclude(sender_id=user_id)


def _counted(rows: QuerySet[Any]) -> Subquery:
    """A subquery of how many `rows` there are (per room: they are of one room)."""
    counted = rows.order_by().values("room").annotate(n=Count("pk")).values("n")
    return Subquery(counted, output_field=IntegerField())


def can_moderate(*, room: Room, user: User) -> bool:
    """Owners and admins of the room, and staff."""
    if user.is_staff:
        return True
    role = Membership.objects.filter(room=room, user=user).values_list("role", flat=True).first()
    return role in (Membership.Role.OWNER, Membership.Role.ADMIN)
