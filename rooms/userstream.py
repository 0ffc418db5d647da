"""The user's own stream (SPEC 12): changes that concern a user rather than one room's
history.

Each user has a position (`User.stream_pos`). Being added to or removed from a room, a
room of theirs renamed, archived or deleted, their role or mute changed, their read
marker moved: each advances the position of every user it concerns, in the transaction
of the change, under a lock on those users' rows (taken in id order, after the room's:
so concurrent changes commit in position order and never deadlock). The frame is stored
(`UserChange`) and sent after the commit to every socket of the user; a socket that
connects with `after_user=N` is sent the stored frames after N first (`changes_after`).

A read marker supersedes the previous one of the same room: only the latest is kept, so a
user's stream holds about one row per room plus the membership changes.
"""

from collections.abc import Callable, Iterable

from django.db import transaction
from django.db.models import F

from accounts.models import User
from chatproject import events
from chatproject.broadcast import broadcast_user_event
from rooms import selectors
from rooms.models import Membership, Room, UserChange

REPLAY_BATCH = 200

Build = Callable[[int], events.UserStreamFrame]  # a user's position -> the frame


def _record(user_ids: Iterable[int], build: Build, *, room_id: int | None) -> None:
    """Advance each user's position, store the frame built for it and send it after the
    commit. Runs in the caller's transaction (or its own)."""
    ids = sorted(set(user_ids))
    if not ids:
        return
    with transaction.atomic():
        # Lock in id order first (PostgreSQL); SQLite's write lock is the transaction's.
        list(User.objects.select_for_update().filter(pk__in=ids).order_by("pk").values("pk"))
        User.objects.filter(pk__in=ids).update(stream_pos=F("stream_pos") + 1)
        positions = dict(User.objects.filter(pk__in=ids).values_list("pk", "stream_pos"))
        changes = []
        for user_id, pos in positions.items():
            frame = build(pos)
            changes.append(UserChange(user_id=user_id, pos=pos, room_id=room_id, frame=frame))
            broadcast_user_event(user_id, frame)
        UserChange.objects.bulk_create(changes)


def room_added(*, room_id: int, user_ids: Iterable[int]) -> None:
    _record(user_ids, lambda pos: events.room_added(room_id, user_pos=pos), room_id=room_id)


def room_removed(*, room_id: int, user_id: int) -> None:
    _record([user_id], lambda pos: events.room_removed(room_id, user_pos=pos), room_id=room_id)


def room_updated(room: Room) -> None:
    """The room's name, description or archived state changed: tell every member."""
    _record(
        selectors.room_member_ids(room_id=room.pk),
        lambda pos: events.room_updated(
            room.pk,
            name=room.name,
            description=room.description,
            is_archived=room.is_archived,
            user_pos=pos,
        ),
        room_id=room.pk,
    )


def room_deleted(*, room_id: int, member_ids: Iterable[int]) -> None:
    """The room is gone: `member_ids` were read before it was deleted."""
    _record(member_ids, lambda pos: events.room_deleted(room_id, user_pos=pos), room_id=room_id)


def membership_changed(membership: Membership) -> None:
    """The member's role or mute changed."""
    _record(
        [membership.user_id],
        lambda pos: events.membership_changed(
            membership.room_id, role=str(membership.role), muted=membership.muted, user_pos=pos
        ),
        room_id=membership.room_id,
    )


def room_read(membership: Membership) -> None:
    """The member's read marker moved; the earlier marker of the room is superseded."""
    room_id = membership.room_id
    with transaction.atomic():
        UserChange.objects.filter(
            user_id=membership.user_id, room_id=room_id, frame__type="room_read"
        ).delete()
        _record(
            [membership.user_id],
            lambda pos: events.room_read(
                room_id,
                last_read_seq=membership.last_read_pos,
                unread_count=selectors.unread_count(membership=membership),
                mention_count=selectors.mention_count(membership=membership),
                user_pos=pos,
            ),
            room_id=room_id,
        )


def position(*, user_id: int) -> int:
    return User.objects.filter(pk=user_id).values_list("stream_pos", flat=True).first() or 0


def changes_after(
    *, user_id: int, after: int, limit: int = REPLAY_BATCH
) -> tuple[list[events.UserStreamFrame], bool]:
    """The user's stored changes after position `after`, in order (at most `limit`), and
    whether there are more."""
    frames = list(
        UserChange.objects.filter(user_id=user_id, pos__gt=after)
        .order_by("pos")
        .values_list("frame", flat=True)[: limit + 1]
    )
    return frames[:limit], len(frames) > limit
