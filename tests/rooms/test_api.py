"""The rooms API: listing, creating, managing, membership, and what outsiders may see."""

import pytest

from accounts.presence import presence, user_key
from messaging.models import Message
from messaging.posting import post_message
from rooms.models import Membership, Room
from tests.conftest import client_for
from tests.factories import UserFactory, add_member, make_room

pytestmark = pytest.mark.django_db


Role = Membership.Role
ROOMS = "/api/rooms/"

# The fields SPEC.md section 3 promises for a room.
ROOM_FIELDS = {
    "id",
    "name",
    "slug",
    "description",
    "kind",
    "created_by",
    "created_at",
    "member_count",
    "online_count",
    "last_message_at",
    "unread_count",
    "is_archived",
    "my_role",
}


def room_url(room: Room, suffix: str = "") -> str:
    return f"{ROOMS}{room.pk}/{suffix}"


def fresh(room: Room) -> Room:
    room.refresh_from_db()
    return room


def system_messages(room: Room) -> list[Message]:
    return list(Message.objects.filter(room=room, type=Message.Type.SYSTEM).order_by("seq"))


def listed_names(client) -> set[str]:
    response = client.get(ROOMS)
    assert response.status_code == 200
    return {r["name"] for r in response.json()["results"]}


# -------------------------------------------------------------------------- list


def test_list_shows_public_rooms_and_my_private_rooms(alice_api, user, other_user):
    make_room(owner=other_user, name="Bob Public")
    make_room(owner=other_user, name="Bob Secret", kind="private")
    shared = make_room(owner=other_user, name="Bob Shared", kind="private")
    add_member(fresh(shared), user)
    make_room(owner=user, name="Alice Private", kind="private")

    assert listed_names(alice_api) == {"Bob Public", "Bob Shared", "Alice Private"}


def test_list_never_shows_another_users_private_room(bob_api, user, other_user):
    make_room(owner=user, name="Alice Diary", kind="private")
    carol = UserFactory(username="carol")
    other = make_room(owner=carol, name="Carol Diary", kind="private")
    add_member(fresh(other), user)

    response = bob_api.get(ROOMS)

    assert response.status_code == 200
    assert "Diary" not in response.content.decode()
    assert response.json()["results"] == []


def test_list_is_paginated_with_room_fields(alice_api, general):
    response = alice_api.get(ROOMS)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"results", "next", "previous"}
    [room] = body["results"]
    assert set(room) >= ROOM_FIELDS
    assert room["name"] == "General"
    assert room["my_role"] is None


def test_list_does_not_repeat_a_room_with_many_members(alice_api, user, other_user):
    room = make_room(owner=user, name="Busy")
    for _ in range(3):
        add_member(fresh(room), UserFactory())
    add_member(fresh(room), other_user)

    results = alice_api.get(ROOMS).json()["results"]

    assert [r["name"] for r in results] == ["Busy"]
    assert results[0]["member_count"] == 5


def test_list_takes_a_constant_number_of_queries(
    alice_api, user, other_user, django_assert_max_num_queries
):
    for n in range(30):
        room = make_room(owner=other_user, name=f"room {n:02}", kind="public")
        add_member(fresh(room), user)
        post_message(room=room, author=other_user, content=f"hello {n}")
    presence().enter(user_key(other_user.pk), "socket-1")

    with django_assert_max_num_queries(5):
        response = alice_api.get(ROOMS)

    results = response.json()["results"]
    assert len(results) == 30
    assert all(r["member_count"] == 2 for r in results)
    assert all(r["online_count"] == 1 for r in results)
    assert all(r["unread_count"] == 1 for r in results)
    assert all(r["my_role"] == "member" for r in results)


def test_a_direct_room_names_its_peer_and_general_is_flagged(
    alice_api, bob_api, user, other_user, general
):
    other_user.display_name = ""
    other_user.save(update_fields=["display_name"])
    direct = alice_api.post("/api/direct/", {"user_id": other_user.pk}, format="json").json()
    mine = alice_api.post("/api/direct/", {"user_id": user.pk}, format="json").json()
    public = make_room(owner=user, name="Plain")

    # The page labels rooms from these fields, never from the room's name.
    listed = {r["id"]: r for r in alice_api.get(ROOMS).json()["results"]}
    assert listed[direct["id"]]["peer"] == {
        "id": other_user.pk,
        "username": "bob",
        "display_name": "",
    }
    assert listed[direct["id"]]["peer_id"] == other_user.pk
    assert listed[mine["id"]]["peer"] == {
        "id": user.pk,
        "username": "alice",
        "display_name": "Alice",
    }
    assert direct["peer"] == listed[direct["id"]]["peer"]  # the detail shape is the same
    from_bob = bob_api.get(room_url(fresh(Room.objects.get(pk=direct["id"])))).json()
    assert from_bob["peer"] == {"id": user.pk, "username": "alice", "display_name": "Alice"}

    assert listed[general.pk]["is_general"] is True
    assert listed[general.pk]["peer"] is None
    assert listed[public.pk]["is_general"] is False
    assert listed[public.pk]["peer"] is None
    assert listed[direct["id"]]["is_general"] is False


def test_direct_room_peers_take_one_query_for_the_whole_list(
    alice_api, user, django_assert_max_num_queries
):
    from rooms.services import get_or_create_direct_room

    peers = [UserFactory() for _ in range(20)]
    for peer in peers:
        get_or_create_direct_room(user=user, other=peer)

    with django_assert_max_num_queries(6):
        response = alice_api.get(ROOMS)

    shown = {r["peer"]["id"]: r["peer"]["username"] for r in response.json()["results"]}
    assert shown == {peer.pk: peer.username for peer in peers}


def test_list_needs_a_token(api, general):
    assert api.get(ROOMS).status_code == 401


# ------------------------------------------------------------------------ create


def test_create_makes_the_creator_owner(alice_api, user):
    response = alice_api.post(
        ROOMS, {"name": "Book Club", "description": "Books.", "kind": "private"}, format="json"
    )

    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "Book Club"
    assert body["description"] == "Books."
    assert body["kind"] == "private"
    assert body["my_role"] == "owner"
    assert body["member_count"] == 1
    assert body["created_by"] == user.pk
    assert body["is_archived"] is False
    room = Room.objects.get(pk=body["id"])
    assert Membership.objects.get(room=room).user == user
    assert Membership.objects.get(room=room).role == Role.OWNER


def test_create_defaults_to_a_public_room(alice_api, user):
    response = alice_api.post(ROOMS, {"name": "Lobby"}, format="json")

    assert response.status_code == 201
    assert response.json()["kind"] == "public"


@pytest.mark.parametrize("name", ["Book Club", "book club", "BOOK CLUB", "  Book   Club "])
def test_create_refuses_a_duplicate_name_in_any_case(alice_api, user, other_user, name):
    make_room(owner=other_user, name="Book Club")

    response = alice_api.post(ROOMS, {"name": name}, format="json")

    assert response.status_code == 400
    assert "name" in response.json()
    assert Room.objects.count() == 1


def test_create_refuses_kind_direct(alice_api, user):
    response = alice_api.post(ROOMS, {"name": "Sneaky", "kind": "direct"}, format="json")

    assert response.status_code == 400
    assert "kind" in response.json()
    assert not Room.objects.exists()


@pytest.mark.parametrize("name", ["", "   ", None])
def test_create_refuses_a_blank_name(alice_api, user, name):
    response = alice_api.post(ROOMS, {"name": name}, format="json")

    assert response.status_code == 400
    assert "name" in response.json()
    assert not Room.objects.exists()


def test_create_refuses_a_missing_name(alice_api, user):
    response = alice_api.post(ROOMS, {"description": "nameless"}, format="json")

    assert response.status_code == 400
    assert not Room.objects.exists()


def test_create_collapses_whitespace_in_the_name(alice_api, user):
    response = alice_api.post(ROOMS, {"name": "  Book \t  Club  "}, format="json")

    assert response.status_code == 201
    assert response.json()["name"] == "Book Club"


# ---------------------------------------------------------------------- retrieve


def test_retrieve_shows_a_public_room_to_anyone(bob_api, user):
    room = make_room(owner=user, name="Open Room")

    response = bob_api.get(room_url(room))

    assert response.status_code == 200
    assert response.json()["name"] == "Open Room"
    assert response.json()["my_role"] is None


def test_outsider_gets_404_for_private_room_without_its_name(bob_api, user):
    room = make_room(owner=user, name="Surprise Party Planning", kind="private")

    response = bob_api.get(room_url(room))

    assert response.status_code == 404
    assert "Surprise" not in response.content.decode()


def test_private_room_is_visible_to_its_members(bob_api, user, other_user):
    room = make_room(owner=user, name="Inner Circle", kind="private")
    add_member(fresh(room), other_user)

    response = bob_api.get(room_url(room))

    assert response.status_code == 200
    assert response.json()["my_role"] == "member"
    assert response.json()["member_count"] == 2


def test_retrieve_of_a_missing_room_is_404(alice_api, user):
    assert alice_api.get(f"{ROOMS}987654/").status_code == 404


# ------------------------------------------------------------------------- patch


def test_owner_renames_the_room_with_a_system_message(alice_api, user):
    room = make_room(owner=user, name="Old Name")
    pos_before = fresh(room).pos

    response = alice_api.patch(room_url(room), {"name": "New Name"}, format="json")

    assert response.status_code == 200
    assert response.json()["name"] == "New Name"
    room = fresh(room)
    assert room.name == "New Name"
    assert room.pos == pos_before + 1
    [notice] = system_messages(room)
    assert notice.seq == room.pos
    assert notice.sender is None
    assert "New Name" in notice.content
    assert notice.payload["event"] == "room_renamed"


def test_admin_may_update_the_room(user, other_user):
    room = make_room(owner=user, name="Managed")
    add_member(fresh(room), other_user, Role.ADMIN)

    response = client_for(other_user).patch(
        room_url(room), {"description": "Set by an admin."}, format="json"
    )

    assert response.status_code == 200
    assert fresh(room).description == "Set by an admin."


def test_member_may_not_update_the_room(bob_api, user, other_user):
    room = make_room(owner=user, name="Managed")
    add_member(fresh(room), other_user)
    pos_before = fresh(room).pos

    response = bob_api.patch(room_url(room), {"name": "Hijacked"}, format="json")

    assert response.status_code == 403
    room = fresh(room)
    assert room.name == "Managed"
    assert room.pos == pos_before
    assert system_messages(room) == []


def test_staff_may_update_a_room_they_are_not_in(user, staff_user):
    room = make_room(owner=user, name="Unruly", kind="private")

    response = client_for(staff_user).patch(room_url(room), {"name": "Calm"}, format="json")

    assert response.status_code == 200
    assert fresh(room).name == "Calm"


def test_outsider_gets_404_when_updating_a_private_room(bob_api, user):
    room = make_room(owner=user, name="Hidden", kind="private")

    response = bob_api.patch(room_url(room), {"name": "Found"}, format="json")

    assert response.status_code == 404
    assert fresh(room).name == "Hidden"


def test_rename_to_a_taken_name_is_400(alice_api, user):
    make_room(owner=user, name="Taken")
    room = make_room(owner=user, name="Mine")

    response = alice_api.patch(room_url(room), {"name": "TAKEN"}, format="json")

    assert response.status_code == 400
    assert fresh(room).name == "Mine"
    assert system_messages(room) == []


def test_general_cannot_be_renamed_even_by_staff(general, staff_user):
    response = client_for(staff_user).patch(room_url(general), {"name": "Lounge"}, format="json")

    assert response.status_code == 403
    assert fresh(general).name == "General"


def test_archiving_posts_a_system_message_and_advances_pos(alice_api, user):
    room = make_room(owner=user, name="Winding Down")
    pos_before = fresh(room).pos

    response = alice_api.patch(room_url(room), {"is_archived": True}, format="json")

    assert response.status_code == 200
    assert response.json()["is_archived"] is True
    room = fresh(room)
    assert room.is_archived is True
    assert room.pos == pos_before + 1
    [notice] = system_messages(room)
    assert notice.seq == room.pos
    assert notice.payload["event"] == "room_archived"


def test_archived_room_refuses_posting(alice_api, user):
    room = make_room(owner=user, name="Frozen")
    alice_api.patch(room_url(room), {"is_archived": True}, format="json")
    count = Message.objects.count()

    response = alice_api.post(room_url(room, "messages/"), {"content": "hello?"}, format="json")

    assert response.status_code == 403
    assert Message.objects.count() == count


def test_archived_room_refuses_joining(bob_api, alice_api, user, other_user):
    room = make_room(owner=user, name="Frozen")
    alice_api.patch(room_url(room), {"is_archived": True}, format="json")

    response = bob_api.post(room_url(room, "join/"))

    assert response.status_code == 403
    assert not Membership.objects.filter(room=room, user=other_user).exists()


def test_unarchiving_makes_the_room_writable_again(alice_api, user):
    room = make_room(owner=user, name="Thawed")
    alice_api.patch(room_url(room), {"is_archived": True}, format="json")

    alice_api.patch(room_url(room), {"is_archived": False}, format="json")
    response = alice_api.post(room_url(room, "messages/"), {"content": "back"}, format="json")

    assert response.status_code == 201
    assert [m.payload["event"] for m in system_messages(room)] == [
        "room_archived",
        "room_unarchived",
    ]


# ------------------------------------------------------------------------ delete


def test_owner_deletes_the_room_and_its_messages(alice_api, user):
    room = make_room(owner=user, name="Doomed")
    post_message(room=room, author=user, content="bye")

    response = alice_api.delete(room_url(room))

    assert response.status_code == 204
    assert not Room.objects.filter(pk=room.pk).exists()
    assert not Message.objects.filter(room_id=room.pk).exists()


def test_staff_deletes_any_room(user, staff_user):
    room = make_room(owner=user, name="Doomed", kind="private")

    response = client_for(staff_user).delete(room_url(room))

    assert response.status_code == 204
    assert not Room.objects.filter(pk=room.pk).exists()


def test_admin_may_not_delete_the_room(user, other_user):
    room = make_room(owner=user, name="Keep")
    add_member(fresh(room), other_user, Role.ADMIN)

    response = client_for(other_user).delete(room_url(room))

    assert response.status_code == 403
    assert Room.objects.filter(pk=room.pk).exists()


def test_member_may_not_delete_the_room(bob_api, user, other_user):
    room = make_room(owner=user, name="Keep")
    add_member(fresh(room), other_user)

    assert bob_api.delete(room_url(room)).status_code == 403
    assert Room.objects.filter(pk=room.pk).exists()


def test_outsider_gets_404_when_deleting_a_private_room(bob_api, user):
    room = make_room(owner=user, name="Keep", kind="private")

    assert bob_api.delete(room_url(room)).status_code == 404
    assert Room.objects.filter(pk=room.pk).exists()


def test_general_can_never_be_deleted_even_by_staff(general, staff_user):
    response = client_for(staff_user).delete(room_url(general))

    assert response.status_code == 403
    assert Room.objects.filter(pk=general.pk).exists()


# -------------------------------------------------------------------- join/leave


def test_join_a_public_room_makes_me_a_member(bob_api, user, other_user):
    room = make_room(owner=user, name="Open Door")
    pos_before = fresh(room).pos

    response = bob_api.post(room_url(room, "join/"))

    assert response.status_code == 200
    assert response.json()["my_role"] == "member"
    assert response.json()["member_count"] == 2
    assert Membership.objects.get(room=room, user=other_user).role == Role.MEMBER
    room = fresh(room)
    assert room.pos == pos_before + 1
    [notice] = system_messages(room)
    assert notice.payload == {"event": "member_joined", "user_id": other_user.pk, "by": None}


def test_joining_twice_changes_nothing(bob_api, user, other_user):
    room = make_room(owner=user, name="Open Door")
    bob_api.post(room_url(room, "join/"))
    pos_after_first = fresh(room).pos

    response = bob_api.post(room_url(room, "join/"))

    assert response.status_code == 200
    assert Membership.objects.filter(room=room, user=other_user).count() == 1
    assert fresh(room).pos == pos_after_first


def test_outsider_gets_404_joining_a_private_room(bob_api, user, other_user):
    room = make_room(owner=user, name="Closed Door", kind="private")

    response = bob_api.post(room_url(room, "join/"))

    assert response.status_code == 404
    assert "Closed Door" not in response.content.decode()
    assert not Membership.objects.filter(room=room, user=other_user).exists()


def test_leave_ends_the_membership(bob_api, user, other_user):
    room = make_room(owner=user, name="Revolving Door")
    add_member(fresh(room), other_user)

    response = bob_api.post(room_url(room, "leave/"))

    assert response.status_code == 204
    assert not Membership.objects.filter(room=room, user=other_user).exists()
    [notice] = system_messages(room)
    assert notice.payload["event"] == "member_left"


def test_last_owner_cannot_leave_while_others_remain(alice_api, user, other_user):
    room = make_room(owner=user, name="Captain")
    add_member(fresh(room), other_user)

    response = alice_api.post(room_url(room, "leave/"))

    assert response.status_code == 403
    assert Membership.objects.get(room=room, user=user).role == Role.OWNER


def test_last_owner_may_leave_an_otherwise_empty_room(alice_api, user):
    room = make_room(owner=user, name="Solo")

    response = alice_api.post(room_url(room, "leave/"))

    assert response.status_code == 204
    assert not Membership.objects.filter(room=room).exists()


def test_an_owner_may_leave_when_another_owner_remains(alice_api, user, other_user):
    room = make_room(owner=user, name="Shared Helm")
    add_member(fresh(room), other_user, Role.OWNER)

    response = alice_api.post(room_url(room, "leave/"))

    assert response.status_code == 204
    assert list(Membership.objects.filter(room=room).values_list("user", flat=True)) == [
        other_user.pk
    ]


# ----------------------------------------------------------------------- members


def test_members_lists_users_roles_and_presence(alice_api, user, other_user):
    room = make_room(owner=user, name="Roll Call")
    add_member(fresh(room), other_user)
    presence().enter(user_key(other_user.pk), "socket-1")

    response = alice_api.get(room_url(room, "members/"))

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"results", "next", "previous"}
    by_name = {m["user"]["username"]: m for m in body["results"]}
    assert set(by_name) == {"alice", "bob"}
    assert set(by_name["bob"]) == {"user", "role", "joined_at", "is_online"}
    assert by_name["alice"]["role"] == "owner"
    assert by_name["bob"]["role"] == "member"
    assert by_name["alice"]["is_online"] is False
    assert by_name["bob"]["is_online"] is True


def test_outsider_gets_404_for_members_of_a_private_room(bob_api, user):
    room = make_room(owner=user, name="Roll Call", kind="private")

    assert bob_api.get(room_url(room, "members/")).status_code == 404


def test_owner_invites_into_a_private_room(alice_api, bob_api, user, other_user):
    room = make_room(owner=user, name="Invite Only", kind="private")
    assert bob_api.get(room_url(room)).status_code == 404

    response = alice_api.post(
        room_url(room, "members/"), {"user_id": other_user.pk, "role": "member"}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["user"]["id"] == other_user.pk
    assert response.json()["role"] == "member"
    assert bob_api.get(room_url(room)).status_code == 200
    [notice] = system_messages(room)
    assert notice.payload == {"event": "member_joined", "user_id": other_user.pk, "by": user.pk}


def test_admin_invites_members_and_admins(user, other_user):
    room = make_room(owner=user, name="Invite Only", kind="private")
    add_member(fresh(room), other_user, Role.ADMIN)
    carol = UserFactory(username="carol")

    response = client_for(other_user).post(
        room_url(room, "members/"), {"user_id": carol.pk, "role": "admin"}, format="json"
    )

    assert response.status_code == 200
    assert Membership.objects.get(room=room, user=carol).role == Role.ADMIN


def test_admin_cannot_make_owners(user, other_user):
    room = make_room(owner=user, name="Invite Only", kind="private")
    add_member(fresh(room), other_user, Role.ADMIN)
    carol = UserFactory(username="carol")

    response = client_for(other_user).post(
        room_url(room, "members/"), {"user_id": carol.pk, "role": "owner"}, format="json"
    )

    assert response.status_code == 403
    assert not Membership.objects.filter(room=room, user=carol).exists()


def test_admin_cannot_promote_themself_to_owner(user, other_user):
    room = make_room(owner=user, name="Invite Only", kind="private")
    add_member(fresh(room), other_user, Role.ADMIN)

    response = client_for(other_user).post(
        room_url(room, "members/"), {"user_id": other_user.pk, "role": "owner"}, format="json"
    )

    assert response.status_code == 403
    assert Membership.objects.get(room=room, user=other_user).role == Role.ADMIN


def test_owner_changes_a_members_role(alice_api, user, other_user):
    room = make_room(owner=user, name="Promotions")
    add_member(fresh(room), other_user)

    response = alice_api.post(
        room_url(room, "members/"), {"user_id": other_user.pk, "role": "admin"}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["role"] == "admin"
    assert Membership.objects.get(room=room, user=other_user).role == Role.ADMIN


def test_member_cannot_invite(bob_api, user, other_user):
    room = make_room(owner=user, name="Invite Only", kind="private")
    add_member(fresh(room), other_user)
    carol = UserFactory(username="carol")

    response = bob_api.post(room_url(room, "members/"), {"user_id": carol.pk}, format="json")

    assert response.status_code == 403
    assert not Membership.objects.filter(room=room, user=carol).exists()


def test_inviting_an_unknown_user_is_404(alice_api, user):
    room = make_room(owner=user, name="Invite Only", kind="private")

    response = alice_api.post(room_url(room, "members/"), {"user_id": 987654}, format="json")

    assert response.status_code == 404
    assert Membership.objects.filter(room=room).count() == 1


def test_inviting_an_inactive_user_is_404(alice_api, user):
    room = make_room(owner=user, name="Invite Only", kind="private")
    ghost = UserFactory(username="ghost", is_active=False)

    response = alice_api.post(room_url(room, "members/"), {"user_id": ghost.pk}, format="json")

    assert response.status_code == 404
    assert not Membership.objects.filter(room=room, user=ghost).exists()


def test_inviting_with_an_unknown_role_is_400(alice_api, user, other_user):
    room = make_room(owner=user, name="Invite Only", kind="private")

    response = alice_api.post(
        room_url(room, "members/"), {"user_id": other_user.pk, "role": "king"}, format="json"
    )

    assert response.status_code == 400
    assert not Membership.objects.filter(room=room, user=other_user).exists()


def test_owner_removes_a_member_who_then_loses_access(alice_api, bob_api, user, other_user):
    room = make_room(owner=user, name="Invite Only", kind="private")
    add_member(fresh(room), other_user)
    assert bob_api.get(room_url(room)).status_code == 200

    response = alice_api.delete(room_url(room, f"members/{other_user.pk}/"))

    assert response.status_code == 204
    assert not Membership.objects.filter(room=room, user=other_user).exists()
    assert bob_api.get(room_url(room)).status_code == 404
    [notice] = system_messages(room)
    assert notice.payload == {"event": "member_left", "user_id": other_user.pk, "by": user.pk}


def test_admin_cannot_remove_the_owner(user, other_user):
    room = make_room(owner=user, name="Coup")
    add_member(fresh(room), other_user, Role.ADMIN)

    response = client_for(other_user).delete(room_url(room, f"members/{user.pk}/"))

    assert response.status_code == 403
    assert Membership.objects.filter(room=room, user=user).exists()


def test_admin_can_neither_demote_nor_then_remove_another_admin(user, other_user):
    room = make_room(owner=user, name="Coup")
    add_member(fresh(room), other_user, Role.ADMIN)
    carol = UserFactory(username="carol")
    add_member(fresh(room), carol, Role.ADMIN)
    bob = client_for(other_user)

    demoted = bob.post(room_url(room, "members/"), {"user_id": carol.pk, "role": "member"})
    removed = bob.delete(room_url(room, f"members/{carol.pk}/"))

    assert (demoted.status_code, demoted.json()["code"]) == (403, "forbidden")
    assert removed.status_code == 403
    assert Membership.objects.get(room=room, user=carol).role == Role.ADMIN
    owner = client_for(user)
    assert owner.post(room_url(room, "members/"), {"user_id": carol.pk}).status_code == 200
    assert Membership.objects.get(room=room, user=carol).role == Role.MEMBER


def test_a_user_id_beyond_the_databases_integers_is_400(alice_api, user):
    room = make_room(owner=user, name="Big Numbers")

    response = alice_api.post(room_url(room, "members/"), {"user_id": 2**63})

    assert response.status_code == 400
    assert alice_api.post("/api/direct/", {"user_id": 2**63}).status_code == 400


def test_member_cannot_remove_others(bob_api, user, other_user):
    room = make_room(owner=user, name="Coup")
    add_member(fresh(room), other_user)
    carol = UserFactory(username="carol")
    add_member(fresh(room), carol)

    response = bob_api.delete(room_url(room, f"members/{carol.pk}/"))

    assert response.status_code == 403
    assert Membership.objects.filter(room=room, user=carol).exists()


# ------------------------------------------------------------ counts in the room


def test_unread_count_counts_others_messages_after_my_read_position(
    alice_api, bob_api, user, other_user
):
    room = make_room(owner=user, name="Chatter")
    add_member(fresh(room), other_user)
    first, _ = post_message(room=room, author=other_user, content="one")
    post_message(room=room, author=other_user, content="two")
    post_message(room=room, author=user, content="mine")
    post_message(room=room, author=other_user, content="three")

    assert alice_api.get(room_url(room)).json()["unread_count"] == 3
    assert bob_api.get(room_url(room)).json()["unread_count"] == 1

    Membership.objects.filter(room=room, user=user).update(last_read_pos=first.seq)

    assert alice_api.get(room_url(room)).json()["unread_count"] == 2
    listed = {r["id"]: r for r in alice_api.get(ROOMS).json()["results"]}
    assert listed[room.pk]["unread_count"] == 2


def test_unread_count_starts_at_zero_for_a_newcomer(bob_api, user, other_user):
    room = make_room(owner=user, name="Old Talk")
    post_message(room=room, author=user, content="before you came")

    response = bob_api.post(room_url(room, "join/"))

    assert response.json()["unread_count"] == 0


def test_member_count_follows_membership(alice_api, bob_api, user, other_user):
    room = make_room(owner=user, name="Headcount")
    assert alice_api.get(room_url(room)).json()["member_count"] == 1

    bob_api.post(room_url(room, "join/"))
    assert alice_api.get(room_url(room)).json()["member_count"] == 2

    bob_api.post(room_url(room, "leave/"))
    assert alice_api.get(room_url(room)).json()["member_count"] == 1
