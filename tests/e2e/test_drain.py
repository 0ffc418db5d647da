"""SIGTERM to `manage.py serve`: /readyz turns 503, new sockets are refused, open ones are
closed with 1012 (Daphne alone sends no close frame), their `disconnect` runs, and the
process exits within SHUTDOWN_TIMEOUT."""

import asyncio
import base64
import os
import signal
import socket
import time

import httpx
import pytest
import websockets
from asgiref.sync import sync_to_async
from django.conf import settings

from accounts.models import User
from accounts.presence import online_user_ids
from tests.factories import add_member, make_room
from tests.live import WS, LiveServer, collect, server_environment

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def stubborn_socket(server: LiveServer, token: str) -> socket.socket:
    """An authenticated WebSocket that will never answer the server's close frame, so the
    drain has to wait for it (transport.server.CLOSE_HANDSHAKE_TIMEOUT): the window in which
    the test watches the draining server."""
    conn = socket.create_connection(("127.0.0.1", server.port), timeout=15)
    key = base64.b64encode(os.urandom(16)).decode()
    conn.sendall(
        (
            f"GET /ws/?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    answer = b""
    while b"authenticated" not in answer:
        chunk = conn.recv(4096)
        assert chunk, f"closed before `authenticated`: {answer!r}"
        answer += chunk
    assert answer.startswith(b"HTTP/1.1 101")
    return conn


@pytest.mark.asyncio
async def test_sigterm_drains_sockets_with_1012_and_exits(
    user, alice_token, worker_connections_closed
):
    # The drain ends once the stubborn socket is dropped (CLOSE_HANDSHAKE_TIMEOUT, 5 s);
    # a deadline far beyond that tells "ended when its sockets were gone" from "ended at
    # the deadline" even when a loaded machine adds seconds to the process's exit.
    shutdown_timeout = 30
    server = LiveServer(server_environment(SHUTDOWN_TIMEOUT=str(shutdown_timeout)))
    await asyncio.to_thread(server.start)
    stubborn = None
    try:
        client = await WS.connect(f"{server.ws_url}/ws/", token=alice_token)
        await client.recv_until("authenticated")
        stubborn = await asyncio.to_thread(stubborn_socket, server, alice_token)
        # Accepted, waiting for its `authenticate` frame: drained like the others.
        waiting = await WS.connect(f"{server.ws_url}/ws/")

        began = time.monotonic()
        server.process.send_signal(signal.SIGTERM)

        with pytest.raises(websockets.ConnectionClosed) as closed:
            await client.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await waiting.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012

        async with httpx.AsyncClient(timeout=5) as http:
            ready = await http.get(f"{server.url}/readyz")
        assert ready.status_code == 503
        assert ready.json()["status"] == "draining"

        late = await websockets.connect(
            f"{server.ws_url}/ws/", additional_headers={"Authorization": f"Bearer {alice_token}"}
        )
        with pytest.raises(websockets.ConnectionClosed) as refused:
            await asyncio.wait_for(late.recv(), 10)
        assert refused.value.rcvd.code == 1012  # nothing served: no `authenticated` first

        code = await asyncio.to_thread(server.process.wait, shutdown_timeout + 15)
        assert code == 0
        # The drain waited for the stubborn socket, then stopped well before its deadline
        # (which it would reach at shutdown_timeout - 1 s had it not noticed the sockets go).
        assert 2 < time.monotonic() - began < shutdown_timeout - 10
    finally:
        if stubborn is not None:
            stubborn.close()
        server.stop()

    seen = await sync_to_async(lambda: User.objects.get(pk=user.pk).last_seen)()
    if settings.REDIS_URL:
        # The presence store outlives the process: the drained sockets' entries stay for
        # the user's next socket on another process (a restart announces nothing); the
        # sweep says offline, with last_seen, if they do not come back.
        assert seen is None
        assert await sync_to_async(online_user_ids)([user.pk]) == {user.pk}
    else:
        # The presence store ends with the process: `disconnect` said offline first.
        assert seen is not None


@pytest.mark.asyncio
@pytest.mark.skipif(
    not settings.REDIS_URL,
    reason="needs REDIS_URL: a drain hands presence over only through a shared store",
)
async def test_a_restart_announces_nothing_to_the_others(
    user, other_user, alice_token, bob_token, worker_connections_closed
):
    """Bob's socket is drained from one process and comes back on another within
    PRESENCE_TTL: alice, on the other process, sees no left/offline/joined/online."""
    room = await sync_to_async(make_room)(owner=user, name="Restart")
    await sync_to_async(add_member)(room, other_user)
    doomed = LiveServer(server_environment(SHUTDOWN_TIMEOUT="10"))
    staying = LiveServer(server_environment())
    await asyncio.gather(asyncio.to_thread(doomed.start), asyncio.to_thread(staying.start))
    try:
        async with await WS.connect(
            f"{staying.ws_url}/ws/rooms/{room.pk}/", token=alice_token
        ) as alice:
            await alice.recv_until("room_users", room=room.pk)
            bob = await WS.connect(f"{doomed.ws_url}/ws/rooms/{room.pk}/", token=bob_token)
            await bob.recv_until("room_users", room=room.pk)
            while True:  # bob's arrival (alice's own user_joined may come first)
                frame = await alice.recv_until("user_joined", room=room.pk)
                if frame["user"]["id"] == other_user.pk:
                    break
            await collect(alice, 1.0)  # and his user_online, in whichever order

            doomed.process.send_signal(signal.SIGTERM)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:  # frames before the close frame
                    await bob.recv(timeout=15)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
            url = f"{staying.ws_url}/ws/rooms/{room.pk}/"
            async with await WS.connect(url, token=bob_token) as again:
                users = await again.recv_until("room_users", room=room.pk)
                assert {u["id"] for u in users["users"]} == {user.pk, other_user.pk}
                seen = await collect(alice, 2.0)
            presence = {"user_left", "user_offline", "user_joined", "user_online", "room_presence"}
            assert [f for f in seen if f["type"] in presence] == []
    finally:
        await asyncio.gather(asyncio.to_thread(doomed.stop), asyncio.to_thread(staying.stop))
