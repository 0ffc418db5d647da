"""The clients of the seed servers, each written from that seed's README alone
(`../shared/seeds/000_…` to `003_…`), against a real server (SPEC 9.3, 9.4).

- 000: `ws://host/ws` broadcasts to all connected clients; `GET /healthz`.
- 001: `ws://host/ws`, frames `{"type": 1|2, "body"}` (1 system notices of users coming
  and going, 2 chat).
- 002: `ws://host/ws?username=YourName`, frames `{"type", "username", "content",
  "timestamp"}` of types join, leave, chat, error; `GET /api/users`, `GET /api/stats`.
- 003: `POST /api/register`, `POST /api/login`, `GET /api/rooms`, `POST /api/rooms/create`,
  `GET /api/messages?roomId=&limit=`, `/ws?roomId=` with the token in `Authorization`;
  frames `{"type":"message","room_id","sender_id","username","content","ts"}`, sends
  `{"content"}`; `GET /health`.

Then the refusals: guests off (4401 after an error frame), bad and taken names.
"""

import asyncio
import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets

from tests.factories import PASSWORD
from tests.live import WAIT, LiveServer, server_environment

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


@pytest.fixture(scope="module")
def open_server(django_db_setup) -> Iterator[LiveServer]:
    """A server that lets guests in, as the anonymous seed servers did."""
    server = LiveServer(server_environment(CHAT_ALLOW_GUESTS="true"))
    server.start()
    yield server
    server.stop()


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:6]}"


async def connect(url: str, **kwargs: Any) -> websockets.ClientConnection:
    return await websockets.connect(url, open_timeout=WAIT, **kwargs)


async def next_json(ws: websockets.ClientConnection, match=lambda frame: True) -> dict:
    """The next JSON frame for which `match` holds (others skipped), within WAIT."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), max(0.01, deadline - loop.time())))
        if match(frame):
            return frame


async def closed_with(ws: websockets.ClientConnection) -> int:
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(ws.recv(), WAIT)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


# ---------------------------------------------------------------------------- 000


@pytest.mark.asyncio
async def test_seed_000_broadcasts_to_all_connected_clients(open_server: LiveServer):
    assert httpx.get(f"{open_server.url}/healthz").json() == {"status": "ok"}
    async with (
        await connect(f"{open_server.ws_url}/ws") as first,
        await connect(f"{open_server.ws_url}/ws") as second,
    ):
        text = unique("hello from 000 ")
        await first.send(text)  # "any WebSocket client": plain text

        for ws in (first, second):
            raw = await next_json(ws, lambda f: f.get("type") == 2)
            assert raw == {"type": 2, "body": text}


# ---------------------------------------------------------------------------- 001


@pytest.mark.asyncio
async def test_seed_001_system_notices_and_chat_messages(open_server: LiveServer):
    async with await connect(f"{open_server.ws_url}/ws") as watcher:
        mine = await next_json(watcher, lambda f: f.get("type") == 1)  # its own arrival
        async with await connect(f"{open_server.ws_url}/ws") as talker:
            joined = await next_json(watcher, lambda f: f.get("type") == 1)
            assert joined != mine
            assert set(joined) == {"type", "body"} and joined["body"].endswith(" joined the chat")
            name = joined["body"].split(" ")[0]

            body = unique("hi from 001 ")
            await talker.send(json.dumps({"type": 2, "body": body}))
            raw = await asyncio.wait_for(watcher.recv(), WAIT)
            assert raw == json.dumps({"type": 2, "body": body}, separators=(",", ":"))

        left = await next_json(watcher, lambda f: f.get("type") == 1)
        assert left == {"type": 1, "body": f"{name} left the chat"}


# ---------------------------------------------------------------------------- 002


@pytest.mark.asyncio
async def test_seed_002_nicknames_join_chat_leave_and_the_monitoring_paths(
    open_server: LiveServer,
):
    john, jane = unique("John"), unique("Jane")
    async with await connect(f"{open_server.ws_url}/ws?username={john}") as john_ws:
        async with await connect(f"{open_server.ws_url}/ws?username={jane}") as jane_ws:
            join = await next_json(john_ws, lambda f: f["type"] == "join" and f["username"] == jane)
            assert list(join) == ["type", "username", "content", "timestamp"]
            assert RFC3339.match(join["timestamp"]), join

            users = httpx.get(f"{open_server.url}/api/users").json()
            assert {john, jane} <= set(users["users"])
            assert httpx.get(f"{open_server.url}/api/stats").status_code == 200

            # The README's example message, as a client would send it.
            await jane_ws.send(
                json.dumps(
                    {
                        "type": "chat",
                        "username": jane,
                        "content": "Hello everyone!",
                        "timestamp": "2024-01-15T10:30:00Z",
                    }
                )
            )
            for ws in (john_ws, jane_ws):
                chat = await next_json(ws, lambda f: f["type"] == "chat")
                assert list(chat) == ["type", "username", "content", "timestamp"]
                assert chat["username"] == jane and chat["content"] == "Hello everyone!"
                assert RFC3339.match(chat["timestamp"]), chat

            await jane_ws.send(json.dumps({"type": "dance"}))
            error = await next_json(jane_ws, lambda f: f["type"] == "error")
            assert error["code"] == "validation_error" and error["content"]

        leave = await next_json(john_ws, lambda f: f["type"] == "leave")
        assert leave["username"] == jane and set(leave) == {
            "type",
            "username",
            "content",
            "timestamp",
        }


# ---------------------------------------------------------------------------- 003


@pytest.mark.asyncio
async def test_seed_003_jwt_rooms_and_messages(open_server: LiveServer):
    john, ann = unique("john_doe"), unique("ann")
    with httpx.Client(base_url=open_server.url, timeout=WAIT) as http:
        assert http.get("/health").json() == {"status": "ok"}
        registered = http.post("/api/register", json={"username": john, "password": PASSWORD})
        assert registered.status_code == 201
        http.post("/api/register", json={"username": ann, "password": PASSWORD})
        login = http.post("/api/login", json={"username": john, "password": PASSWORD})
        assert login.status_code == 200 and set(login.json()) == {"token", "user"}
        token = login.json()["token"]
        john_id = login.json()["user"]["id"]
        ann_token = http.post("/api/login", json={"username": ann, "password": PASSWORD}).json()[
            "token"
        ]
        bare = {"Authorization": token}  # the README: the header "containing the JWT token"

        rooms = http.get("/api/rooms", headers=bare)
        assert rooms.status_code == 200
        assert "General" in [room["name"] for room in rooms.json()]
        created = http.post("/api/rooms/create", json={"name": unique("go-")}, headers=bare)
        assert created.status_code == 201
        room_id = created.json()["id"]

    async with (
        await connect(f"{open_server.ws_url}/ws?roomId={room_id}", additional_headers=bare) as jws,
        await connect(
            f"{open_server.ws_url}/ws?roomId={room_id}",
            additional_headers={"Authorization": f"Bearer {ann_token}"},
        ) as aws,
    ):
        await jws.send(json.dumps({"content": "Hello, world!"}))
        for ws in (jws, aws):
            message = await next_json(ws, lambda f: f.get("type") == "message")
            assert list(message) == ["type", "room_id", "sender_id", "username", "content", "ts"]
            assert message["room_id"] == room_id and message["sender_id"] == john_id
            assert message["username"] == john and message["content"] == "Hello, world!"
            assert isinstance(message["ts"], int) and message["ts"] > 1_600_000_000_000

    history = httpx.get(
        f"{open_server.url}/api/messages",
        params={"roomId": room_id, "limit": 10},
        headers=bare,
    ).json()
    assert [(m["username"], m["content"]) for m in history] == [(john, "Hello, world!")]


@pytest.mark.asyncio
async def test_seed_003_socket_without_a_token_is_refused_4401(open_server: LiveServer):
    async with await connect(f"{open_server.ws_url}/ws?roomId=1") as ws:
        error = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
        assert error["type"] == "error" and error["code"] == "unauthenticated"
        assert await closed_with(ws) == 4401


# ------------------------------------------------------------------- the refusals


@pytest.mark.asyncio
@pytest.mark.parametrize("query", ["?username=Nick", ""])
async def test_guests_off_are_refused_4401_with_an_error_frame_first(chat_server, query):
    async with await connect(f"{chat_server.ws_url}/ws{query}") as ws:
        error = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
        assert error["code"] == "unauthenticated"
        assert "Guests are not allowed" in (error.get("content") or error.get("body"))
        assert await closed_with(ws) == 4401


@pytest.mark.asyncio
@pytest.mark.parametrize("name", ["ALICE", "ali%E2%80%8Bce"])  # another case; zero-width space
async def test_a_guest_name_that_could_pass_for_a_user_is_refused(open_server, user, name):
    async with await connect(f"{open_server.ws_url}/ws?username={name}") as ws:
        error = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
        assert error["type"] == "error" and error["code"] == "validation_error"
        assert await closed_with(ws) == 4400


@pytest.mark.asyncio
async def test_a_guest_cannot_open_a_private_room(open_server, user, worker_connections_closed):
    from asgiref.sync import sync_to_async

    from tests.factories import make_room

    private = await sync_to_async(make_room)(owner=user, kind="private")
    async with await connect(f"{open_server.ws_url}/ws?username={unique('g')}") as ws:
        # A guest's identity is the nickname; the room of a roomId socket needs a token.
        await next_json(ws, lambda f: f["type"] == "join")
    async with await connect(f"{open_server.ws_url}/ws?roomId={private.pk}") as ws:
        assert (json.loads(await asyncio.wait_for(ws.recv(), WAIT)))["code"] == "unauthenticated"
        assert await closed_with(ws) == 4401


def test_seed_003_token_lives_jwt_expiry_hours_and_is_revoked_like_any(open_server):
    import jwt

    name = unique("rev")
    with httpx.Client(base_url=open_server.url, timeout=WAIT) as http:
        http.post("/api/register", json={"username": name, "password": PASSWORD})
        token = http.post("/api/login", json={"username": name, "password": PASSWORD}).json()[
            "token"
        ]
        claims = jwt.decode(token, options={"verify_signature": False})
        assert claims["exp"] - claims["iat"] == 24 * 3600  # JWT_EXPIRY's default
        assert http.get("/api/rooms", headers={"Authorization": token}).status_code == 200

        signed_out = http.post(
            "/api/auth/logout/", json={"all": True}, headers={"Authorization": f"Bearer {token}"}
        )
        assert signed_out.status_code == 205

        refused = http.get("/api/rooms", headers={"Authorization": token})
        assert refused.status_code == 401
        assert refused.json()["code"] == "unauthenticated"


@pytest.mark.asyncio
async def test_guest_messages_are_limited_per_guest_and_per_client_address(django_db_setup):
    server = LiveServer(server_environment(CHAT_ALLOW_GUESTS="true", CHAT_RATE_LIMIT="3/60s"))
    await asyncio.to_thread(server.start)
    try:
        first, second = unique("first"), unique("second")
        async with await connect(f"{server.ws_url}/ws?username={first}") as ws:
            for n in range(4):
                await ws.send(json.dumps({"type": "chat", "content": f"n{n}"}))
            chats = [await next_json(ws, lambda f: f["type"] == "chat") for _ in range(3)]
            assert [c["content"] for c in chats] == ["n0", "n1", "n2"]
            refused = await next_json(ws, lambda f: f["type"] == "error")
            assert refused["code"] == "rate_limited"
        # A new nickname from the same address does not get a new budget.
        async with await connect(f"{server.ws_url}/ws?username={second}") as ws:
            await ws.send(json.dumps({"type": "chat", "content": "again"}))
            refused = await next_json(ws, lambda f: f["type"] in ("chat", "error"))
            assert refused["type"] == "error" and refused["code"] == "rate_limited"
    finally:
        await asyncio.to_thread(server.stop)
