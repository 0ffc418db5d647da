"""Muting a room, and the counts the room list shows beside it (SPEC 11)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from messaging.posting import post_message
from rooms.models import Membership, UserChange
from tests.conftest import client_for
from tests.factories import UserFactory, add_member, make_room

pytestmark = pytest.mark.django_db


@pytest.fixture
def room(user, other_user):
    room = make_room(owner=user, name="Team")
    add_member(room, other_user)
    return room


def mute(client, room, body) -> object:
    return client.patch(f"/api/rooms/{room.pk}/membership/", body, format="json")


def test_a_member_mutes_and_unmutes_a_room(room, user, other_user, bob_api):
    post_message(room=room, author=user, content="@bob hi")
    answer = mute(bob_api, room, {"muted": True})
    assert answer.status_code == 200, answer.content
    assert answer.json() == {
        "room": room.pk,
        "role": "member",
        "muted": True,
        "last_read_seq": Membership.objects.get(room=room, user=other_user).last_read_pos,
        "unread_count": 1,
        "mention_count": 1,
    }
    assert Membership.objects.get(room=room, user=other_user).muted
    assert not Membership.objects.get(room=room, user=user).muted  # mine only

    assert mute(bob_api, room, {"muted": False}).json()["muted"] is False
    assert not Membership.objects.get(room=room, user=other_user).muted


def test_a_mute_change_is_in_the_users_own_stream(room, other_user, bob_api):
    mute(bob_api, room, {"muted": True})
    mute(bob_api, room, {"muted": True})  # no change: nothing more to tell
    frames = [c.frame for c in UserChange.objects.filter(user=other_user).order_by("pos")]
    changed = [f for f in frames if f["type"] == "membership_changed"]
    assert len(changed) == 1
    assert changed[0]["room"] == room.pk and changed[0]["muted"] is True


def test_a_non_member_may_not_mute_a_public_room(room):
    stranger = UserFactory(username="stranger")
    answer = mute(client_for(stranger), room, {"muted": True})
    assert answer.status_code == 403
    assert not Membership.objects.filter(room=room, user=stranger).exists()


def test_an_outsider_of_a_private_room_gets_404(user):
    secret = make_room(owner=user, name="Secret", kind="private")
    answer = mute(client_for(UserFactory(username="stranger")), secret, {"muted": True})
    assert answer.status_code == 404
    assert "Secret" not in answer.content.decode()


@pytest.mark.parametrize("body", [{}, {"muted": "maybe"}, {"muted": None}, {"muted": [True]}])
def test_a_bad_body_is_400(room, bob_api, body):
    answer = mute(bob_api, room, body)
    assert answer.status_code == 400, answer.content
    assert "muted" in answer.json()


def test_the_room_list_and_detail_show_muted_and_mention_count(
    room, user, other_user, bob_api, alice_api
):
    post_message(room=room, author=user, content="@bob one")
    post_message(room=room, author=user, content="@room two")
    post_message(room=room, author=other_user, content="@room mine: not counted for me")
    mute(bob_api, room, {"muted": True})
    listed = {r["id"]: r for r in bob_api.get("/api/rooms/").json()["results"]}
    assert (listed[room.pk]["muted"], listed[room.pk]["mention_count"]) == (True, 2)
    detail = bob_api.get(f"/api/rooms/{room.pk}/").json()
    assert (detail["muted"], detail["mention_count"], detail["unread_count"]) == (True, 2, 2)
    mine = alice_api.get(f"/api/rooms/{room.pk}/").json()
    assert (mine["muted"], mine["mention_count"]) == (False, 1)
    # A public room I am not in: not muted, nothing counted.
    other = make_room(owner=user, name="Elsewhere")
    post_message(room=other, author=user, content="@room hello")
    detail = bob_api.get(f"/api/rooms/{other.pk}/").json()
    assert (detail["muted"], detail["mention_count"]) == (False, 0)


def test_the_room_list_costs_the_same_queries_for_one_room_or_many(user, other_user, bob_api):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            answer = bob_api.get("/api/rooms/")
        assert answer.status_code == 200
        return len(captured.captured_queries)

    first = make_room(owner=user, name="Room 0")
    add_member(first, other_user)
    post_message(room=first, author=user, content="@bob @room")
    one = queries()
    for k in range(1, 8):
        more = make_room(owner=user, name=f"Room {k}", kind="private" if k % 2 else "public")
        add_member(more, other_user)
        post_message(room=more, author=user, content="@bob @room")
        bob_api.patch(f"/api/rooms/{more.pk}/membership/", {"muted": True}, format="json")
    assert queries() == one
    results = bob_api.get("/api/rooms/").json()["results"]
    assert {r["mention_count"] for r in results if r["name"].startswith("Room")} == {2}
