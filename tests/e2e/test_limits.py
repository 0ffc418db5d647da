"""Limits against real servers started with small values: CHAT_RATE_LIMIT over sockets and
HTTP together, the 4429 close for a client that keeps flooding, MAX_SOCKETS_PER_USER,
and AUTH_RATE_LIMIT on login and register (API and pages)."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import websockets

from accounts.models import User
from accounts.services import issue_tokens
from chatproject.errors import RateLimited
from tests.factories import PASSWORD, UserFactory, add_member
from tests.live import WS, LiveServer, server_environment

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

LIMITS = {"CHAT_RATE_LIMIT": "5/60s", "AUTH_RATE_LIMIT": "4/60s", "MAX_SOCKETS_PER_USER": "2"}


def start_server() -> LiveServer:
    server = LiveServer(server_environment(**LIMITS))
    server.start()
    return server


@pytest.fixture(scope="module")
def limited(django_db_setup) -> Iterator[LiveServer]:
    server = start_server()
    yield server
    server.stop()


@pytest.fixture
def sender(general):
    """A fresh user (a budget of their own) who is a member of General, and a token."""
    person = UserFactory()
    add_member(general, person)
    return person, issue_tokens(user=person)["access"]


@contextlib.asynccontextmanager
async def socket(server: LiveServer, token: str) -> AsyncIterator[WS]:
    async with await WS.connect(f"{server.ws_url}/ws/", token=token) as ws:
        await ws.recv_until("authenticated")
        yield ws


async def socket_when_a_place_is_free(server: LiveServer, token: str, within: float = 20) -> WS:
    """A socket of the user's, opened as soon as the server accepts one; every refusal
    meanwhile is the limit's (`rate_limited`, then 4429)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        ws = await WS.connect(f"{server.ws_url}/ws/", token=token)
        first = await ws.recv(timeout=10)
        while first["type"] not in ("authenticated", "error"):
            first = await ws.recv(timeout=10)
        if first["type"] == "authenticated":
            return ws
        assert first["code"] == "rate_limited", first
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv(timeout=10)
        assert closed.value.rcvd.code == 4429
        assert loop.time() < deadline, f"no place freed within {within} s"
        await asyncio.sleep(0.1)


async def post(server: LiveServer, token: str, room: int, content: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        return await client.post(
            f"/api/rooms/{room}/messages/",
            json={"content": content},
            headers={"Authorization": f"Bearer {token}"},
        )


async def stored_contents(server: LiveServer, token: str, room: int) -> list[str]:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        response = await client.get(
            f"/api/rooms/{room}/messages/",
            params={"limit": 200},
            headers={"Authorization": f"Bearer {token}"},
        )
    return [m["content"] for m in response.json()["results"] if m["type"] == "text"]


@pytest.mark.asyncio
async def test_one_message_budget_covers_sockets_and_http(limited, general, sender):
    _, token = sender
    async with socket(limited, token) as ws:
        for n in range(3):
            ack = await ws.request({"type": "message", "room": general.pk, "content": f"ws {n}"})
            assert ack["type"] == "ack", ack
        for n in range(2):
            assert (await post(limited, token, general.pk, f"http {n}")).status_code == 201

        refused = await ws.request({"type": "message", "room": general.pk, "content": "six"})
        assert (refused["type"], refused["code"]) == ("error", "rate_limited")
        assert 0 < refused["retry_after"] <= 60

        response = await post(limited, token, general.pk, "seven")
        assert response.status_code == 429
        assert 0 < int(response.headers["Retry-After"]) <= 60
        assert response.json()["code"] == "rate_limited"

        pong = await ws.request({"type": "ping"})
        assert pong["type"] == "pong"  # refused, not closed

    contents = await stored_contents(limited, token, general.pk)
    assert sorted(c for c in contents if c.startswith(("ws", "http"))) == [
        "http 0",
        "http 1",
        "ws 0",
        "ws 1",
        "ws 2",
    ]
    assert "six" not in contents and "seven" not in contents


@pytest.mark.asyncio
async def test_a_client_that_keeps_flooding_is_closed_with_4429(
    limited, general, sender, worker_connections_closed
):
    _, token = sender
    async with socket(limited, token) as ws:
        for n in range(5):
            await ws.request({"type": "message", "room": general.pk, "content": f"ok {n}"})
        refusals = 0
        with pytest.raises(websockets.ConnectionClosed) as closed:
            for n in range(50):
                answer = await ws.request(
                    {"type": "message", "room": general.pk, "content": f"flood {n}"}
                )
                assert answer["code"] == "rate_limited"
                refusals += 1
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4429
        assert 5 <= refusals <= 11
    # The server's `disconnect` writes `last_seen`; the test's end empties the database,
    # and a TRUNCATE racing that write can deadlock on PostgreSQL. Let it finish first.
    await seen_by_the_server(sender[0])


async def seen_by_the_server(user, within: float = 20) -> None:
    """Wait until a closed socket's `disconnect` has recorded the user's `last_seen`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    seen = User.objects.filter(pk=user.pk).values_list("last_seen", flat=True)
    while await seen.aget() is None:
        assert loop.time() < deadline, f"disconnect did not record last_seen within {within} s"
        await asyncio.sleep(0.05)


@pytest.mark.asyncio
async def test_sockets_beyond_max_sockets_per_user_are_refused(limited, sender):
    _, token = sender
    async with socket(limited, token), socket(limited, token) as second:
        third = await WS.connect(f"{limited.ws_url}/ws/", token=token)
        error = await third.recv()
        assert (error["type"], error["code"]) == ("error", "rate_limited")
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await third.recv()
        assert closed.value.rcvd.code == 4429
        await second.close()
        # A place is free again once the server has run the closed socket's `disconnect`;
        # until then a new socket is refused as before.
        again = await socket_when_a_place_is_free(limited, token)
        async with again:
            assert (await again.request({"type": "ping"}))["type"] == "pong"


@pytest.mark.asyncio
async def test_login_and_register_share_one_budget_per_address():
    server = start_server()  # its own server: the budget is per client address
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            for _ in range(3):
                wrong = await client.post(
                    "/api/auth/login/", json={"username": "nobody", "password": PASSWORD}
                )
                assert wrong.status_code == 401
            made = await client.post(
                "/api/auth/register/", json={"username": "newcomer", "password": PASSWORD}
            )
            assert made.status_code == 201
            refused = await client.post(
                "/api/auth/login/", json={"username": "newcomer", "password": PASSWORD}
            )
            assert refused.status_code == 429
            assert refused.json()["code"] == "rate_limited"
            assert 0 < int(refused.headers["Retry-After"]) <= 60
            page = await client.get("/login/")
            token = page.cookies["csrftoken"]
            form = await client.post(
                "/login/",
                data={"username": "newcomer", "password": PASSWORD, "csrfmiddlewaretoken": token},
                headers={"Referer": f"{server.url}/login/"},
            )
            assert form.status_code == 429
            assert "Too many sign-in attempts" in form.text
    finally:
        server.stop()


def test_rate_limited_carries_a_whole_positive_retry_after():
    assert RateLimited(retry_after=0.2).retry_after == 1
    assert RateLimited(retry_after=7.9).retry_after == 7


@pytest.fixture
def redis_only(settings) -> None:
    if not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL: without Redis each process counts for itself")


@pytest.mark.asyncio
async def test_limits_hold_across_processes(redis_only, limited, general, sender):
    other = await asyncio.to_thread(start_server)
    try:
        _, token = sender
        async with socket(limited, token) as first, socket(other, token) as second:
            third = await WS.connect(f"{other.ws_url}/ws/", token=token)
            assert (await third.recv())["code"] == "rate_limited"  # 2 sockets, 2 processes
            with pytest.raises(websockets.ConnectionClosed):
                await third.recv()

            for n in range(5):
                ws = first if n % 2 else second
                ack = await ws.request({"type": "message", "room": general.pk, "content": f"{n}"})
                assert ack["type"] == "ack", ack
            refused = await first.request({"type": "message", "room": general.pk, "content": "x"})
            assert refused["code"] == "rate_limited"
    finally:
        await asyncio.to_thread(other.stop)
