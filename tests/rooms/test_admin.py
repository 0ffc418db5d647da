"""The room admin: its changelist, its actions, what they store and what reaches the sockets.

The admin runs in the test process. Its broadcasts are asserted with `broadcasts` in every
configuration; with REDIS_URL set, the `live` tests also watch a real socket on the
`chat_server` process receive them (through Redis, the only road between two processes).
"""

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from asgiref.sync import sync_to_async
from django.contrib.admin.sites import site
from django.test import Client, RequestFactory

from accounts.presence import LocalPresence, RedisPresence, user_key
from messaging.changes import delete_message
from messaging.models import Message
from messaging.posting import post_message
from rooms.models import Membership, Room
from rooms.services import update_room
from tests.factories import UserFactory, add_member, make_room
from tests.live import socket_in

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/rooms/room/"


def change_url(room: Room) -> str:
    return f"{CHANGELIST}{room.pk}/change/"


def delete_url(room: Room) -> str:
    return f"{CHANGELIST}{room.pk}/delete/"


def action(name: str, *rooms: Room, **extra: str) -> dict:
    """The POST of the changelist's action form (`index` is the form's position)."""
    return {"action": name, "_selected_action": [r.pk for r in rooms], "index": "0", **extra}


def row_cells(html: str, name: str) -> dict[str, str]:
    """The text of each `field-<column>` cell in the changelist row whose link reads `name`."""
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", html, re.S):
        if f">{name}</a>" in row:
            cells = re.findall(r'class="field-(\w+)[^"]*"[^>]*>(.*?)</t[dh]>', row, re.S)
            return {column: re.sub(r"<[^>]+>", "", text).strip() for column, text in cells}
    raise AssertionError(f"no changelist row for {name!r}")


def shown(response) -> set[str]:
    return {room.name for room in response.context["cl"].result_list}


def say(room: Room, author, content: str) -> Message:
    return post_message(room=room, author=author, content=content)[0]


def form_data(response) -> dict:
    """What a browser posts back from an add or change page as it stands, inlines included."""

    def values(form, prefix: str = "") -> dict:
        data = {}
        for name, field in form.fields.items():
            value = form[name].value()
            if field.disabled or value is None or value is False:
                continue
            data[f"{prefix}{name}"] = "on" if value is True else value
        return data

    data = {"_save": "Save", **values(response.context["adminform"].form)}
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        data.update(
            {
                f"{formset.prefix}-{key}": value
                for key, value in formset.management_form.initial.items()
            }
        )
        for n, form in enumerate(formset.initial_forms):
            data.update(values(form, f"{formset.prefix}-{n}-"))
    return data


def add_inline_row(data: dict, **fields) -> dict:
    """`data` with one more membership row."""
    n = int(data["memberships-TOTAL_FORMS"])
    data["memberships-TOTAL_FORMS"] = str(n + 1)
    data.update({f"memberships-{n}-{name}": value for name, value in fields.items()})
    return data


def inline_row(data: dict, user) -> str:
    """The prefix of the membership row of `user` in `data`."""
    (prefix,) = [k[: -len("user")] for k, v in data.items() if k.endswith("-user") and v == user.pk]
    return prefix


@pytest.fixture
def mark_online(monkeypatch, settings) -> Iterator:
    """Mark users online in a presence store of this test's own (on Redis under a private
    prefix when REDIS_URL is set), which concurrent test runs on the same Redis never clear."""
    if settings.REDIS_URL:
        store = RedisPresence(settings.REDIS_URL, f"test-admin-{uuid.uuid4().hex[:8]}", ttl=60)
    else:
        store = LocalPresence(ttl=60)
    monkeypatch.setattr("accounts.presence.presence", lambda: store)
    yield lambda user: store.enter(user_key(user.pk), uuid.uuid4().hex)
    store.clear()


# ------------------------------------------------------------------- changelist


def test_changelist_shows_member_message_and_online_counts(admin_client, user, mark_online):
    bob, carol = UserFactory(username="bob"), UserFactory(username="carol")
    lobby = make_room(owner=user, name="Lobby")
    add_member(lobby, bob)
    add_member(lobby, carol)
    for text in ("one", "two", "three"):
        say(lobby, user, text)
    delete_message(message=say(lobby, bob, "oops"), actor=bob, can_moderate=False)
    make_room(name="Quiet")
    mark_online(user)
    mark_online(carol)

    response = admin_client.get(CHANGELIST)

    assert response.status_code == 200
    html = response.content.decode()
    for header in (">Members</a>", ">Messages</a>", ">Online</span>"):
        assert header in html
    lobby_row = row_cells(html, "Lobby")
    assert lobby_row["member_count"] == "3"
    assert lobby_row["message_count"] == "3"  # the deleted one is not counted
    assert lobby_row["online_members"] == "2"
    quiet_row = row_cells(html, "Quiet")
    assert (quiet_row["member_count"], quiet_row["message_count"]) == ("0", "0")
    assert quiet_row["online_members"] == "0"


def test_changelist_columns_are_short_enough_to_fit(admin_client, user):
    room = make_room(owner=user, name="Dated")
    Room.objects.filter(pk=room.pk).update(
        created_at=datetime(2025, 3, 14, 15, 9, tzinfo=UTC),
        last_message_at=datetime(2025, 3, 15, 8, 30, tzinfo=UTC),
    )

    html = admin_client.get(CHANGELIST).content.decode()

    row = next(r for r in re.findall(r"<tr[^>]*>(.*?)</tr>", html, re.S) if ">Dated</a>" in r)
    cells = dict(re.findall(r'class="field-(\w+)[^"]*"[^>]*>(.*?)</t[dh]>', row, re.S))
    assert cells["created"].strip() == "Mar 14, 2025"
    assert cells["last_message"].strip() == "Mar 15, 08:30"
    assert 'alt="False"' in cells["archived"]


def test_changelist_searches_room_names(admin_client):
    for name in ("Python Club", "Rust club", "Gardening"):
        make_room(name=name)

    response = admin_client.get(CHANGELIST, {"q": "club"})

    assert response.status_code == 200
    assert shown(response) == {"Python Club", "Rust club"}


def test_changelist_filters_by_kind_and_archived(admin_client, user):
    make_room(name="Open")
    make_room(owner=user, name="Secret", kind=Room.Kind.PRIVATE)
    update_room(room=make_room(name="Old"), actor=user, is_archived=True)

    private = admin_client.get(CHANGELIST, {"kind__exact": "private"})
    archived = admin_client.get(CHANGELIST, {"is_archived__exact": "1"})
    live_public = admin_client.get(CHANGELIST, {"kind__exact": "public", "is_archived__exact": "0"})

    assert shown(private) == {"Secret"}
    assert shown(archived) == {"Old"}
    assert shown(live_public) == {"Open"}


def test_change_page_lists_the_memberships_inline(admin_client, user, other_user):
    room = make_room(owner=user, name="Inline")
    add_member(room, other_user, role=Membership.Role.ADMIN)
    make_room(owner=UserFactory(username="stranger"), name="Elsewhere")

    response = admin_client.get(change_url(room))

    assert response.status_code == 200
    (inline,) = response.context["inline_admin_formsets"]
    rows = {form.instance.user.username: form.instance.role for form in inline.formset.forms}
    assert rows == {"alice": "owner", "bob": "admin"}
    assert "stranger" not in response.content.decode()


def test_members_are_added_by_searching_their_name_not_by_typing_an_id(admin_client, user):
    room = make_room(owner=user, name="Searchable")
    UserFactory(username="carol")

    page = admin_client.get(change_url(room)).content.decode()
    found = admin_client.get(
        "/admin/autocomplete/",
        {"term": "car", "app_label": "rooms", "model_name": "membership", "field_name": "user"},
    )

    assert "admin-autocomplete" in page and "vForeignKeyRawIdAdminField" not in page
    assert [hit["text"] for hit in found.json()["results"]] == ["carol"]


# ------------------------------------------------------------ add and change forms


def test_change_form_of_general_offers_no_rename_and_no_archive(admin_client, general):
    page = admin_client.get(change_url(general))
    data = form_data(page)

    assert page.status_code == 200
    assert {"name", "is_archived", "kind"}.isdisjoint(page.context["adminform"].form.fields)
    data.update(name="Renamed", is_archived="on", description="Everyone, really.")
    response = admin_client.post(change_url(general), data)

    assert response.status_code == 302
    general.refresh_from_db()
    assert (general.name, general.is_archived) == ("General", False)
    assert general.description == "Everyone, really."


def test_change_form_renames_and_archives_through_the_service(
    admin_client, user, broadcasts, committing
):
    room = make_room(owner=user, name="Before")
    data = form_data(admin_client.get(change_url(room)))
    data.update(name="After", is_archived="on")

    with committing():
        response = admin_client.post(change_url(room), data)

    assert response.status_code == 302
    room.refresh_from_db()
    assert (room.name, room.is_archived) == ("After", True)
    notices = list(Message.objects.filter(room=room).values_list("payload__event", flat=True))
    assert notices == ["room_renamed", "room_archived"]
    assert [(group, event["type"]) for group, event in broadcasts] == [
        (f"room.{room.pk}", "message"),
        (f"room.{room.pk}", "message"),
        (f"user.{user.pk}", "room_updated"),  # one change of the members' own stream
    ]


def test_change_form_shows_kind_and_creator_read_only(admin_client, user):
    room = make_room(owner=user, name="Fixed Kind")

    form = admin_client.get(change_url(room)).context["adminform"].form

    # update_room changes neither, so the form must not pretend to.
    assert {"kind", "created_by"}.isdisjoint(form.fields)
    assert "name" in form.fields


def test_add_form_refuses_direct_rooms(admin_client):
    data = form_data(admin_client.get(f"{CHANGELIST}add/"))
    data.update(name="Sneaky DM", kind="direct")

    response = admin_client.post(f"{CHANGELIST}add/", data)

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["kind"]
    assert not Room.objects.exists()


def test_add_form_creates_a_room_owned_by_its_creator(admin_client, user):
    data = form_data(admin_client.get(f"{CHANGELIST}add/"))
    data.update(name="From Admin", kind="private", created_by=user.pk)

    response = admin_client.post(f"{CHANGELIST}add/", data)

    assert response.status_code == 302
    room = Room.objects.get(name="From Admin")
    assert (room.kind, room.created_by) == ("private", user)
    assert Membership.objects.get(room=room).user == user


def test_adding_a_member_in_the_inline_goes_through_the_service(
    admin_client, admin_user, user, other_user, broadcasts, committing
):
    room = make_room(owner=user, name="Grow", kind=Room.Kind.PRIVATE)
    data = add_inline_row(
        form_data(admin_client.get(change_url(room))), user=other_user.pk, role="member"
    )

    with committing():
        response = admin_client.post(change_url(room), data)

    assert response.status_code == 302
    assert Membership.objects.get(room=room, user=other_user).role == "member"
    notice = Message.objects.get(room=room)
    assert notice.content == "admin added Bob."
    assert notice.payload == {
        "event": "member_joined",
        "user_id": other_user.pk,
        "by": admin_user.pk,
    }
    assert [(group, event["type"]) for group, event in broadcasts] == [
        (f"room.{room.pk}", "message"),
        (f"user.{other_user.pk}", "room_added"),  # Bob's open pages learn of the room
    ]


def test_removing_a_member_in_the_inline_revokes_their_sockets(
    admin_client, user, other_user, broadcasts, committing
):
    room = make_room(owner=user, name="Shrink", kind=Room.Kind.PRIVATE)
    add_member(room, other_user)
    data = form_data(admin_client.get(change_url(room)))
    data[f"{inline_row(data, other_user)}DELETE"] = "on"

    with committing():
        response = admin_client.post(change_url(room), data)

    assert response.status_code == 302
    assert not Membership.objects.filter(room=room, user=other_user).exists()
    assert Membership.objects.filter(room=room, user=user).exists()
    assert Message.objects.get(room=room).payload["event"] == "member_left"
    # The removed user's sockets stop receiving the private room at once.
    removed = {"type": "room_removed", "room": room.pk, "user_pos": 1}
    assert (f"user.{other_user.pk}", removed) in broadcasts


def test_changing_a_role_in_the_inline_goes_through_the_service(admin_client, user, other_user):
    room = make_room(owner=user, name="Promote")
    add_member(room, other_user)
    data = form_data(admin_client.get(change_url(room)))
    data[f"{inline_row(data, other_user)}role"] = "admin"

    response = admin_client.post(change_url(room), data)

    assert response.status_code == 302
    assert Membership.objects.get(room=room, user=other_user).role == "admin"


def test_the_last_owner_cannot_be_removed_in_the_inline(admin_client, user, other_user):
    room = make_room(owner=user, name="Keep Owner")
    add_member(room, other_user)
    data = form_data(admin_client.get(change_url(room)))
    data[f"{inline_row(data, user)}DELETE"] = "on"

    response = admin_client.post(change_url(room), data, follow=True)

    assert response.status_code == 200
    assert "last owner" in response.content.decode()
    assert Membership.objects.get(room=room, user=user).role == "owner"


# ---------------------------------------------------------------------- actions


def test_archive_action_stores_the_flag_and_a_system_message(
    admin_client, user, broadcasts, committing
):
    room = make_room(owner=user, name="To Archive")
    other = make_room(name="Untouched")

    with committing():
        response = admin_client.post(CHANGELIST, action("archive", room), follow=True)

    assert response.status_code == 200
    assert "Archived 1 room(s)." in response.content.decode()
    room.refresh_from_db()
    other.refresh_from_db()
    assert room.is_archived is True
    assert other.is_archived is False
    notice = Message.objects.get(room=room)
    assert notice.type == Message.Type.SYSTEM
    assert notice.payload["event"] == "room_archived"
    assert notice.content == "admin archived the room."
    assert [(group, event["type"]) for group, event in broadcasts] == [
        (f"room.{room.pk}", "message"),
        (f"user.{user.pk}", "room_updated"),
    ]
    event = broadcasts[0][1]
    assert event["pos"] == room.pos == notice.pos
    assert event["message"]["id"] == notice.pk


def test_unarchive_action_clears_the_flag_and_posts_a_system_message(
    admin_client, user, broadcasts, committing
):
    room = make_room(owner=user, name="To Unarchive")
    update_room(room=room, actor=user, is_archived=True)

    with committing():
        response = admin_client.post(CHANGELIST, action("unarchive", room), follow=True)

    assert "Unarchived 1 room(s)." in response.content.decode()
    room.refresh_from_db()
    assert room.is_archived is False
    notice = Message.objects.filter(room=room).latest("seq")
    assert notice.payload["event"] == "room_unarchived"
    assert [(group, event["type"], event.get("pos")) for group, event in broadcasts] == [
        (f"room.{room.pk}", "message", room.pos),
        (f"user.{user.pk}", "room_updated", None),
    ]


def test_archive_action_refuses_general_with_an_error_message(
    admin_client, general, broadcasts, committing
):
    with committing():
        response = admin_client.post(CHANGELIST, action("archive", general), follow=True)

    html = response.content.decode()
    assert "The General room cannot be archived." in html
    assert "Archived 0 room(s)." in html
    general.refresh_from_db()
    assert general.is_archived is False
    assert broadcasts == []


def test_announcement_action_first_shows_its_form(admin_client, broadcasts, committing):
    rooms = [make_room(name="Ann One"), make_room(name="Ann Two")]

    with committing():
        response = admin_client.post(CHANGELIST, action("post_announcement", *rooms))

    assert response.status_code == 200
    assert "admin/rooms/announcement.html" in [t.name for t in response.templates]
    html = response.content.decode()
    assert "<li>Ann One</li>" in html and "<li>Ann Two</li>" in html
    assert 'name="content"' in html
    assert 'name="apply"' in html
    assert "cancel-link" in html  # a way back without posting
    assert "socket" not in html  # said for an operator, not a developer
    assert not response.context["form"].is_bound
    assert not Message.objects.exists()
    assert broadcasts == []


def test_announcement_action_posts_an_announcement_in_each_room(
    admin_client, admin_user, broadcasts, committing
):
    rooms = [make_room(name="News A"), make_room(name="News B")]
    skipped = make_room(name="Not Selected")
    data = action("post_announcement", *rooms, apply="1", title="Heads up", content="Maintenance")
    del data["index"]  # the intermediate page's form carries no index

    with committing():
        response = admin_client.post(CHANGELIST, data, follow=True)

    assert "Announcement posted in 2 room(s)." in response.content.decode()
    for room in rooms:
        message = Message.objects.get(room=room)
        assert message.type == Message.Type.ANNOUNCEMENT
        assert message.sender == admin_user
        assert (message.title, message.content) == ("Heads up", "Maintenance")
    assert not Message.objects.filter(room=skipped).exists()
    assert sorted(group for group, _ in broadcasts) == sorted(f"room.{r.pk}" for r in rooms)
    for group, event in broadcasts:
        assert event["type"] == "message"
        assert event["message"]["type"] == "announcement"
        assert event["message"]["sender"]["username"] == "admin"
        assert event["message"]["content"] == "Maintenance"
        assert group == f"room.{event['room']}"


def test_announcement_without_content_shows_the_form_again(admin_client, broadcasts, committing):
    room = make_room(name="Blank")
    data = action("post_announcement", room, apply="1", title="t", content="")

    with committing():
        response = admin_client.post(CHANGELIST, data)

    assert response.status_code == 200
    assert response.context["form"].errors["content"]
    assert not Message.objects.exists()
    assert broadcasts == []


def test_announcement_in_an_archived_room_is_refused(admin_client, user, broadcasts, committing):
    room = make_room(owner=user, name="Frozen")
    update_room(room=room, actor=user, is_archived=True)
    data = action("post_announcement", room, apply="1", content="hello?")

    with committing():
        response = admin_client.post(CHANGELIST, data, follow=True)

    html = response.content.decode()
    assert "archived and read-only" in html
    assert "Announcement posted in 0 room(s)." in html
    assert not Message.objects.filter(room=room, type=Message.Type.ANNOUNCEMENT).exists()
    assert broadcasts == []


def test_purge_action_first_asks_to_confirm_with_counts(admin_client, user, broadcasts, committing):
    busy, quiet = make_room(owner=user, name="Busy"), make_room(name="Silent")
    for n in range(3):
        say(busy, user, f"m{n}")

    with committing():
        response = admin_client.post(CHANGELIST, action("purge_messages", busy, quiet))

    assert response.status_code == 200
    assert "admin/rooms/purge_confirm.html" in [t.name for t in response.templates]
    html = response.content.decode()
    assert "Busy: 3 message(s)" in html
    assert "Silent: 0 message(s)" in html
    assert Message.objects.filter(room=busy).count() == 3
    assert broadcasts == []


def test_purge_action_with_apply_deletes_the_messages(admin_client, user, broadcasts, committing):
    room, kept = make_room(owner=user, name="Purge Me"), make_room(owner=user, name="Keep Me")
    for n in range(3):
        say(room, user, f"m{n}")
    survivor = say(kept, user, "stays")
    data = action("purge_messages", room, apply="1")
    del data["index"]

    with committing():
        response = admin_client.post(CHANGELIST, data, follow=True)

    assert "Removed 3 message(s)." in response.content.decode()
    (notice,) = Message.objects.filter(room=room)
    assert notice.type == Message.Type.SYSTEM
    assert notice.payload["event"] == "room_purged"
    assert notice.seq == 4  # positions are not reused
    assert list(Message.objects.filter(room=kept)) == [survivor]
    kinds = [(group, event["type"]) for group, event in broadcasts]
    assert (f"room.{room.pk}", "room_purged") in kinds
    assert (f"room.{room.pk}", "message") in kinds
    assert all(group == f"room.{room.pk}" for group, _ in broadcasts)
    purged = next(event for _, event in broadcasts if event["type"] == "room_purged")
    assert purged == {"type": "room_purged", "room": room.pk}


# ----------------------------------------------------------------------- delete


def test_general_cannot_be_deleted_through_the_admin(admin_client, admin_user, general):
    request = RequestFactory().get("/")
    request.user = admin_user
    room_admin = site.get_model_admin(Room)

    assert room_admin.has_delete_permission(request, general) is False
    assert room_admin.has_delete_permission(request, make_room(name="Other")) is True
    page = admin_client.get(change_url(general)).content.decode()
    assert delete_url(general) not in page
    assert admin_client.get(delete_url(general)).status_code == 403
    assert admin_client.post(delete_url(general), {"post": "yes"}).status_code == 403
    assert Room.objects.filter(pk=general.pk).exists()


def test_deleting_a_room_through_the_admin_removes_it(admin_client, user, broadcasts, committing):
    room = make_room(owner=user, name="Doomed")
    say(room, user, "last words")
    room_id = room.pk

    assert delete_url(room) in admin_client.get(change_url(room)).content.decode()
    with committing():
        response = admin_client.post(delete_url(room), {"post": "yes"})

    assert response.status_code == 302
    assert not Room.objects.filter(pk=room_id).exists()
    assert not Message.objects.filter(room_id=room_id).exists()
    assert not Membership.objects.filter(room_id=room_id).exists()
    assert broadcasts == [
        (f"user.{user.pk}", {"type": "room_deleted", "room": room_id, "user_pos": 1}),
        (f"room.{room_id}", {"type": "room_deleted", "room": room_id}),
    ]


# ------------------------------------------------------------------ staff only


def test_anonymous_users_are_sent_to_the_login_page(client):
    response = client.get(CHANGELIST)

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=")


def test_non_staff_users_are_sent_to_the_login_page(client, user):
    client.force_login(user)

    response = client.get(CHANGELIST)

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=")


def test_an_action_without_the_csrf_token_is_refused(admin_user, broadcasts, committing):
    room = make_room(name="Csrf")
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)

    with committing():
        response = client.post(CHANGELIST, action("archive", room))

    assert response.status_code == 403
    room.refresh_from_db()
    assert room.is_archived is False
    assert broadcasts == []


# --------------------------------------------------------------------- queries


def test_changelist_queries_do_not_grow_with_the_rooms(
    admin_client, django_assert_max_num_queries, mark_online
):
    people = [UserFactory() for _ in range(5)]
    for n in range(100):
        room = make_room(owner=people[n % 5], name=f"Bulk {n:03}")
        add_member(room, people[(n + 1) % 5])
        if n % 3 == 0:
            say(room, people[n % 5], "hello")
    mark_online(people[0])

    with django_assert_max_num_queries(15):
        response = admin_client.get(CHANGELIST, {"o": "1"})  # by name: Bulk 000 first

    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 50
    assert response.context["cl"].result_count == 100
    first = row_cells(response.content.decode(), "Bulk 000")
    assert (first["member_count"], first["message_count"], first["online_members"]) == (
        "2",
        "1",
        "1",
    )


# ------------------------------------------------------------- live (REDIS_URL)


@pytest.mark.e2e
@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_archive_reaches_sockets_on_the_server(server_via_redis, admin_client, user):
    room = await sync_to_async(make_room)(owner=user, name="Live Archive")

    async with socket_in(server_via_redis, room, user) as ws:
        response = await sync_to_async(admin_client.post)(CHANGELIST, action("archive", room))
        assert response.status_code == 302
        frame = await ws.recv_until("message", timeout=10, room=room.pk)

    assert frame["message"]["type"] == "system"
    assert frame["message"]["payload"]["event"] == "room_archived"
    assert frame["pos"] == (await Room.objects.aget(pk=room.pk)).pos


@pytest.mark.e2e
@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_announcement_reaches_sockets_on_the_server(server_via_redis, admin_client, user):
    room = await sync_to_async(make_room)(owner=user, name="Live News")
    data = {"action": "post_announcement", "_selected_action": [room.pk], "apply": "1"}

    async with socket_in(server_via_redis, room, user) as ws:
        response = await sync_to_async(admin_client.post)(
            CHANGELIST, {**data, "title": "Hi", "content": "Live announcement"}
        )
        assert response.status_code == 302
        frame = await ws.recv_until("message", timeout=10, room=room.pk)

    assert frame["message"]["type"] == "announcement"
    assert frame["message"]["content"] == "Live announcement"
    assert frame["message"]["sender"]["username"] == "admin"


@pytest.mark.e2e
@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_purge_reaches_sockets_on_the_server(server_via_redis, admin_client, user):
    room = await sync_to_async(make_room)(owner=user, name="Live Purge")
    await sync_to_async(say)(room, user, "soon gone")
    data = {"action": "purge_messages", "_selected_action": [room.pk], "apply": "1"}

    async with socket_in(server_via_redis, room, user) as ws:
        response = await sync_to_async(admin_client.post)(CHANGELIST, data)
        assert response.status_code == 302
        frame = await ws.recv_until("room_purged", timeout=10)

    assert frame == {"type": "room_purged", "room": room.pk}
    assert await Message.objects.filter(room=room).acount() == 1  # the notice


@pytest.mark.e2e
@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_room_deletion_reaches_sockets_on_the_server(server_via_redis, admin_client, user):
    room = await sync_to_async(make_room)(owner=user, name="Live Delete")

    async with socket_in(server_via_redis, room, user) as ws:
        response = await sync_to_async(admin_client.post)(delete_url(room), {"post": "yes"})
        assert response.status_code == 302
        frame = await ws.recv_until("room_deleted", timeout=10)

    # From the room, or from the owner's own stream (with `user_pos`): either says it.
    assert (frame["type"], frame["room"]) == ("room_deleted", room.pk)
    assert not await Room.objects.filter(pk=room.pk).aexists()


@pytest.mark.e2e
@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_inline_removal_unsubscribes_the_members_sockets_on_the_server(
    server_via_redis, admin_client, user, other_user
):
    room = await sync_to_async(make_room)(owner=user, name="Live Private", kind="private")
    await sync_to_async(add_member)(room, other_user)
    page = await sync_to_async(admin_client.get)(change_url(room))
    data = form_data(page)
    data[f"{inline_row(data, other_user)}DELETE"] = "on"

    async with socket_in(server_via_redis, room, other_user) as ws:
        response = await sync_to_async(admin_client.post)(change_url(room), data)
        assert response.status_code == 302
        left = await ws.recv_until("user_left", timeout=10, room=room.pk)
        await ws.recv_until("room_removed", timeout=10, room=room.pk)  # bob's own stream
        await sync_to_async(say)(room, user, "not for bob any more")
        await ws.no_frame(within=1.0)

    assert left["user"]["id"] == other_user.pk
