"""The WebSocket protocol end to end: a real `manage.py serve` process, real sockets.

Rooms and users are made in the test process (committed: transactional tests); every
change that others must see live (messages, joins, removals) goes through the server,
over the socket or its REST API, so the server's own channel layer carries it.
"""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets
from asgiref.sync import sync_to_async
from django.conf import settings
from django.test import Client

from accounts.services import issue_tokens
from tests.factories import PASSWORD, UserFactory, add_member, make_room
from tests.live import WAIT, WS

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

# Frames that change a room's stream (they carry `pos`).
STREAM = {"message", "message_updated", "message_deleted", "reaction_added", "reaction_removed"}


# ------------------------------------------------------------------------ helpers


@contextlib.asynccontextmanager
async def signed_in(url: str, *, token: str | None = None, **kwargs: Any) -> AsyncIterator[WS]:
    """A socket that has received `authenticated`; closed afterwards."""
    async with await WS.connect(url, token=token, **kwargs) as ws:
        await ws.recv_until("authenticated")
        yield ws


async def join(ws: WS, room_id: int, **extra: Any) -> dict[str, Any]:
    ack = await ws.request({"type": "join", "room": room_id, **extra})
    assert ack["type"] == "ack", ack
    assert ack["room"] == room_id
    return ack


async def say(ws: WS, room_id: int, content: str, **extra: Any) -> dict[str, Any]:
    """Send a message and return the stored message from its ack."""
    ack = await ws.request({"type": "message", "room": room_id, "content": content, **extra})
    assert ack["type"] == "ack", ack
    return ack["message"]


async def stream_frames(
    ws: WS, room_id: int, *, count: int, timeout: float = WAIT
) -> list[dict[str, Any]]:
    """The next `count` stream frames of the room, in arrival order (others skipped)."""
    got: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(got) < count:
        left = deadline - loop.time()
        assert left > 0, f"only {len(got)} of {count} stream frames within {timeout}s: {got}"
        frame = await ws.recv(left)
        if frame["type"] in STREAM and frame.get("room") == room_id:
            got.append(frame)
    return got


async def ask(ws: WS, frame: dict[str, Any], timeout: float = WAIT) -> tuple[dict, list[dict]]:
    """Send a frame with a fresh `ref`; its answer, and every other frame that came first."""
    ref = uuid.uuid4().hex[:12]
    await ws.send({**frame, "ref": ref})
    before: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        answer = await ws.recv(max(0.01, deadline - loop.time()))
        if answer.get("ref") == ref:
            return answer, before
        before.append(answer)


async def frames_within(ws: WS, within: float) -> list[dict[str, Any]]:
    """Every frame that arrives in the next `within` seconds."""
    got: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while (left := deadline - loop.time()) > 0:
        try:
            got.append(await ws.recv(left))
        except TimeoutError:
            break
    return got


def of_room(frames: list[dict[str, Any]], room_id: int) -> list[dict[str, Any]]:
    return [f for f in frames if f["type"] in STREAM and f.get("room") == room_id]


async def quiet(ws: WS, room_id: int, within: float = 0.7, *, strict: bool = False) -> None:
    """Assert that no stream frame (of any room) arrives for `within` seconds.

    Presence frames (`room_users`, `user_joined`, ...) pass, unless `strict`: then any
    frame about the room fails.
    """
    for frame in await frames_within(ws, within):
        assert frame["type"] not in STREAM, f"unexpected frame: {frame}"
        if strict:
            assert frame.get("room") != room_id, f"unexpected frame: {frame}"


def api(server, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


async def room_history(server, token: str, room_id: int) -> dict[str, Any]:
    async with api(server, token) as client:
        response = await client.get(
            f"/api/rooms/{room_id}/messages/", params={"after": 0, "limit": 200}
        )
    assert response.status_code == 200, response.text
    return response.json()


# ----------------------------------------------------------------------- fixtures


@pytest.fixture
def alice_session(user) -> str:
    """The Django session cookie of alice, logged in as the web page does."""
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


@pytest.fixture
def room_of_two(general, user, other_user):
    """General, with alice and bob already members: joining sockets store no notices,
    so the room's positions are exactly the messages a test sends."""
    add_member(general, user)
    add_member(general, other_user)
    return general


@pytest.fixture
def private_room(user, other_user):
    """A private room owned by alice, with bob as a member."""
    room = make_room(owner=user, kind="private")
    add_member(room, other_user)
    return room


@pytest.fixture
def crowd(db) -> tuple[int, list[str]]:
    """A new public room and five fresh users (the first owns it): (room id, tokens)."""
    users = [UserFactory() for _ in range(5)]
    room = make_room(owner=users[0])
    return room.pk, [issue_tokens(user=u)["access"] for u in users]


# ----------------------------------------------------------------- authentication


async def test_authorization_header_authenticates(chat_server, user, alice_token):
    async with await WS.connect(f"{chat_server.ws_url}/ws/", token=alice_token) as ws:
        frame = await ws.recv_until("authenticated")
        assert frame["user"]["id"] == user.pk
        assert frame["user"]["username"] == "alice"
        assert (await ws.request({"type": "ping"}))["type"] == "pong"


async def test_query_token_authenticates(chat_server, user, alice_token):
    async with await WS.connect(f"{chat_server.ws_url}/ws/?token={alice_token}") as ws:
        frame = await ws.recv_until("authenticated")
        assert frame["user"]["id"] == user.pk
        assert (await ws.request({"type": "ping"}))["type"] == "pong"


async def test_session_cookie_authenticates(chat_server, user, alice_session):
    headers = {"Cookie": f"{settings.SESSION_COOKIE_NAME}={alice_session}"}
    async with await WS.connect(f"{chat_server.ws_url}/ws/", additional_headers=headers) as ws:
        frame = await ws.recv_until("authenticated")
        assert frame["user"]["id"] == user.pk
        assert (await ws.request({"type": "ping"}))["type"] == "pong"


async def test_session_cookie_from_own_origin_authenticates(chat_server, user, alice_session):
    headers = {"Cookie": f"{settings.SESSION_COOKIE_NAME}={alice_session}"}
    url = f"{chat_server.ws_url}/ws/"
    async with await WS.connect(url, additional_headers=headers, origin=chat_server.url) as ws:
        frame = await ws.recv_until("authenticated")
        assert frame["user"]["id"] == user.pk


async def test_session_cookie_from_foreign_origin_is_closed_4403(chat_server, alice_session):
    """Cross-site WebSocket hijacking: the victim's cookie rides along, the Origin gives it away."""
    headers = {"Cookie": f"{settings.SESSION_COOKIE_NAME}={alice_session}"}
    url = f"{chat_server.ws_url}/ws/"
    async with await WS.connect(
        url, additional_headers=headers, origin="https://evil.example"
    ) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4403


async def test_unknown_session_cookie_does_not_authenticate(chat_server, db):
    headers = {"Cookie": f"{settings.SESSION_COOKIE_NAME}=not-a-session"}
    async with await WS.connect(f"{chat_server.ws_url}/ws/", additional_headers=headers) as ws:
        answer = await ws.request({"type": "ping"})
        assert (answer["type"], answer["code"]) == ("error", "unauthenticated")


@pytest.mark.parametrize("change", ["password", "deactivated"])
async def test_a_session_that_no_longer_holds_does_not_authenticate(
    chat_server, user, alice_session, change, worker_connections_closed
):
    """A password change (the session's auth hash no longer matches) or a deactivated
    account: the session cookie authenticates nobody, as it would for Django's views."""
    if change == "password":
        user.set_password("a-new-password-42")
    else:
        user.is_active = False
    await sync_to_async(user.save)()
    headers = {"Cookie": f"{settings.SESSION_COOKIE_NAME}={alice_session}"}
    async with await WS.connect(f"{chat_server.ws_url}/ws/", additional_headers=headers) as ws:
        answer = await ws.request({"type": "ping"})
        assert (answer["type"], answer["code"]) == ("error", "unauthenticated")


async def test_authenticate_frame_authenticates(chat_server, user, alice_token):
    async with await WS.connect(f"{chat_server.ws_url}/ws/") as ws:
        before = await ws.request({"type": "ping"})
        assert (before["type"], before["code"]) == ("error", "unauthenticated")
        await ws.send({"type": "authenticate", "token": alice_token})
        frame = await ws.recv_until("authenticated")
        assert frame["user"]["id"] == user.pk
        assert (await ws.request({"type": "ping"}))["type"] == "pong"


async def test_bad_token_is_closed_4401(chat_server, db):
    async with await WS.connect(f"{chat_server.ws_url}/ws/", token="not-a-jwt") as ws:
        told = await ws.recv()
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert (told["type"], told["code"]) == ("error", "unauthenticated")
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401


# ----------------------------------------------------------------------- chatting


async def test_room_endpoint_joins_room_on_connect(
    chat_server, room_of_two, alice_token, bob_token
):
    room = room_of_two.pk
    async with signed_in(f"{chat_server.ws_url}/ws/", token=bob_token) as bob:
        await join(bob, room)
        earlier = await say(bob, room, "before alice came")
        url = f"{chat_server.ws_url}/ws/rooms/{room}/"
        async with await WS.connect(url, token=alice_token) as alice:
            await alice.recv_until("authenticated")
            ack = await alice.recv_until("ack")
            assert ack["room"] == room
            assert ack["pos"] == earlier["pos"]
            sent = await say(bob, room, "welcome")
            (got,) = await stream_frames(alice, room, count=1)
            assert got["type"] == "message"
            assert got["pos"] == sent["pos"] == earlier["pos"] + 1
            assert got["message"]["id"] == sent["id"]
            assert got["message"]["content"] == "welcome"


async def test_two_users_chat_and_senders_other_socket_gets_it(
    chat_server, room_of_two, user, alice_token, bob_token
):
    general = room_of_two
    url = f"{chat_server.ws_url}/ws/"
    async with (
        signed_in(url, token=alice_token) as alice,
        signed_in(url, token=alice_token) as alice_tab,
        signed_in(url, token=bob_token) as bob,
    ):
        for ws in (alice, alice_tab, bob):
            await join(ws, general.pk)
        ack = await alice.request(
            {"type": "message", "room": general.pk, "content": "hi bob", "client_id": "hb-1"}
        )
        assert ack["type"] == "ack"
        stored = ack["message"]
        assert isinstance(stored["id"], int)
        assert stored["content"] == "hi bob"
        assert stored["client_id"] == "hb-1"
        assert stored["sender"]["id"] == user.pk
        assert stored["pos"] == stored["seq"]
        for ws in (alice, alice_tab, bob):
            got = await ws.recv_until("message", room=general.pk, pos=stored["pos"])
            assert got["message"] == stored
        reply = await say(bob, general.pk, "hi alice")
        assert reply["pos"] == stored["pos"] + 1
        for ws in (alice, alice_tab):
            got = await ws.recv_until("message", room=general.pk, pos=reply["pos"])
            assert got["message"]["content"] == "hi alice"
    history = await room_history(chat_server, alice_token, general.pk)
    assert [m["content"] for m in history["results"] if m["type"] == "text"] == [
        "hi bob",
        "hi alice",
    ]


async def test_leave_stops_delivery_to_that_socket_only(
    chat_server, room_of_two, alice_token, bob_token
):
    general = room_of_two
    url = f"{chat_server.ws_url}/ws/"
    async with (
        signed_in(url, token=alice_token) as leaving,
        signed_in(url, token=alice_token) as staying,
        signed_in(url, token=bob_token) as bob,
    ):
        for ws in (leaving, staying, bob):
            await join(ws, general.pk)
        ack = await leaving.request({"type": "leave", "room": general.pk})
        assert (ack["type"], ack["room"]) == ("ack", general.pk)
        leaving.backlog.clear()  # what arrived before the leave was answered
        sent = await say(bob, general.pk, "only the staying tab hears this")
        got = await staying.recv_until("message", room=general.pk, pos=sent["pos"])
        assert got["message"]["id"] == sent["id"]
        await quiet(leaving, general.pk, strict=True)
        # The membership stays: leaving a socket is not leaving the room.
        async with api(chat_server, alice_token) as client:
            room = (await client.get(f"/api/rooms/{general.pk}/")).json()
        assert room["my_role"] == "member"
        # And the socket can come back.
        await join(leaving, general.pk)
        again = await say(bob, general.pk, "back")
        got = await leaving.recv_until("message", room=general.pk, pos=again["pos"])
        assert got["message"]["content"] == "back"


# ----------------------------------------------------------------------- recovery


async def test_rejoin_with_after_replays_exactly_the_missed_messages(
    chat_server, room_of_two, alice_token, bob_token
):
    general = room_of_two
    url = f"{chat_server.ws_url}/ws/"
    async with signed_in(url, token=bob_token) as bob:
        await join(bob, general.pk)
        async with signed_in(url, token=alice_token) as alice:
            last_seen = (await join(alice, general.pk))["pos"]
            sent = await say(bob, general.pk, "seen live")
            (frame,) = await stream_frames(alice, general.pk, count=1)
            assert frame["pos"] == sent["pos"] == last_seen + 1
            last_seen = frame["pos"]
        # Alice is away.
        missed = [await say(bob, general.pk, f"missed {n}") for n in range(5)]
        async with signed_in(url, token=alice_token) as alice:
            ack = await join(alice, general.pk, after=last_seen)
            assert ack["pos"] == missed[-1]["pos"]
            replayed = await stream_frames(alice, general.pk, count=5)
            live_sent = [await say(bob, general.pk, f"live {n}") for n in range(3)]
            live = await stream_frames(alice, general.pk, count=3)
            await quiet(alice, general.pk)
    positions = [f["pos"] for f in replayed + live]
    assert positions == list(range(last_seen + 1, last_seen + 9))
    assert [f["type"] for f in replayed] == ["message"] * 5
    assert [f["message"]["id"] for f in replayed] == [m["id"] for m in missed]
    assert [f["message"]["content"] for f in replayed] == [f"missed {n}" for n in range(5)]
    assert [f["message"]["id"] for f in live] == [m["id"] for m in live_sent]


async def test_rejoin_while_others_keep_sending_misses_nothing_and_repeats_nothing(
    chat_server, room_of_two, alice_token, bob_token
):
    general = room_of_two
    url = f"{chat_server.ws_url}/ws/"
    async with signed_in(url, token=bob_token) as bob:
        await join(bob, general.pk)
        async with signed_in(url, token=alice_token) as alice:
            last_seen = (await join(alice, general.pk))["pos"]
        for n in range(3):
            await say(bob, general.pk, f"away {n}")

        async def keep_sending() -> list[dict[str, Any]]:
            sent = []
            for n in range(15):
                sent.append(await say(bob, general.pk, f"during {n}"))
                await asyncio.sleep(0.005 * (n % 3))
            return sent

        async def rejoin() -> list[dict[str, Any]]:
            async with signed_in(url, token=alice_token) as alice:
                await join(alice, general.pk, after=last_seen)
                frames = await stream_frames(alice, general.pk, count=18, timeout=2 * WAIT)
                await quiet(alice, general.pk)
                return frames

        sent, frames = await asyncio.gather(keep_sending(), rejoin())
    positions = [f["pos"] for f in frames]
    assert positions == list(range(last_seen + 1, last_seen + 19))
    assert [f["message"]["id"] for f in frames][-15:] == [m["id"] for m in sent]


@pytest.mark.parametrize("beyond", [0, 1, 1000])
async def test_after_at_or_beyond_current_position_replays_nothing(
    chat_server, room_of_two, alice_token, bob_token, beyond
):
    general = room_of_two
    url = f"{chat_server.ws_url}/ws/"
    async with signed_in(url, token=bob_token) as bob:
        await join(bob, general.pk)
        for n in range(3):
            await say(bob, general.pk, f"old {n}")
        async with signed_in(url, token=alice_token) as alice:
            current = (await join(alice, general.pk))["pos"]
            await alice.request({"type": "leave", "room": general.pk})
            ack = await join(alice, general.pk, after=current + beyond)
            assert ack["pos"] == current
            await quiet(alice, general.pk)
            sent = await say(bob, general.pk, "new")
            (frame,) = await stream_frames(alice, general.pk, count=1)
            assert frame["pos"] == sent["pos"] == current + 1


# -------------------------------------------------------------------- idempotency


async def test_resend_with_same_client_id_stores_and_delivers_once(
    chat_server, room_of_two, alice_token, bob_token
):
    room = room_of_two.pk
    url = f"{chat_server.ws_url}/ws/"
    frame = {"type": "message", "room": room, "content": "once", "client_id": "retry-1"}
    async with signed_in(url, token=alice_token) as alice, signed_in(url, token=bob_token) as bob:
        await join(alice, room)
        await join(bob, room)
        first, seen = await ask(alice, frame)
        again, more = await ask(alice, frame)
        assert (first["type"], again["type"]) == ("ack", "ack")
        assert again["message"]["id"] == first["message"]["id"]
        assert again["message"]["pos"] == first["message"]["pos"]
        message_id = first["message"]["id"]
        async with api(chat_server, alice_token) as client:
            response = await client.post(
                f"/api/rooms/{room}/messages/", json={"content": "once", "client_id": "retry-1"}
            )
        assert response.status_code == 200, response.text
        assert response.json()["id"] == message_id

        # Each socket gets the message (waited for), then nothing more of the room.
        bob_got = await stream_frames(bob, room, count=1)
        bob_got += of_room(await frames_within(bob, 1.0), room)
        assert [f["message"]["id"] for f in bob_got] == [message_id]
        alice_got = of_room(seen + more, room)
        if not alice_got:  # the sender's own copy may come before its ack, or after
            alice_got = await stream_frames(alice, room, count=1)
        alice_got += of_room(await frames_within(alice, 0.5), room)
        assert [f["message"]["id"] for f in alice_got] == [message_id]
    history = await room_history(chat_server, alice_token, room)
    assert [m["id"] for m in history["results"] if m["client_id"] == "retry-1"] == [message_id]
    assert history["pos"] == first["message"]["pos"]


async def test_rest_first_then_socket_with_same_client_id_is_one_message(
    chat_server, room_of_two, alice_token, bob_token
):
    room = room_of_two.pk
    url = f"{chat_server.ws_url}/ws/"
    async with signed_in(url, token=alice_token) as alice, signed_in(url, token=bob_token) as bob:
        await join(alice, room)
        await join(bob, room)
        async with api(chat_server, alice_token) as client:
            response = await client.post(
                f"/api/rooms/{room}/messages/",
                json={"content": "via http", "client_id": "rest-then-ws"},
            )
        assert response.status_code == 201, response.text
        again = await say(alice, room, "via http", client_id="rest-then-ws")
        assert again["id"] == response.json()["id"]
        bob_got = await stream_frames(bob, room, count=1)  # waited for, then nothing more
        bob_got += of_room(await frames_within(bob, 1.0), room)
        assert [f["message"]["id"] for f in bob_got] == [again["id"]]


# -------------------------------------------------------------- the broadcast API


async def test_http_post_is_delivered_live(chat_server, general, alice_token, bob_token):
    url = f"{chat_server.ws_url}/ws/"
    async with signed_in(url, token=bob_token) as bob:
        await join(bob, general.pk)
        async with api(chat_server, alice_token) as client:
            assert (await client.post(f"/api/rooms/{general.pk}/join/")).status_code == 200
            response = await client.post(
                f"/api/rooms/{general.pk}/messages/", json={"content": "from http"}
            )
        assert response.status_code == 201, response.text
        posted = response.json()
        got = await bob.recv_until("message", room=general.pk, pos=posted["pos"])
        assert got["message"]["id"] == posted["id"]
        assert got["message"]["content"] == "from http"
        assert got["message"]["sender"]["username"] == "alice"


async def test_removed_member_socket_gets_user_left_and_stops_receiving(
    chat_server, private_room, other_user, alice_token, bob_token
):
    room = private_room.pk
    url = f"{chat_server.ws_url}/ws/"
    async with (
        signed_in(url, token=alice_token) as alice,
        signed_in(url, token=bob_token) as bob,
        signed_in(url, token=bob_token) as bob_tab,
    ):
        for ws in (alice, bob, bob_tab):
            await join(ws, room)
        before = await say(alice, room, "bob still hears this")
        for ws in (bob, bob_tab):
            await ws.recv_until("message", room=room, pos=before["pos"])

        async with api(chat_server, alice_token) as client:
            response = await client.delete(f"/api/rooms/{room}/members/{other_user.pk}/")
        assert response.status_code == 204, response.text

        for ws in (bob, bob_tab):
            left = await ws.recv_until("user_left", room=room)
            assert left["user"]["id"] == other_user.pk
            await ws.recv_until("room_removed", room=room)  # from bob's own stream
        after = await say(alice, room, "bob is gone")
        await alice.recv_until("message", room=room, pos=after["pos"])
        for ws in (bob, bob_tab):
            await quiet(ws, room, strict=True)
        refused = await bob.request({"type": "join", "room": room})
        assert (refused["type"], refused["code"]) == ("error", "not_found")
        refused = await bob.request({"type": "message", "room": room, "content": "let me in"})
        assert (refused["type"], refused["code"]) == ("error", "not_found")


# ------------------------------------------------------------------ limits, load


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param('{{"type": "ping", "ref": "\\ud800"}}', id="ref"),
        pytest.param(
            '{{"type": "message", "room": {room}, "content": "x", "payload": {{"k": "\\ud800"}}}}',
            id="payload",
        ),
        pytest.param('{{"type": "authenticate", "token": "\\udfff"}}', id="reauthenticate"),
    ],
)
async def test_lone_surrogate_in_a_frame_is_an_error_not_a_broken_socket(
    chat_server, room_of_two, alice_token, bob_token, raw
):
    """JSON may spell a lone surrogate; UTF-8 cannot carry it back out, so it is refused."""
    room = room_of_two.pk
    url = f"{chat_server.ws_url}/ws/"
    async with signed_in(url, token=alice_token) as alice, signed_in(url, token=bob_token) as bob:
        await join(alice, room)
        await join(bob, room)
        await alice.send(raw.format(room=room))
        error = await alice.recv_until("error")
        assert error["code"] in ("validation_error", "unauthenticated"), error
        assert (await alice.request({"type": "ping"}))["type"] == "pong"
        await quiet(bob, room, within=0.5)
    history = await room_history(chat_server, alice_token, room)
    assert history["results"] == []


async def test_frame_over_64_kib_closes_1009(chat_server, general, alice_token):
    url = f"{chat_server.ws_url}/ws/"
    async with signed_in(url, token=alice_token) as alice:
        await join(alice, general.pk)
        # Just under the frame limit: an ordinary error, the socket stays.
        near = await alice.request({"type": "message", "room": general.pk, "content": "x" * 60_000})
        assert (near["type"], near["code"]) == ("error", "too_long")
        assert (await alice.request({"type": "ping"}))["type"] == "pong"
        await alice.send({"type": "message", "room": general.pk, "content": "x" * 70_000})
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await alice.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009
    history = await room_history(chat_server, alice_token, general.pk)
    assert [m for m in history["results"] if m["type"] == "text"] == []


async def test_concurrent_senders_get_distinct_positions_without_gaps(chat_server, crowd):
    room, tokens = crowd
    per_socket = 20
    url = f"{chat_server.ws_url}/ws/"

    async with contextlib.AsyncExitStack() as stack:
        sockets = [await stack.enter_async_context(signed_in(url, token=token)) for token in tokens]
        for ws in sockets:
            await join(ws, room)

        async def flood(index: int, ws: WS) -> tuple[list[dict], set[int]]:
            refs = [f"s{index}-{n}" for n in range(per_socket)]
            for n, ref in enumerate(refs):
                frame = {"type": "message", "room": room, "content": f"{index}/{n}", "ref": ref}
                await ws.send(frame)
            answers: dict[str, dict] = {}
            seen: set[int] = set()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 3 * WAIT
            while len(answers) < per_socket:
                frame = await ws.recv(max(0.01, deadline - loop.time()))
                if frame.get("ref") in refs:
                    answers[frame["ref"]] = frame
                elif frame["type"] == "message" and frame["room"] == room:
                    seen.add(frame["pos"])
            return [answers[ref] for ref in refs], seen

        results = await asyncio.gather(*(flood(i, ws) for i, ws in enumerate(sockets)))

        acks = [ack for answers, _ in results for ack in answers]
        assert [a for a in acks if a["type"] != "ack"] == []
        positions = [a["message"]["pos"] for a in acks]
        assert len(set(positions)) == len(tokens) * per_socket
        for answers, _ in results:  # one socket's messages are stored in the order sent
            own = [a["message"]["pos"] for a in answers]
            assert own == sorted(own)

        # Fan-out under load: every socket sees every message.
        for ws, (_, seen) in zip(sockets, results, strict=True):
            missing = set(positions) - seen
            loop = asyncio.get_running_loop()
            deadline = loop.time() + WAIT
            while missing:
                frame = await ws.recv(max(0.01, deadline - loop.time()))
                if frame["type"] == "message" and frame["room"] == room:
                    missing.discard(frame["pos"])

    history = await room_history(chat_server, tokens[0], room)
    assert history["has_more"] is False
    stored = history["results"]
    assert {m["pos"] for m in stored} == set(range(1, history["pos"] + 1))
    assert len(stored) == history["pos"]
    text = [m for m in stored if m["type"] == "text"]
    assert sorted(m["id"] for m in text) == sorted(a["message"]["id"] for a in acks)
    # The other four joined through their sockets: one stored notice each.
    assert len([m for m in stored if m["type"] == "system"]) == len(tokens) - 1
    assert history["pos"] == len(tokens) * per_socket + len(tokens) - 1
