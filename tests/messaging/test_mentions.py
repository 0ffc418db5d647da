"""Mentions (SPEC 11): `@username` of a member, `@here` (members online), `@room` (every
member), stored with the message and counted per membership (`mention_count`)."""

import pytest
from asgiref.sync import sync_to_async
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from accounts.presence import presence, user_key
from accounts.services import issue_tokens
from messaging.changes import delete_message, edit_message
from messaging.models import Mention, Message
from messaging.posting import post_batch, post_message
from messaging.stream import lock_room, post_notice
from rooms.models import Membership
from rooms.selectors import mention_count, rooms_for_listing
from rooms.services import mark_read
from tests.conftest import client_for
from tests.factories import UserFactory, add_member, make_room
from tests.messaging.test_consumer import recv_type, request, signed_in

MENTION_TABLE = Mention._meta.db_table


@pytest.fixture
def carol(db):
    return UserFactory(username="Carol", display_name="Carol")


@pytest.fixture
def room(user, other_user, carol):
    room = make_room(owner=user, name="Team")
    add_member(room, other_user)
    add_member(room, carol)
    return room


def membership(room, user) -> Membership:
    return Membership.objects.get(room=room, user=user)


def mentioned(message: Message) -> set[int]:
    return set(Mention.objects.filter(message=message).values_list("user_id", flat=True))


def test_a_member_mentioned_by_name_in_any_case(room, user, other_user, carol):
    message, _ = post_message(room=room, author=user, content="hi @BOB and @carol!")
    assert message.mentions == [other_user.pk, carol.pk]
    assert not message.mentions_room
    assert (
        f'<span class="mention" data-user-id="{other_user.pk}">@BOB</span>' in message.content_html
    )
    assert mentioned(message) == {other_user.pk, carol.pk}
    stored = Message.objects.get(pk=message.pk)
    assert stored.content_html == message.content_html
    assert stored.mentions == [other_user.pk, carol.pk]


def test_non_members_and_unknown_names_are_not_mentioned(room, user):
    outsider = UserFactory(username="dave")
    message, _ = post_message(room=room, author=user, content="@dave @nobody look")
    assert message.mentions == []
    assert 'class="mention' not in message.content_html
    assert not Mention.objects.filter(user=outsider).exists()


def test_a_name_in_code_is_not_a_mention(room, user, other_user):
    message, _ = post_message(room=room, author=user, content="`@bob`\n```\n@bob\n```")
    assert message.mentions == []
    assert mentioned(message) == set()


def test_mentioning_oneself_counts_for_nobody(room, user):
    message, _ = post_message(room=room, author=user, content="note to @alice")
    assert message.mentions == [user.pk]
    assert mentioned(message) == set()
    assert mention_count(membership=membership(room, user)) == 0


def test_here_mentions_the_members_online_now_not_the_sender(room, user, other_user, carol):
    outsider = UserFactory(username="erin")
    for online in (user, other_user, outsider):
        presence().enter(user_key(online.pk), f"socket-{online.pk}")
    message, _ = post_message(room=room, author=user, content="@here standup")
    assert message.mentions == [other_user.pk]
    assert '<span class="mention mention-broadcast">@here</span>' in message.content_html
    assert mentioned(message) == {other_user.pk}
    assert mention_count(membership=membership(room, other_user)) == 1
    assert mention_count(membership=membership(room, carol)) == 0  # offline


def test_room_mentions_every_member_but_the_sender(room, user, other_user, carol):
    message, _ = post_message(room=room, author=user, content="@room release at 5")
    assert message.mentions_room
    assert message.mentions == []
    assert mentioned(message) == set()  # no row per member: the flag is counted
    assert mention_count(membership=membership(room, other_user)) == 1
    assert mention_count(membership=membership(room, carol)) == 1
    assert mention_count(membership=membership(room, user)) == 0


def test_mention_count_follows_the_read_marker(room, user, other_user, bob_api):
    first, _ = post_message(room=room, author=user, content="@bob one")
    post_message(room=room, author=user, content="no mention")
    last, _ = post_message(room=room, author=user, content="@room two")
    assert mention_count(membership=membership(room, other_user)) == 2
    listed = rooms_for_listing(user=other_user).get(pk=room.pk)
    assert (listed.mention_count, listed.unread_count) == (2, 3)

    answer = bob_api.post(f"/api/rooms/{room.pk}/read/", {"message_id": first.pk}, format="json")
    assert answer.status_code == 200, answer.content
    assert answer.json()["mention_count"] == 1
    mark_read(room=room, user=other_user, message_id=last.pk)
    assert mention_count(membership=membership(room, other_user)) == 0


def test_a_deleted_message_mentions_nobody_any_more(room, user, other_user):
    message, _ = post_message(room=room, author=user, content="@bob @room hi")
    assert mention_count(membership=membership(room, other_user)) == 2
    delete_message(message=message, actor=user, can_moderate=False)
    assert mention_count(membership=membership(room, other_user)) == 0
    answer = client_for(other_user).get(f"/api/rooms/{room.pk}/messages/").json()
    shown = answer["results"][-1]
    assert (shown["content_html"], shown["mentions"], shown["mentions_room"]) == ("", [], False)


def test_an_edit_renders_again_and_replaces_the_mentions(
    room, user, other_user, carol, broadcasts, committing
):
    message, _ = post_message(room=room, author=user, content="@bob look")
    with committing():
        edited = edit_message(message=message, editor=user, content="@carol look **now**")
    assert edited.mentions == [carol.pk]
    assert "<strong>now</strong>" in edited.content_html
    assert mentioned(edited) == {carol.pk}
    assert mention_count(membership=membership(room, other_user)) == 0
    assert mention_count(membership=membership(room, carol)) == 1
    (frame,) = [event for _, event in broadcasts if event.get("type") == "message_updated"]
    assert frame["message"]["mentions"] == [carol.pk]
    assert frame["message"]["content_html"] == edited.content_html


def test_system_notices_are_rendered_too(room):
    with transaction.atomic():
        notice = post_notice(room=lock_room(room.pk), content="Bob renamed the room to *x*")
    assert notice.content_html == "<p>Bob renamed the room to <em>x</em></p>\n"


def test_a_message_stored_before_rendering_is_rendered_when_shown(room, user, alice_api):
    message, _ = post_message(room=room, author=user, content="**old** @bob")
    Message.objects.filter(pk=message.pk).update(content_html="", mentions=[])
    shown = alice_api.get(f"/api/rooms/{room.pk}/messages/").json()["results"][-1]
    assert shown["content_html"] == "<p><strong>old</strong> @bob</p>\n"


def test_rerender_messages_stores_html_and_mentions(room, user, other_user):
    from django.core.management import call_command

    message, _ = post_message(room=room, author=user, content="**old** @bob")
    Message.objects.filter(pk=message.pk).update(content_html="", mentions=[])
    Mention.objects.filter(message=message).delete()
    call_command("rerender_messages", stdout=open("/dev/null", "w"))  # noqa: SIM115
    stored = Message.objects.get(pk=message.pk)
    assert stored.content_html.startswith('<p><strong>old</strong> <span class="mention"')
    assert stored.mentions == [other_user.pk]
    assert mentioned(stored) == {other_user.pk}


# -------------------------------------------------------------- the writer's cost


def test_a_batch_looks_its_names_up_with_one_query(room, user, other_user, carol):
    def queries_for(count: int) -> list[str]:
        posts = [(user, {"content": f"@bob @Carol @nobody{k} hi"}) for k in range(count)]
        with CaptureQueriesContext(connection) as captured:
            outcomes = post_batch(room_id=room.pk, posts=posts)
        assert all(isinstance(o, dict) and o["mentions"] for o in outcomes), outcomes
        return [q["sql"] for q in captured.captured_queries]

    one, many = queries_for(1), queries_for(20)
    assert len(one) == len(many)
    assert Mention.objects.filter(room=room).count() == 2 * 21


def test_text_without_an_at_sign_costs_no_mention_query(room, user):
    with CaptureQueriesContext(connection) as captured:
        post_batch(room_id=room.pk, posts=[(user, {"content": "plain *text*"})])
    assert not [q for q in captured.captured_queries if MENTION_TABLE in q["sql"]]
    assert not [q for q in captured.captured_queries if "LOWER(" in q["sql"].upper()]


# -------------------------------------------------------------- a real socket


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_here_reaches_a_member_with_an_open_socket_and_the_read_ack_counts(
    worker_connections_closed,
):
    alice = await sync_to_async(UserFactory)(username="alice")
    bob = await sync_to_async(UserFactory)(username="bob")
    room = await sync_to_async(make_room)(owner=alice, name="Live")
    await sync_to_async(add_member)(room, bob)
    alice_token = await sync_to_async(issue_tokens)(user=alice)
    bob_token = await sync_to_async(issue_tokens)(user=bob)
    async with signed_in(bob_token["access"]) as bob_socket:
        await request(bob_socket, {"type": "join", "room": room.pk}, ref="j")
        async with signed_in(alice_token["access"]) as alice_socket:
            await request(alice_socket, {"type": "join", "room": room.pk}, ref="j")
            before = await request(
                alice_socket, {"type": "message", "room": room.pk, "content": "hello"}, ref="m0"
            )
            ack = await request(
                alice_socket, {"type": "message", "room": room.pk, "content": "@here _ship_"}
            )
        await recv_type(bob_socket, "message")  # "hello"
        frame = await recv_type(bob_socket, "message")
        shown = frame["message"]
        assert shown == ack["message"]
        assert shown["mentions"] == [bob.pk]
        assert shown["content_html"] == (
            '<p><span class="mention mention-broadcast">@here</span> <em>ship</em></p>\n'
        )
        read = await request(
            bob_socket,
            {"type": "read", "room": room.pk, "message_id": before["message"]["id"]},
            ref="r",
        )
        assert read["mention_count"] == 1
        read = await request(
            bob_socket, {"type": "read", "room": room.pk, "message_id": shown["id"]}, ref="r2"
        )
        assert (read["unread_count"], read["mention_count"]) == (0, 0)
