"""The messages API of a room: history by `seq`, recovery by `pos`, and posting."""

import pytest
from django.conf import settings
from django.utils.dateparse import parse_datetime

from chatproject.errors import ValidationFailed
from messaging.frames import MAX_DEPTH
from messaging.models import Message
from messaging.posting import post_message, post_message_from_input
from rooms.models import Membership, Room
from tests.conftest import client_for
from tests.factories import UserFactory, add_member, make_room

pytestmark = pytest.mark.django_db


# The keys of a message, exactly as SPEC.md section 3 shows one.
MESSAGE_KEYS = {
    "id",
    "room",
    "seq",
    "pos",
    "sender",
    "type",
    "content",
    "content_html",
    "mentions",
    "mentions_room",
    "title",
    "payload",
    "attachments",
    "reply_to",
    "client_id",
    "reactions",
    "created_at",
    "edited_at",
    "deleted",
}


def messages_url(room: Room) -> str:
    return f"/api/rooms/{room.pk}/messages/"


def fresh(room: Room) -> Room:
    room.refresh_from_db()
    return room


@pytest.fixture
def room(user, other_user) -> Room:
    """A public room of alice's with bob as a member."""
    room = make_room(owner=user, name="Chat")
    add_member(fresh(room), other_user)
    return room


def say(room: Room, author, *texts: str) -> list[Message]:
    return [post_message(room=room, author=author, content=text)[0] for text in texts]


def contents(response) -> list[str]:
    return [m["content"] for m in response.json()["results"]]


# ----------------------------------------------------------------------- history


def test_history_without_before_is_the_latest_page_oldest_first(alice_api, room, user):
    say(room, user, "m1", "m2", "m3", "m4", "m5")

    response = alice_api.get(messages_url(room), {"limit": 3})

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"results", "has_more", "pos"}
    assert contents(response) == ["m3", "m4", "m5"]
    assert [m["seq"] for m in body["results"]] == [3, 4, 5]
    assert body["has_more"] is True
    assert body["pos"] == fresh(room).pos == 5


def test_history_before_pages_back_to_the_start(alice_api, room, user):
    say(room, user, "m1", "m2", "m3", "m4", "m5")
    latest = alice_api.get(messages_url(room), {"limit": 3}).json()
    oldest_seq = latest["results"][0]["seq"]

    response = alice_api.get(messages_url(room), {"limit": 3, "before": oldest_seq})

    assert response.status_code == 200
    assert contents(response) == ["m1", "m2"]
    assert response.json()["has_more"] is False
    assert response.json()["pos"] == 5


def test_history_page_that_exactly_fits_has_no_more(alice_api, room, user):
    say(room, user, "m1", "m2", "m3")

    response = alice_api.get(messages_url(room), {"limit": 3})

    assert contents(response) == ["m1", "m2", "m3"]
    assert response.json()["has_more"] is False


def test_history_default_page_is_50(alice_api, room, user):
    say(room, user, *(f"m{n}" for n in range(1, 53)))

    response = alice_api.get(messages_url(room))

    assert response.status_code == 200
    assert contents(response) == [f"m{n}" for n in range(3, 53)]
    assert response.json()["has_more"] is True


def test_history_of_an_empty_room(alice_api, user):
    room = make_room(owner=user, name="Empty")

    response = alice_api.get(messages_url(room))

    assert response.status_code == 200
    assert response.json() == {"results": [], "has_more": False, "pos": 0}


@pytest.mark.parametrize("limit", ["1", "200"])
def test_limit_accepts_its_bounds(alice_api, room, user, limit):
    say(room, user, "m1", "m2")

    response = alice_api.get(messages_url(room), {"limit": limit})

    assert response.status_code == 200
    assert contents(response) == ["m1", "m2"][-int(limit) :]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "201"},
        {"limit": "x"},
        {"limit": "-1"},
        {"before": "x"},
        {"before": "0"},
        {"after": "-1"},
        {"after": "1.5"},
    ],
)
def test_out_of_range_or_non_integer_paging_is_400(alice_api, room, user, params):
    say(room, user, "m1")

    response = alice_api.get(messages_url(room), params)

    assert response.status_code == 400
    assert "results" not in response.json()


def test_before_and_after_together_is_400(alice_api, room, user):
    say(room, user, "m1", "m2")

    response = alice_api.get(messages_url(room), {"before": 2, "after": 0})

    assert response.status_code == 400
    assert "results" not in response.json()


def test_outsider_gets_404_for_private_room_messages(bob_api, user):
    secret = make_room(owner=user, name="Secret Santa", kind="private")
    say(secret, user, "the gift is a llama")

    response = bob_api.get(messages_url(secret))

    assert response.status_code == 404
    assert "llama" not in response.content.decode()
    assert "Secret Santa" not in response.content.decode()


def test_history_of_an_unknown_room_is_404(alice_api, user):
    assert alice_api.get("/api/rooms/987654/messages/").status_code == 404


def test_history_needs_a_token(api, room):
    assert api.get(messages_url(room)).status_code == 401


# ---------------------------------------------------------------------- recovery


def test_after_returns_every_change_after_a_position_in_pos_order(alice_api, room, user):
    _m1, m2, m3, m4 = say(room, user, "m1", "m2", "m3", "m4")
    edit = alice_api.patch(f"/api/messages/{m2.pk}/", {"content": "m2 edited"}, format="json")
    assert edit.status_code == 200
    assert edit.json()["pos"] == 5

    response = alice_api.get(messages_url(room), {"after": 2})

    assert response.status_code == 200
    body = response.json()
    assert [(m["id"], m["seq"], m["pos"]) for m in body["results"]] == [
        (m3.pk, 3, 3),
        (m4.pk, 4, 4),
        (m2.pk, 2, 5),
    ]
    assert body["results"][-1]["content"] == "m2 edited"
    assert body["has_more"] is False
    assert body["pos"] == 5


def test_after_zero_returns_everything_and_after_the_end_nothing(alice_api, room, user):
    say(room, user, "m1", "m2", "m3")

    everything = alice_api.get(messages_url(room), {"after": 0}).json()
    nothing = alice_api.get(messages_url(room), {"after": 3}).json()
    beyond = alice_api.get(messages_url(room), {"after": 99}).json()

    assert [m["pos"] for m in everything["results"]] == [1, 2, 3]
    assert nothing["results"] == []
    assert beyond["results"] == []
    assert nothing["pos"] == beyond["pos"] == 3


def test_after_is_paged_by_limit(alice_api, room, user):
    say(room, user, "m1", "m2", "m3", "m4", "m5")

    first = alice_api.get(messages_url(room), {"after": 1, "limit": 2}).json()
    second = alice_api.get(messages_url(room), {"after": 3, "limit": 2}).json()

    assert [m["pos"] for m in first["results"]] == [2, 3]
    assert first["has_more"] is True
    assert [m["pos"] for m in second["results"]] == [4, 5]
    assert second["has_more"] is False


# -------------------------------------------------------------------------- post


def test_post_answers_201_with_the_message_in_the_spec_shape(alice_api, room, user):
    response = alice_api.post(
        messages_url(room), {"content": "Hello", "client_id": "c1-abc"}, format="json"
    )

    assert response.status_code == 201
    body = response.json()
    assert set(body) == MESSAGE_KEYS
    room = fresh(room)
    stored = Message.objects.get(pk=body["id"])
    assert body["room"] == room.pk
    assert body["seq"] == body["pos"] == room.pos == stored.seq
    assert body["sender"] == {"id": user.pk, "username": "alice", "display_name": "Alice"}
    assert body["type"] == "text"
    assert body["content"] == "Hello"
    assert body["content_html"] == "<p>Hello</p>\n"
    assert (body["mentions"], body["mentions_room"]) == ([], False)
    assert body["title"] is None
    assert body["payload"] == {}
    assert body["attachments"] == []
    assert body["reply_to"] is None
    assert body["client_id"] == "c1-abc"
    assert body["reactions"] == []
    created_at = parse_datetime(body["created_at"])
    assert created_at is not None
    assert created_at.tzinfo is not None
    assert body["edited_at"] is None
    assert body["deleted"] is False


def test_post_without_client_id_gets_one(alice_api, room, user):
    response = alice_api.post(messages_url(room), {"content": "Hello"}, format="json")

    assert response.status_code == 201
    assert response.json()["client_id"]
    assert Message.objects.get(pk=response.json()["id"]).client_id == response.json()["client_id"]


def test_post_with_title_payload_and_links(alice_api, room, user):
    response = alice_api.post(
        messages_url(room),
        {
            "content": "See this",
            "title": "Link",
            "payload": {"kind": "link", "n": 1},
            "attachment_urls": ["https://example.com/a.png"],
        },
        format="json",
    )

    assert response.status_code == 201
    body = response.json()
    assert body["title"] == "Link"
    assert body["payload"] == {"kind": "link", "n": 1}
    assert body["attachments"] == [{"url": "https://example.com/a.png"}]


def test_same_client_id_again_returns_the_first_message_and_stores_nothing(alice_api, room, user):
    first = alice_api.post(
        messages_url(room), {"content": "once", "client_id": "retry-1"}, format="json"
    )
    pos_after_first = fresh(room).pos

    again = alice_api.post(
        messages_url(room), {"content": "once", "client_id": "retry-1"}, format="json"
    )

    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.json() == first.json()
    assert Message.objects.filter(client_id="retry-1").count() == 1
    assert fresh(room).pos == pos_after_first


def test_same_client_id_by_another_sender_is_another_message(alice_api, bob_api, room):
    mine = alice_api.post(messages_url(room), {"content": "a", "client_id": "k"}, format="json")
    theirs = bob_api.post(messages_url(room), {"content": "b", "client_id": "k"}, format="json")

    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]


def test_same_client_id_in_another_room_is_400(alice_api, room, user):
    other = make_room(owner=user, name="Elsewhere")
    alice_api.post(messages_url(room), {"content": "here", "client_id": "dup-9"}, format="json")
    count = Message.objects.count()

    response = alice_api.post(
        messages_url(other), {"content": "there", "client_id": "dup-9"}, format="json"
    )

    assert response.status_code == 400
    assert "client_id" in response.json()
    assert Message.objects.count() == count
    assert fresh(other).pos == 0


def test_content_over_the_limit_is_400_too_long(alice_api, room):
    count = Message.objects.count()

    response = alice_api.post(
        messages_url(room), {"content": "a" * (settings.MAX_MESSAGE_LENGTH + 1)}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["code"] == "too_long"
    assert Message.objects.count() == count


def test_content_of_exactly_the_limit_in_emoji_is_accepted(alice_api, room):
    content = "😀" * settings.MAX_MESSAGE_LENGTH

    response = alice_api.post(messages_url(room), {"content": content}, format="json")

    assert response.status_code == 201
    assert response.json()["content"] == content
    assert Message.objects.get(pk=response.json()["id"]).content == content


def test_emoji_count_as_one_character_each_against_the_limit(alice_api, room):
    count = Message.objects.count()

    response = alice_api.post(
        messages_url(room), {"content": "😀" * (settings.MAX_MESSAGE_LENGTH + 1)}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["code"] == "too_long"
    assert Message.objects.count() == count


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"content": "nul \x00 here"}, "content"),
        ({"content": ""}, "content"),
        ({"content": "   \n\t "}, "content"),
        ({}, "content"),
        ({"content": "x", "attachment_urls": ["javascript:alert(1)"]}, "attachment_urls"),
        ({"content": "x", "attachment_urls": ["ftp://example.com/f"]}, "attachment_urls"),
        ({"content": "x", "payload": ["not", "an", "object"]}, "payload"),
        ({"content": "x", "payload": "text"}, "payload"),
        ({"content": "x", "payload": 7}, "payload"),
        ({"content": "x", "payload": {"note": "nul \x00"}}, "payload"),
        ({"content": "x", "title": "nul \x00"}, "title"),
        ({"content": "x", "type": "shout"}, "type"),
        ({"content": "x", "client_id": "has spaces"}, "client_id"),
        ({"content": "x", "client_id": "c" * 65}, "client_id"),
        ({"content": "x", "title": "t" * 201}, "title"),
        ({"content": "x", "reply_to": 987654}, "reply_to"),
        # Beyond the databases' integers: SQLite could not even run the query (a 500).
        ({"content": "x", "attachments": [2**63]}, "attachments"),
        ({"content": "x", "reply_to": 2**63}, "reply_to"),
    ],
)
def test_invalid_input_is_400_and_stores_nothing(alice_api, room, body, field):
    count = Message.objects.count()

    response = alice_api.post(messages_url(room), body, format="json")

    assert response.status_code == 400
    assert field in response.json()
    assert Message.objects.count() == count


def test_empty_content_with_attachments_is_accepted(alice_api, room):
    response = alice_api.post(
        messages_url(room),
        {"content": "", "attachment_urls": ["https://example.com/cat.gif"]},
        format="json",
    )

    assert response.status_code == 201
    assert response.json()["attachments"] == [{"url": "https://example.com/cat.gif"}]


def test_non_member_cannot_post(user, room):
    outsider = UserFactory(username="carol")
    count = Message.objects.count()

    response = client_for(outsider).post(messages_url(room), {"content": "hi"}, format="json")

    assert response.status_code == 403
    assert Message.objects.count() == count


def test_outsider_gets_404_posting_to_a_private_room(bob_api, user):
    secret = make_room(owner=user, name="Secret", kind="private")
    count = Message.objects.count()

    response = bob_api.post(messages_url(secret), {"content": "hi"}, format="json")

    assert response.status_code == 404
    assert Message.objects.count() == count


def test_announcement_by_non_staff_is_403(alice_api, room):
    count = Message.objects.count()

    response = alice_api.post(
        messages_url(room),
        {"content": "Hear ye", "type": "announcement", "title": "News"},
        format="json",
    )

    assert response.status_code == 403
    assert Message.objects.count() == count


def test_announcement_by_staff_is_201(room, staff_user):
    add_member(fresh(room), staff_user, Membership.Role.MEMBER)

    response = client_for(staff_user).post(
        messages_url(room),
        {"content": "Maintenance tonight", "type": "announcement", "title": "Heads up"},
        format="json",
    )

    assert response.status_code == 201
    assert response.json()["type"] == "announcement"
    assert response.json()["title"] == "Heads up"
    assert Message.objects.get(pk=response.json()["id"]).type == Message.Type.ANNOUNCEMENT


@pytest.mark.parametrize("client", ["alice", "staff"])
def test_nobody_posts_system_messages(room, user, staff_user, client):
    add_member(fresh(room), staff_user)
    poster = user if client == "alice" else staff_user
    count = Message.objects.count()

    response = client_for(poster).post(
        messages_url(room), {"content": "I am the system", "type": "system"}, format="json"
    )

    assert response.status_code == 403
    assert Message.objects.count() == count


def test_reply_to_a_message_of_the_same_room(alice_api, room, other_user):
    [original] = say(room, other_user, "question?")

    response = alice_api.post(
        messages_url(room), {"content": "answer", "reply_to": original.pk}, format="json"
    )

    assert response.status_code == 201
    assert response.json()["reply_to"] == original.pk


def test_reply_to_a_message_of_another_room_is_400(alice_api, room, user):
    other = make_room(owner=user, name="Elsewhere")
    [elsewhere] = say(other, user, "over here")
    count = Message.objects.count()

    response = alice_api.post(
        messages_url(room), {"content": "answer", "reply_to": elsewhere.pk}, format="json"
    )

    assert response.status_code == 400
    assert "reply_to" in response.json()
    assert Message.objects.count() == count


def test_post_needs_a_token(api, room):
    count = Message.objects.count()

    response = api.post(messages_url(room), {"content": "anonymous"}, format="json")

    assert response.status_code == 401
    assert Message.objects.count() == count


def test_posted_messages_appear_in_history_in_order(alice_api, bob_api, room):
    alice_api.post(messages_url(room), {"content": "one"}, format="json")
    bob_api.post(messages_url(room), {"content": "two"}, format="json")

    response = bob_api.get(messages_url(room))

    assert contents(response) == ["one", "two"]
    assert [m["sender"]["username"] for m in response.json()["results"]] == ["alice", "bob"]


# ------------------------------------------------------------------------ nesting


def nested(levels: int) -> dict:
    """An object nesting `levels` objects deep (itself the first)."""
    value: dict = {}
    for _ in range(levels - 1):
        value = {"k": value}
    return value


def test_a_post_nests_as_deep_as_a_socket_frame_may_and_no_deeper(room, user):
    """One limit for REST, the socket and the admin: a post (a body, or a frame without
    `type`, `ref` and `room`) nests at most MAX_DEPTH deep, its payload one less."""
    fits = {"content": "deep enough", "payload": nested(MAX_DEPTH - 1)}
    message, _ = post_message_from_input(room=room, author=user, data=fits)
    assert message.payload == nested(MAX_DEPTH - 1)

    too_deep = {"content": "too deep", "payload": nested(MAX_DEPTH)}
    with pytest.raises(ValidationFailed) as caught:
        post_message_from_input(room=room, author=user, data=too_deep)
    assert "payload" in caught.value.fields
    # Checked values (the admin, commands) meet the same limit.
    with pytest.raises(ValidationFailed):
        post_message(room=room, author=user, content="x", payload=nested(MAX_DEPTH))
    assert not Message.objects.filter(content__in=["too deep", "x"]).exists()


def test_rest_refuses_a_payload_nested_deeper_than_a_socket_frame_may(alice_api, room):
    count = Message.objects.count()

    just_over = alice_api.post(
        messages_url(room), {"content": "x", "payload": nested(MAX_DEPTH)}, format="json"
    )
    # As deep as the interpreter can still parse (it was stored, and its admin page 500ed).
    far_over = alice_api.post(
        messages_url(room), {"content": "x", "payload": nested(948)}, format="json"
    )

    assert (just_over.status_code, just_over.json()["code"]) == (400, "validation_error")
    assert far_over.status_code == 400
    assert far_over.json()["code"] in ("validation_error", "invalid_json")
    assert Message.objects.count() == count
