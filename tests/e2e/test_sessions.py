"""Credentials end, and the sockets they opened with them, against real servers.

- A password change (the admin's form) and "sign out everywhere" close every socket the
  user's older tokens and sessions opened, with 4401, and their refresh tokens stop
  working; a sign-in afterwards works.
- A socket opened with the session cookie ends with its session: on /logout/ of that
  session (another session of the same user keeps its socket), and when it expires.
- No refresh token outlives JWT_REFRESH_MAX_DAYS after its sign-in.
- With Redis, all of this reaches sockets on another process.
"""

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import httpx
import pytest
import websockets
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.contrib.sessions.models import Session
from django.utils import timezone
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.models import User
from accounts.services import issue_tokens
from accounts.tokens import AUTH_TIME_CLAIM, GENERATION_CLAIM
from tests.factories import PASSWORD, UserFactory
from tests.live import WAIT, WS, LiveServer, server_environment

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.asyncio,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("worker_connections_closed"),
]

ME = "/api/auth/me/"
REFRESH = "/api/auth/refresh/"
NEW_PASSWORD = "violet-Harbor-2719"


# ------------------------------------------------------------------ helpers


def with_server_password(user: User) -> User:
    """The servers check passwords with their own hashers (the tests' MD5 is not one)."""
    User.objects.filter(pk=user.pk).update(password=make_password(PASSWORD, hasher="pbkdf2_sha256"))
    return user


@pytest.fixture
def alice(db) -> User:
    return with_server_password(UserFactory(username="alice"))


@pytest.fixture
def bob(db) -> User:
    return UserFactory(username="bob")


@pytest.fixture
def root(db) -> User:
    return with_server_password(UserFactory(username="root", is_staff=True, is_superuser=True))


async def tokens_of(user: User) -> dict[str, str]:
    """A sign-in of `user` as it stands now (its token generation read afresh)."""
    current = await User.objects.aget(pk=user.pk)
    return await sync_to_async(issue_tokens)(user=current)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


async def page_session(server: LiveServer, user: User, login: str = "/login/") -> httpx.AsyncClient:
    """An HTTP client signed in through a login form (the page's, or the admin's)."""
    client = httpx.AsyncClient(base_url=server.url, timeout=WAIT)
    page = await client.get(login)
    answer = await client.post(
        login,
        data={
            "username": user.username,
            "password": PASSWORD,
            "csrfmiddlewaretoken": csrf_of(page.text),
        },
    )
    assert answer.status_code == 302, answer.text
    return client


@contextlib.asynccontextmanager
async def token_socket(server: LiveServer, access: str) -> AsyncIterator[WS]:
    async with await WS.connect(f"{server.ws_url}/ws/", token=access) as ws:
        await ws.recv_until("authenticated")
        yield ws


@contextlib.asynccontextmanager
async def session_socket(server: LiveServer, session: httpx.AsyncClient) -> AsyncIterator[WS]:
    cookie = f"{settings.SESSION_COOKIE_NAME}={session.cookies[settings.SESSION_COOKIE_NAME]}"
    async with await WS.connect(
        f"{server.ws_url}/ws/", additional_headers={"Cookie": cookie}
    ) as ws:
        await ws.recv_until("authenticated")
        yield ws


async def closed_with(ws: WS, within: float = WAIT) -> tuple[int | None, list[dict]]:
    """Read until the server closes the socket: its close code and the frames before."""
    frames: list[dict] = []
    deadline = asyncio.get_running_loop().time() + within
    try:
        while True:
            left = deadline - asyncio.get_running_loop().time()
            assert left > 0, f"socket still open after {within}s: {frames}"
            with contextlib.suppress(TimeoutError):
                frames.append(await ws.recv(left))
    except websockets.ConnectionClosed as closed:
        return (closed.rcvd.code if closed.rcvd else None), frames


async def assert_closed_unauthenticated(*sockets: WS) -> None:
    for code, frames in await asyncio.gather(*(closed_with(ws) for ws in sockets)):
        assert code == 4401, frames
        assert [f["code"] for f in frames if f["type"] == "error"] == ["unauthenticated"]


async def assert_open(*sockets: WS) -> None:
    for ws in sockets:
        assert (await ws.request({"type": "ping"}))["type"] == "pong"


async def refresh_status(server: LiveServer, refresh: str) -> int:
    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as http:
        return (await http.post(REFRESH, json={"refresh": refresh})).status_code


async def me_status(server: LiveServer, access: str) -> int:
    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as http:
        return (await http.get(ME, headers={"Authorization": f"Bearer {access}"})).status_code


async def sign_out_everywhere(server: LiveServer, access: str) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as http:
        answer = await http.post(
            "/api/auth/logout/", json={"all": True}, headers={"Authorization": f"Bearer {access}"}
        )
    assert answer.status_code == 205, answer.text


async def page_logout(session: httpx.AsyncClient) -> None:
    answer = await session.post(
        "/logout/", data={"csrfmiddlewaretoken": session.cookies["csrftoken"]}
    )
    assert answer.status_code == 302, answer.text


@pytest.fixture(scope="module")
def other_process(chat_server) -> Iterator[LiveServer]:
    """A second server process beside `chat_server`, sharing its database and Redis."""
    if not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL: without Redis a process cannot reach another's sockets")
    server = LiveServer(server_environment())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fresh_server(chat_server) -> Iterator[LiveServer]:
    """A server started for one test. The admin writes a LogEntry naming a content type,
    and a long-lived server caches content type ids, which the flush between transactional
    tests renumbers: its cached ids would name rows that are gone."""
    server = LiveServer(server_environment())
    server.start()
    yield server
    server.stop()


# --------------------------------------------------------- a password change


async def test_a_password_changed_in_the_admin_closes_the_users_sockets(
    fresh_server, alice, bob, root
):
    chat_server = fresh_server
    old = await tokens_of(alice)
    session = await page_session(chat_server, alice)
    admin = await page_session(chat_server, root, login="/admin/login/")
    form_url = f"/admin/accounts/user/{alice.pk}/password/"
    async with (
        token_socket(chat_server, old["access"]) as by_token,
        session_socket(chat_server, session) as by_session,
        token_socket(chat_server, (await tokens_of(bob))["access"]) as bystander,
    ):
        form = await admin.get(form_url)
        changed = await admin.post(
            form_url,
            data={
                "password1": NEW_PASSWORD,
                "password2": NEW_PASSWORD,
                "usable_password": "true",
                "csrfmiddlewaretoken": csrf_of(form.text),
            },
        )
        assert changed.status_code == 302, changed.text

        await assert_closed_unauthenticated(by_token, by_session)
        await assert_open(bystander)

    assert await refresh_status(chat_server, old["refresh"]) == 401
    assert await me_status(chat_server, old["access"]) == 401
    assert (await session.get(ME)).status_code in (401, 403)
    for client in (session, admin):
        await client.aclose()


# --------------------------------------------------------- sign out everywhere


async def test_sign_out_everywhere_closes_every_socket_of_the_user(chat_server, alice, bob):
    first, second = await tokens_of(alice), await tokens_of(alice)
    session = await page_session(chat_server, alice)
    async with (
        token_socket(chat_server, first["access"]) as one,
        token_socket(chat_server, second["access"]) as two,
        session_socket(chat_server, session) as three,
        token_socket(chat_server, (await tokens_of(bob))["access"]) as bystander,
    ):
        await sign_out_everywhere(chat_server, first["access"])

        await assert_closed_unauthenticated(one, two, three)
        await assert_open(bystander)

    for pair in (first, second):
        assert await refresh_status(chat_server, pair["refresh"]) == 401
        assert await me_status(chat_server, pair["access"]) == 401
    # A sign-in afterwards works, and its socket stays open.
    fresh = await tokens_of(alice)
    async with token_socket(chat_server, fresh["access"]) as again:
        await assert_open(again)
    await session.aclose()


async def test_sign_out_everywhere_reaches_sockets_on_another_process(
    chat_server, other_process, alice
):
    tokens = await tokens_of(alice)
    session = await page_session(chat_server, alice)
    async with (
        token_socket(other_process, tokens["access"]) as there,
        session_socket(other_process, session) as there_too,
    ):
        await sign_out_everywhere(chat_server, tokens["access"])

        await assert_closed_unauthenticated(there, there_too)
    await session.aclose()


# ------------------------------------------------------------- page sessions


async def test_signing_out_of_a_page_closes_that_sessions_sockets_only(chat_server, alice):
    signing_out = await page_session(chat_server, alice)
    staying = await page_session(chat_server, alice)
    async with (
        session_socket(chat_server, signing_out) as ending,
        session_socket(chat_server, staying) as kept,
        token_socket(chat_server, (await tokens_of(alice))["access"]) as by_token,
    ):
        await page_logout(signing_out)

        await assert_closed_unauthenticated(ending)
        await assert_open(kept, by_token)
    for client in (signing_out, staying):
        await client.aclose()


async def test_signing_out_of_a_page_reaches_its_sockets_on_another_process(
    chat_server, other_process, alice
):
    session = await page_session(chat_server, alice)
    async with session_socket(other_process, session) as there:
        await page_logout(session)

        await assert_closed_unauthenticated(there)
    await session.aclose()


async def test_a_session_socket_closes_when_its_session_expires(chat_server, alice):
    session = await page_session(chat_server, alice)
    key = session.cookies[settings.SESSION_COOKIE_NAME]
    soon = timezone.now() + timedelta(seconds=3)
    await sync_to_async(Session.objects.filter(session_key=key).update)(expire_date=soon)

    async with session_socket(chat_server, session) as ws:
        await assert_open(ws)
        code, frames = await closed_with(ws, within=3 + WAIT)

    assert code == 4401, frames
    assert time.time() >= soon.timestamp() - 0.5  # not before its time
    await session.aclose()


# ------------------------------------------------------- the refresh lifetime


def refresh_signed_in(user: User, *, days_ago: float) -> str:
    """A refresh token, valid for a day more, of a sign-in `days_ago` days ago: what a
    chain of rotations kept alive before refresh tokens had an absolute lifetime."""
    token = RefreshToken()
    token["user_id"] = str(user.pk)
    token[GENERATION_CLAIM] = user.token_generation
    token[AUTH_TIME_CLAIM] = int(time.time() - days_ago * 86400)
    token.set_exp(lifetime=timedelta(days=1))
    return str(token)


async def test_a_refresh_after_the_absolute_lifetime_is_refused(chat_server, alice):
    days = settings.JWT_REFRESH_MAX_DAYS  # the server's default too

    assert await refresh_status(chat_server, refresh_signed_in(alice, days_ago=days + 0.1)) == 401
    assert await refresh_status(chat_server, refresh_signed_in(alice, days_ago=days - 0.1)) == 200
