"""The user's own stream (SPEC 12): what each change of a user's rooms stores and sends,
with `user_pos`, and what `changes_after` replays."""

import pytest

from accounts.models import User
from messaging.models import Message
from messaging.posting import post_message
from rooms import userstream
from rooms.models import Membership, UserChange
from rooms.services import (
    delete_room,
    get_or_create_direct_room,
    join_room,
    leave_room,
    mark_read,
    remove_member,
    set_member,
    update_room,
)
from tests.factories import UserFactory, add_member, make_room

pytestmark = pytest.mark.django_db

Role = Membership.Role


def stream_of(user: User) -> list[dict]:
    return list(
        UserChange.objects.filter(user=user).order_by("pos").values_list("frame", flat=True)
    )


def sent_to(broadcasts: list[tuple[str, dict]], user: User) -> list[dict]:
    return [event for group, event in broadcasts if group == f"user.{user.pk}"]


def post(room, author, content: str = "hi") -> Message:
    return post_message(room=room, author=author, content=content)[0]


def test_an_invitation_and_a_removal_advance_the_invitees_stream(
    user, other_user, broadcasts, committing
):
    room = make_room(owner=user, kind="private")
    with committing():
        set_member(room=room, actor=user, user=other_user)
    with committing():
        remove_member(room=room, actor=user, user=other_user)

    expected = [
        {"type": "room_added", "room": room.pk, "user_pos": 1},
        {"type": "room_removed", "room": room.pk, "user_pos": 2},
    ]
    assert stream_of(other_user) == expected
    assert sent_to(broadcasts, other_user) == expected
    other_user.refresh_from_db()
    assert other_user.stream_pos == 2
    assert stream_of(user) == []  # the owner's rooms did not change


def test_joining_and_leaving_on_one_device_reach_the_others(user, broadcasts, committing):
    room = make_room(owner=UserFactory())
    with committing():
        join_room(room=room, user=user)
    with committing():
        leave_room(room=room, user=user)
    assert [f["type"] for f in sent_to(broadcasts, user)] == ["room_added", "room_removed"]


def test_a_rename_and_an_archive_reach_every_member_at_their_own_position(
    user, other_user, committing, broadcasts
):
    room = make_room(owner=user)
    add_member(room, other_user)
    other_user_before = UserChange.objects.filter(user=other_user).count()
    with committing():
        update_room(room=room, actor=user, name="Renamed", description="Topic")
    with committing():
        update_room(room=room, actor=user, is_archived=True)

    for member in (user, other_user):
        changes = stream_of(member)[-2:]
        assert [c["type"] for c in changes] == ["room_updated", "room_updated"]
        assert changes[0] | {"user_pos": 0} == {
            "type": "room_updated",
            "room": room.pk,
            "name": "Renamed",
            "description": "Topic",
            "is_archived": False,
            "user_pos": 0,
        }
        assert changes[1]["is_archived"] is True
        assert changes[1]["user_pos"] == changes[0]["user_pos"] + 1
    assert UserChange.objects.filter(user=other_user).count() == other_user_before + 2


def test_nothing_changed_advances_nothing(user, committing):
    room = make_room(owner=user, name="Same")
    before = UserChange.objects.count()
    with committing():
        update_room(room=room, actor=user, name="Same")
    assert UserChange.objects.count() == before


def test_a_deleted_room_is_in_each_members_stream(user, other_user, committing, broadcasts):
    room = make_room(owner=user)
    add_member(room, other_user)
    room_id = room.pk
    with committing():
        delete_room(room=room, actor=user)
    for member in (user, other_user):
        assert stream_of(member)[-1] == {
            "type": "room_deleted",
            "room": room_id,
            "user_pos": User.objects.get(pk=member.pk).stream_pos,
        }
    # A socket that only reads the room learns it from the room, without a position.
    assert ("room." + str(room_id), {"type": "room_deleted", "room": room_id}) in broadcasts


def test_a_role_change_is_a_membership_change(user, other_user, committing):
    room = make_room(owner=user)
    add_member(room, other_user)
    with committing():
        set_member(room=room, actor=user, user=other_user, role=Role.ADMIN)
    assert stream_of(other_user)[-1] == {
        "type": "membership_changed",
        "room": room.pk,
        "role": "admin",
        "muted": False,
        "user_pos": 1,
    }


def test_a_new_direct_room_reaches_both(user, other_user, committing):
    with committing():
        room, created = get_or_create_direct_room(user=user, other=other_user)
    assert created
    for member in (user, other_user):
        assert stream_of(member) == [{"type": "room_added", "room": room.pk, "user_pos": 1}]


def test_a_read_marker_supersedes_the_previous_one_of_the_room(user, other_user, committing):
    room = make_room(owner=other_user)
    add_member(room, user)
    first, second, third = (post(room, other_user, f"m{n}") for n in range(3))
    with committing():
        mark_read(room=room, user=user, message_id=first.pk)
    with committing():
        mark_read(room=room, user=user, message_id=third.pk)
    with committing():
        mark_read(room=room, user=user, message_id=second.pk)  # backwards: no change

    reads = [c for c in stream_of(user) if c["type"] == "room_read"]
    assert reads == [
        {
            "type": "room_read",
            "room": room.pk,
            "last_read_seq": third.seq,
            "unread_count": 0,
            "mention_count": 0,
            "user_pos": 2,
        }
    ]
    assert User.objects.get(pk=user.pk).stream_pos == 2  # positions stay in order


def test_changes_after_replays_in_order_in_batches(user):
    rooms = [make_room(owner=UserFactory()) for _ in range(5)]
    for room in rooms:
        join_room(room=room, user=user)

    everything, more = userstream.changes_after(user_id=user.pk, after=0)
    assert [c["user_pos"] for c in everything] == [1, 2, 3, 4, 5]
    assert [c["room"] for c in everything] == [r.pk for r in rooms]
    assert more is False

    page, more = userstream.changes_after(user_id=user.pk, after=1, limit=2)
    assert [c["user_pos"] for c in page] == [2, 3]
    assert more is True
    assert userstream.changes_after(user_id=user.pk, after=5) == ([], False)
    assert userstream.position(user_id=user.pk) == 5
