"""The user's own stream over real sockets (SPEC 12): live changes carry `user_pos`, a
socket that connects with `after_user` is told what it missed first, in order, and that
holds when the socket was drained from one process and reconnects to another."""

import asyncio
import signal

import httpx
import pytest
import websockets
from asgiref.sync import sync_to_async

from accounts.services import issue_tokens
from tests.factories import UserFactory, make_room
from tests.live import WS, LiveServer, collect, server_environment

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


async def token_of(user) -> str:
    return (await sync_to_async(issue_tokens)(user=user))["access"]


def api(server: LiveServer, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=f"{server.url}/api", headers={"Authorization": f"Bearer {token}"}, timeout=20
    )


async def changes(ws: WS, count: int) -> list[dict]:
    """The next `count` frames of the user's stream (those with `user_pos`)."""
    seen: list[dict] = []
    while len(seen) < count:
        frame = await ws.recv()
        if "user_pos" in frame and frame["type"] != "authenticated":
            seen.append(frame)
    return seen


@pytest.mark.asyncio
async def test_a_socket_that_was_away_is_told_what_changed_then_live_ones(
    chat_server, user, other_user, worker_connections_closed
):
    room = await sync_to_async(make_room)(owner=user, name="Plans", kind="private")
    alice, bob = await token_of(user), await token_of(other_user)

    async with await WS.connect(f"{chat_server.ws_url}/ws/", token=bob) as ws:
        start = (await ws.recv_until("authenticated"))["user_pos"]

    async with api(chat_server, alice) as owner:  # while bob is away
        r = await owner.post(f"/rooms/{room.pk}/members/", json={"user_id": other_user.pk})
        assert r.status_code == 200, r.text
        r = await owner.patch(f"/rooms/{room.pk}/", json={"name": "Plans 2026"})
        assert r.status_code == 200, r.text
        r = await owner.post(
            f"/rooms/{room.pk}/members/", json={"user_id": other_user.pk, "role": "admin"}
        )
        assert r.status_code == 200, r.text

    url = f"{chat_server.ws_url}/ws/?after_user={start}"
    async with await WS.connect(url, token=bob) as ws:
        hello = await ws.recv()
        assert hello["type"] == "authenticated"
        assert hello["user_pos"] == start + 3
        missed = await changes(ws, 3)
        assert [(c["type"], c["user_pos"]) for c in missed] == [
            ("room_added", start + 1),
            ("room_updated", start + 2),
            ("membership_changed", start + 3),
        ]
        assert missed[1]["name"] == "Plans 2026"
        assert missed[2]["role"] == "admin"

        async with api(chat_server, alice) as owner:  # then live
            r = await owner.delete(f"/rooms/{room.pk}/members/{other_user.pk}/")
            assert r.status_code == 204, r.text
        (removed,) = await changes(ws, 1)
        assert removed == {"type": "room_removed", "room": room.pk, "user_pos": start + 4}
        await ws.no_frame(0.3)  # each change once


@pytest.mark.asyncio
async def test_the_authenticate_frame_takes_after_user_too(
    chat_server, user, other_user, worker_connections_closed
):
    bob = await token_of(other_user)
    room = await sync_to_async(make_room)(owner=user, name="Frames")
    async with api(chat_server, bob) as http:
        assert (await http.post(f"/rooms/{room.pk}/join/")).status_code == 200
    async with await WS.connect(f"{chat_server.ws_url}/ws/") as ws:
        await ws.send({"type": "authenticate", "token": bob, "after_user": 0})
        assert (await ws.recv())["type"] == "authenticated"
        (added,) = await changes(ws, 1)
        assert added["type"] == "room_added" and added["room"] == room.pk


@pytest.mark.asyncio
async def test_reading_on_one_socket_clears_the_room_on_the_users_others(
    chat_server, user, other_user, worker_connections_closed
):
    room = await sync_to_async(make_room)(owner=user, name="Reading")
    alice, bob = await token_of(user), await token_of(other_user)
    async with api(chat_server, bob) as http:
        assert (await http.post(f"/rooms/{room.pk}/join/")).status_code == 200
    async with api(chat_server, alice) as http:
        r = await http.post(f"/rooms/{room.pk}/messages/", json={"content": "read me"})
        message = r.json()

    async with (
        await WS.connect(f"{chat_server.ws_url}/ws/", token=bob) as phone,
        await WS.connect(f"{chat_server.ws_url}/ws/", token=bob) as desk,
    ):
        await phone.recv_until("authenticated")
        await desk.recv_until("authenticated")
        answer = await desk.request({"type": "read", "room": room.pk, "message_id": message["id"]})
        assert answer["type"] == "ack" and answer["unread_count"] == 0
        read = await phone.recv_until("room_read", room=room.pk)
        assert read["last_read_seq"] == message["seq"]
        assert read["unread_count"] == 0 and read["mention_count"] == 0


@pytest.mark.asyncio
async def test_a_bad_after_user_is_said_and_the_socket_stays(
    chat_server, other_user, worker_connections_closed
):
    bob = await token_of(other_user)
    async with await WS.connect(f"{chat_server.ws_url}/ws/?after_user=-1", token=bob) as ws:
        error = await ws.recv()
        assert error["type"] == "error" and error["code"] == "validation_error"
        assert "after_user" in error["fields"]
        assert (await ws.recv())["type"] == "authenticated"
        assert (await ws.request({"type": "ping"}))["type"] == "pong"
    async with await WS.connect(f"{chat_server.ws_url}/ws/") as ws:
        answer = await ws.request({"type": "authenticate", "token": bob, "after_user": "x"})
        assert answer["type"] == "error" and answer["code"] == "validation_error"


@pytest.mark.asyncio
async def test_drained_from_one_process_a_socket_catches_up_on_another(
    user, worker_connections_closed
):
    """Two processes on one database: bob's socket is drained from the first (1012);
    while it reconnects, rooms change; it reconnects to the second with `after_user` and
    misses nothing. The replay is read from the database: no Redis needed."""
    bob = await sync_to_async(UserFactory)(username="bob-drained")
    rooms = [await sync_to_async(make_room)(owner=user, name=f"Drain {n}") for n in range(3)]
    first = LiveServer(server_environment(SHUTDOWN_TIMEOUT="10"))
    second = LiveServer(server_environment())
    await asyncio.gather(asyncio.to_thread(first.start), asyncio.to_thread(second.start))
    try:
        alice, bobs = await token_of(user), await token_of(bob)
        ws = await WS.connect(f"{first.ws_url}/ws/", token=bobs)
        seen = (await ws.recv_until("authenticated"))["user_pos"]
        async with api(first, alice) as owner:  # live on the process bob is on
            await owner.post(f"/rooms/{rooms[0].pk}/members/", json={"user_id": bob.pk})
        (live,) = await changes(ws, 1)
        seen = live["user_pos"]

        first.process.send_signal(signal.SIGTERM)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await collect(ws, 15)
            await ws.recv(timeout=1)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012

        async with api(second, alice) as owner:  # while bob is reconnecting
            await owner.post(f"/rooms/{rooms[1].pk}/members/", json={"user_id": bob.pk})
            await owner.delete(f"/rooms/{rooms[0].pk}/members/{bob.pk}/")
            await owner.delete(f"/rooms/{rooms[2].pk}/")

        url = f"{second.ws_url}/ws/?after_user={seen}"
        async with await WS.connect(url, token=bobs) as again:
            missed = await changes(again, 2)
            assert [(c["type"], c["room"]) for c in missed] == [
                ("room_added", rooms[1].pk),
                ("room_removed", rooms[0].pk),
            ]
            assert [c["user_pos"] for c in missed] == [seen + 1, seen + 2]
            await again.no_frame(0.3)  # the deleted room was not bob's
    finally:
        await asyncio.gather(asyncio.to_thread(first.stop), asyncio.to_thread(second.stop))
