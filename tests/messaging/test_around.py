"""`GET /api/rooms/{id}/messages/?around=<message id>`: the history around a message, for
the search's jump (SPEC 11)."""

import pytest

from messaging.posting import post_message
from tests.conftest import client_for
from tests.factories import UserFactory, make_room

pytestmark = pytest.mark.django_db


@pytest.fixture
def said(user):
    room = make_room(owner=user, name="History")
    return room, [post_message(room=room, author=user, content=f"m{k}")[0] for k in range(20)]


def around(client, room, message_id, **params):
    query = "&".join(f"{k}={v}" for k, v in {"around": message_id, **params}.items())
    return client.get(f"/api/rooms/{room.pk}/messages/?{query}")


def test_the_page_holds_half_before_the_message_it_and_the_rest_after(said, alice_api):
    room, messages = said
    answer = around(alice_api, room, messages[10].pk, limit=6)
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert [m["content"] for m in body["results"]] == ["m7", "m8", "m9", "m10", "m11", "m12"]
    assert (body["has_more_before"], body["has_more_after"]) == (True, True)
    assert body["has_more"] is True
    assert body["pos"] == messages[-1].pos
    assert body["results"][3]["content_html"] == "<p>m10</p>\n"


def test_at_the_edges_of_the_history(said, alice_api):
    room, messages = said
    first = around(alice_api, room, messages[0].pk, limit=4).json()
    assert [m["content"] for m in first["results"]] == ["m0", "m1"]  # 2 before, 1 after
    assert (first["has_more_before"], first["has_more_after"]) == (False, True)
    last = around(alice_api, room, messages[-1].pk, limit=4).json()
    assert [m["content"] for m in last["results"]] == ["m17", "m18", "m19"]
    assert (last["has_more_before"], last["has_more_after"]) == (True, False)
    everything = around(alice_api, room, messages[5].pk, limit=200).json()
    assert len(everything["results"]) == 20
    assert (everything["has_more_before"], everything["has_more_after"]) == (False, False)


def test_a_limit_of_one_is_the_message_alone(said, alice_api):
    room, messages = said
    body = around(alice_api, room, messages[3].pk, limit=1).json()
    assert [m["content"] for m in body["results"]] == ["m3"]
    assert (body["has_more_before"], body["has_more_after"]) == (True, True)


def test_a_message_of_another_room_is_404(said, user, alice_api):
    room, _ = said
    elsewhere = make_room(owner=user, name="Elsewhere")
    foreign, _ = post_message(room=elsewhere, author=user, content="not here")
    assert around(alice_api, room, foreign.pk).status_code == 404
    assert around(alice_api, room, 10**12).status_code == 404


def test_around_with_before_or_after_is_400(said, alice_api):
    room, messages = said
    assert around(alice_api, room, messages[3].pk, before=5).status_code == 400
    assert around(alice_api, room, messages[3].pk, after=5).status_code == 400
    assert around(alice_api, room, "x").status_code == 400
    assert around(alice_api, room, 0).status_code == 400


def test_a_private_room_stays_invisible(user):
    secret = make_room(owner=user, name="Secret", kind="private")
    message, _ = post_message(room=secret, author=user, content="hidden")
    stranger = client_for(UserFactory(username="stranger"))
    assert around(stranger, secret, message.pk).status_code == 404


def test_the_page_costs_a_constant_number_of_queries(
    said, alice_api, django_assert_max_num_queries
):
    room, messages = said
    with django_assert_max_num_queries(12):
        assert around(alice_api, room, messages[10].pk, limit=200).status_code == 200
