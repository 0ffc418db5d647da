"""A client that stops reading cannot make the server hold unbounded data for it, nor slow
down the others: past WEBSOCKET_SEND_BUFFER its socket is closed (4408) and dropped."""

import asyncio
import base64
import os
import socket
import time

import pytest

from tests.live import WS, LiveServer, server_environment

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

MESSAGES = 250
SIZE = 30000


def open_without_reading(server: LiveServer, path: str) -> socket.socket:
    """A WebSocket whose client reads the handshake and then nothing more; a small
    receive buffer makes the server's side fill up quickly."""
    conn = socket.socket()
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    conn.settimeout(15)
    conn.connect(("127.0.0.1", server.port))
    key = base64.b64encode(os.urandom(16)).decode()
    conn.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        byte = conn.recv(1)
        assert byte, f"closed during the handshake: {head!r}"
        head += byte
    assert head.startswith(b"HTTP/1.1 101"), head
    return conn


def wait_until_dropped(conn: socket.socket, within: float) -> bool:
    """Read what is left; True once the server has closed or reset the connection."""
    deadline = time.monotonic() + within
    conn.settimeout(0.5)
    while time.monotonic() < deadline:
        try:
            if not conn.recv(65536):
                return True
        except TimeoutError:
            continue
        except ConnectionResetError:
            return True
    return False


@pytest.mark.asyncio
async def test_a_client_that_stops_reading_is_closed_and_others_get_everything(
    general, user, other_user, alice_token, bob_token
):
    env = server_environment(
        WEBSOCKET_SEND_BUFFER="65536", MAX_MESSAGE_LENGTH=str(SIZE + 10), LOG_LEVEL="info"
    )
    server = LiveServer(env)
    await asyncio.to_thread(server.start)
    try:
        room_path = f"/ws/rooms/{general.pk}/"
        stalled = await asyncio.to_thread(
            open_without_reading, server, f"{room_path}?token={alice_token}"
        )
        async with (
            await WS.connect(f"{server.ws_url}{room_path}", token=bob_token) as bob,
        ):
            await bob.recv_until("room_users")
            for n in range(MESSAGES):
                content = f"{n:04} " + "x" * SIZE
                await bob.send({"type": "message", "room": general.pk, "content": content})
            acked, received = set(), set()
            while len(acked) < MESSAGES or len(received) < MESSAGES:
                frame = await bob.recv(timeout=10)
                if frame["type"] == "ack":
                    acked.add(frame["message"]["pos"])
                elif frame["type"] == "message" and frame["message"]["type"] == "text":
                    received.add(frame["pos"])
                else:
                    assert frame["type"] != "error", frame
            assert received == acked  # the stalled client delayed nobody

        dropped = await asyncio.to_thread(wait_until_dropped, stalled, 30)
        stalled.close()
        assert dropped, "the server kept a socket whose client stopped reading"
        # The whole log: how much is logged after the close depends on when, in the
        # burst, the buffer overflowed.
        assert "ws_slow_client_closed" in server.log_text()
    finally:
        server.stop()
