"""The message admin: search, filters, and the soft-delete and restore actions.

The actions are asserted through `broadcasts` in every configuration; with REDIS_URL set,
the `live` tests also watch a real socket on the `chat_server` process receive them.
"""

import uuid
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.test import Client
from django.utils import timezone

from messaging.changes import delete_message
from messaging.models import Message
from messaging.posting import post_message
from rooms.models import Room
from tests.factories import UserFactory, make_room
from tests.live import socket_in

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/messaging/message/"


def action(name: str, *messages: Message) -> dict:
    return {"action": name, "_selected_action": [m.pk for m in messages], "index": "0"}


def say(room: Room, author, content: str, **extra) -> Message:
    return post_message(room=room, author=author, content=content, **extra)[0]


def shown(response) -> set[str]:
    assert response.status_code == 200
    return {message.content for message in response.context["cl"].result_list}


@pytest.fixture
def rooms(user, other_user) -> tuple[Room, Room]:
    """Two rooms: alice says two things in the first, bob one thing in each."""
    first, second = make_room(owner=user, name="First"), make_room(owner=user, name="Second")
    say(first, user, "deploy tonight")
    say(first, other_user, "lunch at noon?")
    say(second, other_user, "deploy went fine")
    say(first, user, "bye")
    return first, second


# ----------------------------------------------------------- search and filters


def test_changelist_searches_message_content(admin_client, rooms):
    assert shown(admin_client.get(CHANGELIST, {"q": "deploy"})) == {
        "deploy tonight",
        "deploy went fine",
    }
    assert shown(admin_client.get(CHANGELIST, {"q": "nothing-like-this"})) == set()


def test_changelist_filters_by_room_id(admin_client, rooms):
    first, second = rooms

    assert shown(admin_client.get(CHANGELIST, {"room": first.pk})) == {
        "deploy tonight",
        "lunch at noon?",
        "bye",
    }
    assert shown(admin_client.get(CHANGELIST, {"room": second.pk})) == {"deploy went fine"}
    assert shown(admin_client.get(CHANGELIST, {"room": "abc"})) == set()


def test_changelist_filters_by_sender_username_in_any_case(admin_client, rooms):
    assert shown(admin_client.get(CHANGELIST, {"sender": "alice"})) == {"deploy tonight", "bye"}
    assert shown(admin_client.get(CHANGELIST, {"sender": "BOB"})) == {
        "lunch at noon?",
        "deploy went fine",
    }
    assert shown(admin_client.get(CHANGELIST, {"sender": "nobody"})) == set()


def test_room_and_sender_filters_combine_and_keep_each_other(admin_client, rooms):
    first, _ = rooms

    response = admin_client.get(CHANGELIST, {"room": first.pk, "sender": "bob"})

    assert shown(response) == {"lunch at noon?"}
    html = response.content.decode()
    # Each input filter's form carries the other filter along when it is submitted.
    assert f'<input type="hidden" name="room" value="{first.pk}">' in html
    assert '<input type="hidden" name="sender" value="bob">' in html
    assert 'aria-label="room id"' in html


def test_changelist_filters_by_type(admin_client, admin_user, rooms):
    first, _ = rooms
    say(first, admin_user, "read this", type=Message.Type.ANNOUNCEMENT)

    response = admin_client.get(CHANGELIST, {"type__exact": "announcement"})

    assert shown(response) == {"read this"}


def test_changelist_filters_by_date(admin_client, rooms):
    old = Message.objects.get(content="bye")
    Message.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=30))
    page = admin_client.get(CHANGELIST)
    (dates,) = [
        spec
        for spec in page.context["cl"].filter_specs
        if getattr(spec, "field_path", None) == "created_at"
    ]
    links = {
        choice["display"]: choice["query_string"] for choice in dates.choices(page.context["cl"])
    }

    recent = admin_client.get(CHANGELIST + links["Past 7 days"])

    assert shown(recent) == {"deploy tonight", "lunch at noon?", "deploy went fine"}
    assert "bye" in shown(admin_client.get(CHANGELIST + links["Any date"]))


# ---------------------------------------------------------------------- actions


def test_soft_delete_action_marks_messages_deleted_and_broadcasts(
    admin_client, user, rooms, broadcasts, committing
):
    first, _ = rooms
    target = Message.objects.get(content="deploy tonight")
    gone = delete_message(
        message=Message.objects.get(content="bye"), actor=user, can_moderate=False
    )
    position = Room.objects.get(pk=first.pk).pos

    with committing():
        response = admin_client.post(CHANGELIST, action("soft_delete", target, gone), follow=True)

    assert "Deleted 1 message(s)." in response.content.decode()
    target.refresh_from_db()
    assert target.deleted is True
    assert target.deleted_at is not None
    assert target.pos == position + 1
    assert Room.objects.get(pk=first.pk).pos == position + 1
    assert Message.objects.get(content="lunch at noon?").deleted is False
    assert broadcasts == [
        (
            f"room.{first.pk}",
            {
                "type": "message_deleted",
                "room": first.pk,
                "pos": position + 1,
                "message_id": target.pk,
            },
        )
    ]


def test_restore_action_undeletes_and_broadcasts_the_update(
    admin_client, user, rooms, broadcasts, committing
):
    first, _ = rooms
    target = delete_message(
        message=Message.objects.get(content="deploy tonight"), actor=user, can_moderate=False
    )
    untouched = Message.objects.get(content="bye")
    position = Room.objects.get(pk=first.pk).pos

    with committing():
        response = admin_client.post(CHANGELIST, action("restore", target, untouched), follow=True)

    assert "Restored 1 message(s)." in response.content.decode()
    target.refresh_from_db()
    assert (target.deleted, target.deleted_at) == (False, None)
    assert target.pos == position + 1
    assert len(broadcasts) == 1
    group, event = broadcasts[0]
    assert group == f"room.{first.pk}"
    assert event["type"] == "message_updated"
    assert event["pos"] == position + 1
    assert event["message"]["id"] == target.pk
    assert event["message"]["deleted"] is False
    assert event["message"]["content"] == "deploy tonight"


def test_no_hard_delete_is_offered_beside_the_soft_delete(
    admin_client, rooms, broadcasts, committing
):
    target = Message.objects.get(content="deploy tonight")

    page = admin_client.get(CHANGELIST).content.decode()
    with committing():
        admin_client.post(CHANGELIST, {**action("delete_selected", target), "post": "yes"})

    # A hard delete would take no room position and reach no socket: clients would keep
    # showing the message, and recovery with `after` could never tell them.
    assert 'value="soft_delete"' in page
    assert 'value="delete_selected"' not in page
    assert Message.objects.filter(pk=target.pk, deleted=False).exists()
    assert broadcasts == []


# ------------------------------------------------------------------ staff only


def test_anonymous_and_non_staff_users_are_sent_to_the_login_page(client, user):
    anonymous = client.get(CHANGELIST)
    client.force_login(user)
    signed_in = client.get(CHANGELIST)

    for response in (anonymous, signed_in):
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/?next=")


def test_soft_delete_without_the_csrf_token_is_refused(admin_user, rooms, broadcasts, committing):
    target = Message.objects.get(content="deploy tonight")
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)

    with committing():
        response = client.post(CHANGELIST, action("soft_delete", target))

    assert response.status_code == 403
    target.refresh_from_db()
    assert target.deleted is False
    assert broadcasts == []


# --------------------------------------------------------------------- queries


def test_changelist_queries_do_not_grow_with_the_messages(
    admin_client, django_assert_max_num_queries
):
    people = [UserFactory() for _ in range(4)]
    rooms = [make_room(owner=people[0]) for _ in range(5)]
    for n in range(100):
        say(rooms[n % 5], people[n % 4], f"message {n}")

    with django_assert_max_num_queries(15):
        response = admin_client.get(CHANGELIST)

    assert len(shown(response)) == 100
    assert f">{people[1].username}<" in response.content.decode()


# ------------------------------------------------------------- live (REDIS_URL)


@pytest.mark.e2e
@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_soft_delete_and_restore_reach_sockets_on_the_server(
    server_via_redis, admin_client, user
):
    room = await sync_to_async(make_room)(owner=user, name=f"Live {uuid.uuid4().hex[:6]}")
    message = await sync_to_async(say)(room, user, "moderate me")
    post = sync_to_async(admin_client.post)

    async with socket_in(server_via_redis, room, user) as ws:
        assert (await post(CHANGELIST, action("soft_delete", message))).status_code == 302
        deleted = await ws.recv_until("message_deleted", timeout=10, message_id=message.pk)
        assert (await post(CHANGELIST, action("restore", message))).status_code == 302
        restored = await ws.recv_until("message_updated", timeout=10, room=room.pk)

    assert deleted == {
        "type": "message_deleted",
        "room": room.pk,
        "pos": message.pos + 1,
        "message_id": message.pk,
    }
    assert restored["pos"] == message.pos + 2
    assert restored["message"]["id"] == message.pk
    assert restored["message"]["content"] == "moderate me"
    assert restored["message"]["deleted"] is False
