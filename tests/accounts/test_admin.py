"""The user admin: online status, last seen, and deactivation, which must end every socket
and every token of the user at once.

Deactivation is asserted through `broadcasts` in every configuration; with REDIS_URL set,
the `live` tests also watch real sockets on the `chat_server` process get closed with 4401.
"""

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import httpx
import pytest
import websockets
from asgiref.sync import sync_to_async
from django.test import Client

from accounts.models import User
from accounts.presence import LocalPresence, RedisPresence, user_key
from accounts.services import issue_tokens, set_active
from tests.conftest import client_for
from tests.factories import UserFactory
from tests.live import WS, LiveServer

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/accounts/user/"
ME = "/api/auth/me/"


def change_url(user: User) -> str:
    return f"{CHANGELIST}{user.pk}/change/"


def action(name: str, *users: User) -> dict:
    return {"action": name, "_selected_action": [u.pk for u in users], "index": "0"}


def row_cells(html: str, name: str) -> dict[str, str]:
    """The inner HTML of each `field-<column>` cell in the changelist row linking to `name`."""
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", html, re.S):
        if f">{name}</a>" in row:
            return dict(re.findall(r'class="field-(\w+)[^"]*"[^>]*>(.*?)</t[dh]>', row, re.S))
    raise AssertionError(f"no changelist row for {name!r}")


def change_form_data(response) -> dict:
    """What a browser posts back from the change page as it stands."""
    form = response.context["adminform"].form
    data: dict = {"_save": "Save"}
    for name, field in form.fields.items():
        value = form[name].value()
        if field.disabled or value is None or value is False:
            continue
        if value is True:
            value = "on"
        elif isinstance(value, list | tuple):
            value = [str(v) for v in value]
        data[name] = value
    return data


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


def test_changelist_shows_online_status_and_last_seen(admin_client, user, other_user, mark_online):
    other_user.last_seen = datetime(2025, 3, 14, 15, 9, tzinfo=UTC)
    other_user.save(update_fields=["last_seen"])
    mark_online(user)

    response = admin_client.get(CHANGELIST)

    assert response.status_code == 200
    html = response.content.decode()
    assert ">Online</span>" in html
    assert ">Last seen</a>" in html
    alice, bob = row_cells(html, "alice"), row_cells(html, "bob")
    assert 'alt="True"' in alice["is_online"]
    assert 'alt="False"' in bob["is_online"]
    # Short, so the list fits 1366 px (UTC is the settings' TIME_ZONE).
    assert bob["seen"].strip() == "Mar 14, 15:09"
    assert alice["seen"].strip() == "-"


def test_changelist_searches_usernames(admin_client, user, other_user):
    response = admin_client.get(CHANGELIST, {"q": "ali"})

    assert {u.username for u in response.context["cl"].result_list} == {"alice"}


# ------------------------------------------------------------------ deactivation


def test_deactivate_action_closes_sockets_and_revokes_tokens(
    admin_client, user, other_user, alice_api, bob_api, broadcasts, committing
):
    assert alice_api.get(ME).status_code == 200

    with committing():
        response = admin_client.post(CHANGELIST, action("deactivate", user), follow=True)

    assert "Deactivated 1 user(s)." in response.content.decode()
    user.refresh_from_db()
    other_user.refresh_from_db()
    assert user.is_active is False
    assert other_user.is_active is True
    assert broadcasts == [(f"user.{user.pk}", {"type": "user_deactivated"})]
    assert alice_api.get(ME).status_code == 401
    assert bob_api.get(ME).status_code == 200


def test_deactivate_action_spares_the_acting_admin(
    admin_client, admin_user, user, broadcasts, committing
):
    with committing():
        response = admin_client.post(
            CHANGELIST, action("deactivate", admin_user, user), follow=True
        )

    assert "Deactivated 1 user(s)." in response.content.decode()
    admin_user.refresh_from_db()
    user.refresh_from_db()
    assert admin_user.is_active is True
    assert user.is_active is False
    assert broadcasts == [(f"user.{user.pk}", {"type": "user_deactivated"})]


def test_unticking_is_active_on_the_change_form_closes_sockets_and_revokes_tokens(
    admin_client, user, alice_api, broadcasts, committing
):
    data = change_form_data(admin_client.get(change_url(user)))
    assert data.pop("is_active") == "on"

    with committing():
        response = admin_client.post(change_url(user), data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    user.refresh_from_db()
    assert user.is_active is False
    assert broadcasts == [(f"user.{user.pk}", {"type": "user_deactivated"})]
    assert alice_api.get(ME).status_code == 401


def test_saving_the_change_form_with_is_active_ticked_closes_nothing(
    admin_client, user, alice_api, broadcasts, committing
):
    data = change_form_data(admin_client.get(change_url(user)))
    data["display_name"] = "Alice Renamed"

    with committing():
        response = admin_client.post(change_url(user), data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    user.refresh_from_db()
    assert (user.display_name, user.is_active) == ("Alice Renamed", True)
    assert broadcasts == []
    assert alice_api.get(ME).status_code == 200


def test_activate_action_lets_the_user_back_in_but_not_their_old_tokens(
    admin_client, user, alice_api, broadcasts, committing
):
    set_active(user=user, active=False)
    assert alice_api.get(ME).status_code == 401

    with committing():
        response = admin_client.post(CHANGELIST, action("activate", user), follow=True)

    assert "Activated 1 user(s)." in response.content.decode()
    user.refresh_from_db()
    assert user.is_active is True
    # The deactivation revoked what the user held; signing in again works.
    assert alice_api.get(ME).status_code == 401
    assert client_for(user).get(ME).status_code == 200
    assert broadcasts == []


# ------------------------------------------------------------------ staff only


def test_anonymous_and_non_staff_users_are_sent_to_the_login_page(client, user):
    anonymous = client.get(CHANGELIST)
    client.force_login(user)
    signed_in = client.get(CHANGELIST)

    for response in (anonymous, signed_in):
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/?next=")


def test_deactivate_without_the_csrf_token_is_refused(admin_user, user, broadcasts, committing):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)

    with committing():
        response = client.post(CHANGELIST, action("deactivate", user))

    assert response.status_code == 403
    user.refresh_from_db()
    assert user.is_active is True
    assert broadcasts == []


# --------------------------------------------------------------------- queries


def test_changelist_queries_do_not_grow_with_the_users(
    admin_client, django_assert_max_num_queries, mark_online, settings
):
    people = [UserFactory(username=f"member{n:03}") for n in range(100)]
    for person in people[::7]:
        mark_online(person)

    with django_assert_max_num_queries(15):
        response = admin_client.get(CHANGELIST)

    assert response.status_code == 200
    assert response.context["cl"].result_count == 101  # and the admin
    online = [u.username for u in response.context["cl"].result_list if u.online]
    assert online == [p.username for p in people[::7]]


# ------------------------------------------------------------- live (REDIS_URL)


@contextlib.asynccontextmanager
async def signed_in(server: LiveServer, token: str) -> AsyncIterator[WS]:
    async with await WS.connect(f"{server.ws_url}/ws/", token=token) as ws:
        await ws.recv_until("authenticated", timeout=10)
        yield ws


async def closed_with(ws: WS, timeout: float = 10.0) -> tuple[int | None, list[dict]]:
    """Read until the server closes the socket: its close code and the frames before it."""
    frames: list[dict] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(f"socket still open after {timeout}s: {frames}")
            try:
                frames.append(await ws.recv(left))
            except TimeoutError:
                continue
    except websockets.ConnectionClosed as closed:
        return (closed.rcvd.code if closed.rcvd else None), frames


async def status_of_me(server: LiveServer, token: str) -> int:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        response = await http.get(ME, headers={"Authorization": f"Bearer {token}"})
    return response.status_code


async def assert_sockets_closed_by_deactivation(
    server: LiveServer, deactivate, user: User, bystander: User
) -> None:
    """Two sockets of `user` and one of `bystander` are open; `deactivate()` runs the admin."""
    token = (await sync_to_async(issue_tokens)(user=user))["access"]
    other_token = (await sync_to_async(issue_tokens)(user=bystander))["access"]
    assert await status_of_me(server, token) == 200

    async with (
        signed_in(server, token) as first,
        signed_in(server, token) as second,
        signed_in(server, other_token) as other,
    ):
        await deactivate()
        for ws in (first, second):
            code, frames = await closed_with(ws)
            assert code == 4401
            assert any(f["type"] == "error" and f["code"] == "unauthenticated" for f in frames)
        assert (await other.request({"type": "ping"}))["type"] == "pong"

    assert await status_of_me(server, token) == 401
    assert await status_of_me(server, other_token) == 200


@pytest.mark.e2e
@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_deactivate_action_closes_sockets_on_the_server(
    server_via_redis, admin_client, user, other_user
):
    async def deactivate() -> None:
        response = await sync_to_async(admin_client.post)(CHANGELIST, action("deactivate", user))
        assert response.status_code == 302

    await assert_sockets_closed_by_deactivation(server_via_redis, deactivate, user, other_user)


@pytest.mark.e2e
@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_unticking_is_active_closes_sockets_on_the_server(
    server_via_redis, admin_client, user, other_user
):
    async def deactivate() -> None:
        page = await sync_to_async(admin_client.get)(change_url(user))
        data = change_form_data(page)
        del data["is_active"]
        response = await sync_to_async(admin_client.post)(change_url(user), data)
        assert response.status_code == 302

    await assert_sockets_closed_by_deactivation(server_via_redis, deactivate, user, other_user)
