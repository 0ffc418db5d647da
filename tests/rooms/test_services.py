"""Room services: what they store and what they broadcast once their transaction commits."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.db import transaction

from chatproject.errors import Forbidden, RateLimited, ValidationFailed
from messaging.models import Message
from rooms.models import Membership, Room
from rooms.services import (
    create_room,
    delete_room,
    ensure_general_room,
    get_or_create_direct_room,
    join_room,
    leave_room,
    remove_member,
    set_member,
    update_room,
)
from tests.factories import UserFactory, add_member, make_room

pytestmark = pytest.mark.django_db


Role = Membership.Role


def fresh(room: Room) -> Room:
    room.refresh_from_db()
    return room


def assert_system_message_event(sent: tuple[str, dict], room: Room, event: str) -> dict:
    """`sent` is the room's `message` event carrying a stored system message; returns it."""
    group, frame = sent
    assert group == f"room.{room.pk}"
    assert frame["type"] == "message"
    assert frame["room"] == room.pk
    message = frame["message"]
    assert message["type"] == "system"
    assert message["sender"] is None
    assert message["payload"]["event"] == event
    assert frame["pos"] == message["pos"] == message["seq"]
    assert Message.objects.get(pk=message["id"]).type == Message.Type.SYSTEM
    return message


# ------------------------------------------------------------------------ create


def test_create_room_makes_the_creator_owner_and_broadcasts_nothing(broadcasts, committing, user):
    with committing():
        room = create_room(creator=user, name="Quiet Start", description="d", kind="private")

    assert room.kind == Room.Kind.PRIVATE
    assert room.pos == 0
    assert Membership.objects.get(room=room, user=user).role == Role.OWNER
    assert broadcasts == []


def test_create_room_refuses_direct_rooms(user):
    with pytest.raises(ValidationFailed):
        create_room(creator=user, name="DM", kind=Room.Kind.DIRECT)

    assert not Room.objects.exists()


def test_create_room_refuses_a_name_taken_in_another_case(user):
    create_room(creator=user, name="Dupe")

    with pytest.raises(ValidationFailed):
        create_room(creator=user, name="dUPE")

    assert Room.objects.count() == 1


def test_create_room_gives_distinct_slugs_to_similar_names(user):
    first = create_room(creator=user, name="Café")
    second = create_room(creator=user, name="Café!")

    assert first.slug != second.slug


# -------------------------------------------------------------------------- join


def test_join_room_stores_and_broadcasts_a_system_message(broadcasts, committing, user, other_user):
    room = make_room(owner=user)

    with committing():
        membership = join_room(room=room, user=other_user)

    assert membership.role == Role.MEMBER
    room = fresh(room)
    assert room.pos == 1
    assert membership.last_read_pos == room.pos
    sent, added = broadcasts
    message = assert_system_message_event(sent, room, "member_joined")
    # The user's other devices learn of the room from the user's own stream.
    assert added == (
        f"user.{other_user.pk}",
        {"type": "room_added", "room": room.pk, "user_pos": 1},
    )
    assert message["pos"] == room.pos
    assert message["payload"]["user_id"] == other_user.pk
    assert "Bob" in message["content"]


def test_join_room_twice_broadcasts_once(broadcasts, committing, user, other_user):
    room = make_room(owner=user)

    with committing():
        join_room(room=room, user=other_user)
        join_room(room=room, user=other_user)

    assert [event["type"] for _, event in broadcasts] == ["message", "room_added"]
    assert fresh(room).pos == 1
    assert Membership.objects.filter(room=room, user=other_user).count() == 1


def test_join_room_refuses_private_rooms(broadcasts, committing, user, other_user):
    room = make_room(owner=user, kind="private")

    with committing(), pytest.raises(Forbidden):
        join_room(room=room, user=other_user)

    assert broadcasts == []
    assert not Membership.objects.filter(room=room, user=other_user).exists()


def test_a_rolled_back_join_broadcasts_nothing(broadcasts, committing, user, other_user):
    room = make_room(owner=user)

    with committing(), pytest.raises(RuntimeError), transaction.atomic():
        join_room(room=room, user=other_user)
        raise RuntimeError("the request failed after the join")

    assert broadcasts == []
    assert not Membership.objects.filter(room=room, user=other_user).exists()
    assert fresh(room).pos == 0
    assert not Message.objects.filter(room=room).exists()


# ------------------------------------------------------------------ leave/remove


def test_leave_room_broadcasts_the_notice_and_revokes_the_users_sockets(
    broadcasts, committing, user, other_user
):
    room = make_room(owner=user)
    add_member(fresh(room), other_user)

    with committing():
        leave_room(room=room, user=other_user)

    room = fresh(room)
    assert not Membership.objects.filter(room=room, user=other_user).exists()
    room_events = [frame for group, frame in broadcasts if group == f"room.{room.pk}"]
    user_events = [frame for group, frame in broadcasts if group == f"user.{other_user.pk}"]
    assert len(broadcasts) == 2
    assert_system_message_event((f"room.{room.pk}", room_events[0]), room, "member_left")
    assert user_events == [{"type": "room_removed", "room": room.pk, "user_pos": 1}]


def test_remove_member_sends_room_removed_to_the_removed_user(
    broadcasts, committing, user, other_user
):
    room = make_room(owner=user, kind="private")
    add_member(fresh(room), other_user)

    with committing():
        remove_member(room=room, actor=user, user=other_user)

    assert not Membership.objects.filter(room=room, user=other_user).exists()
    removed = {"type": "room_removed", "room": room.pk, "user_pos": 1}
    assert (f"user.{other_user.pk}", removed) in broadcasts
    [room_event] = [sent for sent in broadcasts if sent[0] == f"room.{room.pk}"]
    message = assert_system_message_event(room_event, fresh(room), "member_left")
    assert message["payload"]["by"] == user.pk


def test_last_owner_cannot_leave_and_nothing_is_broadcast(broadcasts, committing, user, other_user):
    room = make_room(owner=user)
    add_member(fresh(room), other_user)

    with committing(), pytest.raises(Forbidden):
        leave_room(room=room, user=user)

    assert broadcasts == []
    assert Membership.objects.get(room=room, user=user).role == Role.OWNER
    assert fresh(room).pos == 0


def test_leaving_a_room_one_is_not_in_changes_nothing(broadcasts, committing, user, other_user):
    room = make_room(owner=user)

    with committing():
        leave_room(room=room, user=other_user)

    assert broadcasts == []
    assert fresh(room).pos == 0


def test_admin_cannot_remove_an_admin(user, other_user):
    room = make_room(owner=user)
    add_member(fresh(room), other_user, Role.ADMIN)
    carol = UserFactory(username="carol")
    add_member(fresh(room), carol, Role.ADMIN)

    with pytest.raises(Forbidden):
        remove_member(room=room, actor=other_user, user=carol)

    assert Membership.objects.filter(room=room, user=carol).exists()


def test_admin_cannot_demote_another_admin_and_then_remove_them(user, other_user):
    room = make_room(owner=user)
    add_member(fresh(room), other_user, Role.ADMIN)
    carol = UserFactory(username="carol")
    add_member(fresh(room), carol, Role.ADMIN)

    with pytest.raises(Forbidden):
        set_member(room=room, actor=other_user, user=carol, role=Role.MEMBER)
    with pytest.raises(Forbidden):
        remove_member(room=room, actor=other_user, user=carol)

    assert Membership.objects.get(room=room, user=carol).role == Role.ADMIN


def test_an_admin_may_step_down_and_manage_members_and_an_owner_may_demote_admins(user, other_user):
    room = make_room(owner=user)
    add_member(fresh(room), other_user, Role.ADMIN)
    carol, dave = UserFactory(username="carol"), UserFactory(username="dave")
    add_member(fresh(room), carol, Role.ADMIN)
    add_member(fresh(room), dave)

    set_member(room=room, actor=other_user, user=dave, role=Role.ADMIN)  # a member: fine
    set_member(room=room, actor=other_user, user=other_user, role=Role.MEMBER)  # itself
    set_member(room=room, actor=user, user=carol, role=Role.MEMBER)  # the owner

    roles = dict(Membership.objects.filter(room=room).values_list("user_id", "role"))
    assert roles == {
        user.pk: Role.OWNER,
        other_user.pk: Role.MEMBER,
        carol.pk: Role.MEMBER,
        dave.pk: Role.ADMIN,
    }


# -------------------------------------------------------------------- set_member


def test_set_member_invites_with_a_notice(broadcasts, committing, user, other_user):
    room = make_room(owner=user, kind="private")

    with committing():
        membership = set_member(room=room, actor=user, user=other_user, role=Role.ADMIN)

    assert membership.role == Role.ADMIN
    sent, added = broadcasts
    message = assert_system_message_event(sent, fresh(room), "member_joined")
    assert message["payload"] == {"event": "member_joined", "user_id": other_user.pk, "by": user.pk}
    assert added == (
        f"user.{other_user.pk}",
        {"type": "room_added", "room": room.pk, "user_pos": 1},
    )


def test_set_member_changes_a_role_without_a_notice(broadcasts, committing, user, other_user):
    room = make_room(owner=user)
    add_member(fresh(room), other_user)

    with committing():
        set_member(room=room, actor=user, user=other_user, role=Role.OWNER)

    assert Membership.objects.get(room=room, user=other_user).role == Role.OWNER
    # No notice in the room; the member's own stream says it.
    changed = {"type": "membership_changed", "room": room.pk, "role": "owner", "muted": False}
    assert broadcasts == [(f"user.{other_user.pk}", {**changed, "user_pos": 1})]
    assert fresh(room).pos == 0


def test_the_last_owner_cannot_step_down(user):
    room = make_room(owner=user)

    with pytest.raises(Forbidden):
        set_member(room=room, actor=user, user=user, role=Role.MEMBER)

    assert Membership.objects.get(room=room, user=user).role == Role.OWNER


def test_set_member_refuses_an_unknown_role(user, other_user):
    room = make_room(owner=user)

    with pytest.raises(ValidationFailed):
        set_member(room=room, actor=user, user=other_user, role="emperor")

    assert not Membership.objects.filter(room=room, user=other_user).exists()


def test_staff_may_make_owners(user, other_user, staff_user):
    room = make_room(owner=user)

    membership = set_member(room=room, actor=staff_user, user=other_user, role=Role.OWNER)

    assert membership.role == Role.OWNER


# ------------------------------------------------------------------------ update


def test_rename_broadcasts_a_system_message_with_the_new_position(broadcasts, committing, user):
    room = make_room(owner=user, name="Before")

    with committing():
        updated = update_room(room=room, actor=user, name="After")

    assert updated.name == "After"
    assert fresh(room).name == "After"
    assert fresh(room).pos == 1
    sent, updated_event = broadcasts
    message = assert_system_message_event(sent, fresh(room), "room_renamed")
    assert message["payload"]["name"] == "After"
    assert updated_event[0] == f"user.{user.pk}"
    assert updated_event[1]["type"] == "room_updated" and updated_event[1]["name"] == "After"


def test_archive_and_unarchive_each_take_a_position(broadcasts, committing, user):
    room = make_room(owner=user)

    with committing():
        update_room(room=room, actor=user, is_archived=True)
        update_room(room=room, actor=user, is_archived=False)

    in_room = [frame for group, frame in broadcasts if group == f"room.{room.pk}"]
    assert [frame["pos"] for frame in in_room] == [1, 2]
    assert [frame["message"]["payload"]["event"] for frame in in_room] == [
        "room_archived",
        "room_unarchived",
    ]
    assert fresh(room).is_archived is False


def test_description_change_takes_no_position(broadcasts, committing, user):
    room = make_room(owner=user)

    with committing():
        update_room(room=room, actor=user, description="Now with a topic.")

    assert fresh(room).description == "Now with a topic."
    assert fresh(room).pos == 0  # no notice in the room; the members' own streams say it
    assert [(group, event["type"]) for group, event in broadcasts] == [
        (f"user.{user.pk}", "room_updated")
    ]


def test_an_update_that_changes_nothing_takes_no_position(broadcasts, committing, user):
    room = make_room(owner=user, name="Same")

    with committing():
        update_room(room=room, actor=user, name="Same", is_archived=False)

    assert fresh(room).pos == 0
    assert broadcasts == []


def test_archived_room_cannot_be_joined(user, other_user):
    room = make_room(owner=user)
    update_room(room=room, actor=user, is_archived=True)

    with pytest.raises(Forbidden):
        join_room(room=room, user=other_user)

    assert not Membership.objects.filter(room=room, user=other_user).exists()


def test_general_cannot_be_archived(general, staff_user):
    with pytest.raises(Forbidden):
        update_room(room=general, actor=staff_user, is_archived=True)

    assert fresh(general).is_archived is False


# ------------------------------------------------------------------------ delete


def test_delete_room_broadcasts_room_deleted(broadcasts, committing, user):
    room = make_room(owner=user)
    room_id = room.pk

    with committing():
        delete_room(room=room, actor=user)

    assert not Room.objects.filter(pk=room_id).exists()
    assert broadcasts == [
        (f"user.{user.pk}", {"type": "room_deleted", "room": room_id, "user_pos": 1}),
        (f"room.{room_id}", {"type": "room_deleted", "room": room_id}),
    ]


def test_general_cannot_be_deleted(broadcasts, committing, general, staff_user):
    with committing(), pytest.raises(Forbidden):
        delete_room(room=general, actor=staff_user)

    assert Room.objects.filter(pk=general.pk).exists()
    assert broadcasts == []


# ----------------------------------------------------------------------- General


def test_ensure_general_room_is_idempotent(db):
    first, created_first = ensure_general_room()
    second, created_second = ensure_general_room()

    assert (created_first, created_second) == (True, False)
    assert first.pk == second.pk
    assert first.name == "General"
    assert first.kind == Room.Kind.PUBLIC
    assert Room.objects.count() == 1


def test_general_room_has_no_owner(general):
    assert general.created_by is None
    assert not Membership.objects.filter(room=general).exists()


def test_seed_general_room_command_creates_one_room_however_often_it_runs(db):
    first, second = StringIO(), StringIO()

    call_command("seed_general_room", stdout=first)
    call_command("seed_general_room", stdout=second)

    assert Room.objects.filter(name="General").count() == 1
    assert Room.objects.count() == 1
    assert "Created" in first.getvalue()
    assert "Found" in second.getvalue()


# ------------------------------------------------------------------ write budget


@pytest.fixture
def budget_of_three(settings):
    settings.WRITE_RATE_LIMIT = (3, 60)


def test_joins_leaves_and_rooms_made_spend_one_budget_and_a_refusal_stores_nothing(
    budget_of_three, broadcasts, committing, user, other_user
):
    room = make_room(owner=user)
    before = fresh(room).pos

    with committing():
        join_room(room=room, user=other_user)
        leave_room(room=room, user=other_user)
        create_room(creator=other_user, name="Third Write")
    with pytest.raises(RateLimited) as refused, committing():
        join_room(room=room, user=other_user)
    with pytest.raises(RateLimited), committing():
        create_room(creator=other_user, name="Fourth Write")

    assert 0 < refused.value.retry_after <= 60
    assert not Membership.objects.filter(room=room, user=other_user).exists()
    assert not Room.objects.filter(name="Fourth Write").exists()
    assert fresh(room).pos == before + 2  # joined, left: nothing of the refused join
    # The two notices, room_added and room_removed; nothing after.
    assert [event["type"] for _, event in broadcasts] == [
        "message",
        "room_added",
        "message",
        "room_removed",
    ]


def test_invitations_role_changes_removals_and_renames_spend_the_actors_budget(
    settings, broadcasts, committing, user, other_user
):
    settings.WRITE_RATE_LIMIT = (4, 60)  # the room, an invitation, a role, a rename
    room = make_room(owner=user, kind="private")
    carol = UserFactory(username="carol")

    set_member(room=room, actor=user, user=other_user)
    set_member(room=room, actor=user, user=other_user, role=Role.ADMIN)
    update_room(room=room, actor=user, name="Renamed")
    broadcasts.clear()
    with pytest.raises(RateLimited), committing():
        set_member(room=room, actor=user, user=carol)  # an invitation beyond the budget
    with pytest.raises(RateLimited), committing():
        remove_member(room=room, actor=user, user=other_user)

    assert broadcasts == []  # no room_added for carol, no notice
    assert set(Membership.objects.filter(room=room).values_list("user_id", flat=True)) == {
        user.pk,
        other_user.pk,
    }
    # The budget is the actor's: the others' are whole.
    join_room(room=make_room(owner=other_user), user=carol)


def test_a_direct_room_spends_one_for_itself_and_one_for_the_other_member(
    settings, broadcasts, committing, user, other_user
):
    settings.WRITE_RATE_LIMIT = (3, 60)
    carol = UserFactory(username="carol")
    get_or_create_direct_room(user=user, other=other_user)  # two of three
    get_or_create_direct_room(user=user, other=other_user)  # there already: nothing

    with pytest.raises(RateLimited), committing():
        get_or_create_direct_room(user=user, other=carol)

    assert not Room.objects.filter(kind=Room.Kind.DIRECT, memberships__user=carol).exists()
    assert broadcasts == []  # carol's sidebar gets nothing


def test_staff_are_not_counted(budget_of_three, staff_user, user):
    room = make_room(owner=user)
    for n in range(5):
        update_room(room=room, actor=staff_user, description=f"take {n}")
        join_room(room=room, user=staff_user)
        leave_room(room=room, user=staff_user)


def test_a_users_own_join_and_leave_notices_are_stored_once_per_window(
    broadcasts, committing, user, other_user
):
    room = make_room(owner=user)

    with committing():
        for _ in range(5):
            join_room(room=room, user=other_user)
            leave_room(room=room, user=other_user)
        join_room(room=room, user=other_user)

    events = [m.payload["event"] for m in Message.objects.filter(room=room).order_by("pos")]
    assert events == ["member_joined", "member_left"]
    assert Membership.objects.filter(room=room, user=other_user).exists()
    # An invitation or a removal by someone else is always a notice of its own.
    with committing():
        remove_member(room=room, actor=user, user=other_user)
        set_member(room=room, actor=user, user=other_user)
    events = [m.payload["event"] for m in Message.objects.filter(room=room).order_by("pos")]
    assert events == ["member_joined", "member_left", "member_left", "member_joined"]
