"""permessage-deflate (RFC 7692) against a real `manage.py serve`: negotiated with the
`websockets` library, with a raw client that reads the frames' bytes, and with Chromium;
declined when WEBSOCKET_COMPRESSION is off. The fan-out compresses a frame once per event:
every compressed socket gets the same bytes, and uncompressed sockets in the same room
get the plain frame."""

import asyncio
import base64
import contextlib
import json
import os
import zlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from accounts.services import issue_tokens
from tests.factories import UserFactory, add_member
from tests.live import WAIT, WS, LiveServer, server_environment

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    # The ORM calls made through sync_to_async leave a connection in asgiref's thread.
    pytest.mark.usefixtures("worker_connections_closed"),
]

# A chat message as people write them: compressible text, a few hundred bytes of JSON.
CONTENT = "Meeting moved to 15:00 in room B, bring the quarterly numbers please. " * 4
EXTENSION = "sec-websocket-extensions"


async def token_for(user: Any) -> str:
    return (await sync_to_async(issue_tokens)(user=user))["access"]


@contextlib.asynccontextmanager
async def room_socket(
    server: LiveServer, room: Any, token: str, **kwargs: Any
) -> AsyncIterator[WS]:
    """A `websockets` socket in `room` (its join answered); `compression=None` offers none."""
    ws = await WS.connect(f"{server.ws_url}/ws/rooms/{room.pk}/", token=token, **kwargs)
    try:
        await ws.recv_until("authenticated")
        await ws.recv_until("room_users", room=room.pk)
        yield ws
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(), 5)


def negotiated(ws: WS) -> str:
    response = ws.conn.response
    assert response is not None
    return response.headers.get(EXTENSION, "")


class RawSocket:
    """A WebSocket client written here, to see the frames' bytes: the RSV1 bit says a
    frame is compressed; each message is inflated alone (no server context takeover)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.extensions = ""

    @classmethod
    async def open(cls, server: LiveServer, path: str, token: str, offer: str) -> "RawSocket":
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                f"Sec-WebSocket-Extensions: {offer}\r\n"
                f"Authorization: Bearer {token}\r\n\r\n"
            ).encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
        assert head.startswith(b"HTTP/1.1 101"), head
        raw = cls(reader, writer)
        for line in head.decode().split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == EXTENSION:
                raw.extensions = value.strip()
        return raw

    async def frame(self) -> tuple[int, bytes]:
        """The next frame: its first byte and its payload as sent."""
        head = await asyncio.wait_for(self.reader.readexactly(2), WAIT)
        length = head[1] & 0x7F
        if length == 126:
            length = int.from_bytes(await self.reader.readexactly(2), "big")
        elif length == 127:
            length = int.from_bytes(await self.reader.readexactly(8), "big")
        return head[0], await asyncio.wait_for(self.reader.readexactly(length), WAIT)

    async def message_with(self, content: str) -> tuple[int, bytes, dict[str, Any]]:
        """The first `message` frame with this content: first byte, payload, and JSON."""
        while True:
            first, payload = await self.frame()
            assert first & 0x0F == 0x1, f"not a text frame: {first:#x}"
            text = payload
            if first & 0x40:  # RSV1: compressed
                text = zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff")
            frame = json.loads(text)
            if frame.get("type") == "message" and frame["message"]["content"] == content:
                return first, payload, frame

    def close(self) -> None:
        self.writer.close()


@pytest.mark.asyncio
async def test_websockets_clients_negotiate_deflate_and_mixed_sockets_get_every_message(
    chat_server, general
):
    users = [await sync_to_async(UserFactory)() for _ in range(3)]
    for user in users:
        await sync_to_async(add_member)(general, user)
    tokens = [await token_for(user) for user in users]
    async with contextlib.AsyncExitStack() as stack:
        compressed = [
            await stack.enter_async_context(room_socket(chat_server, general, tokens[i % 3]))
            for i in range(4)
        ]
        plain = [
            await stack.enter_async_context(
                room_socket(chat_server, general, tokens[i % 3], compression=None)
            )
            for i in range(4)
        ]
        for ws in compressed:
            assert "permessage-deflate" in negotiated(ws)
        for ws in plain:
            assert negotiated(ws) == ""

        # Long (compressed) and short (sent plain, compression would not pay) messages,
        # from a compressed socket and from a plain one: all arrive everywhere, in order.
        contents = [CONTENT, "ok", CONTENT.upper(), "🙂 " * 300]
        senders = [compressed[0], plain[0], plain[1], compressed[1]]
        for sender, content in zip(senders, contents, strict=True):
            ack = await sender.request({"type": "message", "room": general.pk, "content": content})
            assert ack["type"] == "ack", ack
        for ws in compressed + plain:
            got = []
            while len(got) < len(contents):
                frame = await ws.recv_until("message")
                got.append(frame["message"]["content"])
            assert got == contents


@pytest.mark.asyncio
async def test_a_fanned_out_frame_is_compressed_once_and_the_same_bytes_reach_every_socket(
    chat_server, general
):
    user = await sync_to_async(UserFactory)()
    await sync_to_async(add_member)(general, user)
    token = await token_for(user)
    path = f"/ws/rooms/{general.pk}/"
    offer = "permessage-deflate; server_no_context_takeover; client_max_window_bits"
    raws = [await RawSocket.open(chat_server, path, token, offer) for _ in range(2)]
    plain = await RawSocket.open(chat_server, path, token, "x-unknown-extension")
    try:
        for raw in raws:
            # Accepted without server context takeover, the client asked for a small window.
            assert raw.extensions.startswith("permessage-deflate"), raw.extensions
            assert "server_no_context_takeover" in raw.extensions
            assert "client_max_window_bits=11" in raw.extensions
        assert plain.extensions == ""
        async with room_socket(chat_server, general, token) as sender:
            ack = await sender.request({"type": "message", "room": general.pk, "content": CONTENT})
            assert ack["type"] == "ack", ack
        seen = [await raw.message_with(CONTENT) for raw in raws]
        first, payload, frame = seen[0]
        assert first == 0xC1  # FIN, RSV1 (compressed), text
        assert frame["message"]["room"] == general.pk
        assert seen[1][:2] == (first, payload)  # the same bytes: compressed once
        plain_first, plain_payload, plain_frame = await plain.message_with(CONTENT)
        assert plain_first == 0x81 and plain_frame == frame
        saved = len(plain_payload) - len(payload)
        assert saved > len(plain_payload) // 2, (len(plain_payload), len(payload))
    finally:
        for raw in [*raws, plain]:
            raw.close()


@pytest.mark.asyncio
async def test_a_compressed_message_that_inflates_past_the_frame_limit_is_closed_1009(
    chat_server, general
):
    user = await sync_to_async(UserFactory)()
    await sync_to_async(add_member)(general, user)
    async with room_socket(chat_server, general, await token_for(user)) as ws:
        assert "permessage-deflate" in negotiated(ws)
        # 1 MiB of one letter deflates to about a kilobyte on the wire.
        content = "a" * (1024 * 1024)
        await ws.send({"type": "message", "room": general.pk, "content": content})
        with pytest.raises(Exception) as closed:
            while True:
                await ws.recv()
        code = ws.conn.close_code
        assert code == 1009, (code, closed.value)


@pytest.mark.asyncio
async def test_compression_off_negotiates_no_extension_and_messages_still_arrive(general):
    user = await sync_to_async(UserFactory)()
    await sync_to_async(add_member)(general, user)
    token = await token_for(user)
    server = LiveServer(server_environment(WEBSOCKET_COMPRESSION="false"))
    await asyncio.to_thread(server.start)
    try:
        async with (
            room_socket(server, general, token) as ws,
            room_socket(server, general, token) as other,
        ):
            assert negotiated(ws) == "" and negotiated(other) == ""
            ack = await ws.request({"type": "message", "room": general.pk, "content": CONTENT})
            assert ack["type"] == "ack", ack
            frame = await other.recv_until("message")
            assert frame["message"]["content"] == CONTENT
    finally:
        await asyncio.to_thread(server.stop)


@pytest.mark.skipif(
    not os.access("/usr/bin/chromium", os.X_OK),
    reason="needs Debian's Chromium at /usr/bin/chromium (apt-get install chromium)",
)
def test_chromium_negotiates_deflate_and_the_page_gets_messages(chat_server, general):
    from playwright.sync_api import sync_playwright

    from tests.e2e.test_web import (
        CHROMIUM,
        CHROMIUM_ARGS,
        RECORD_FRAMES,
        WAIT_MS,
        connected,
        received,
        register,
        rest,
        sign_in,
        unique,
    )

    reader = register(chat_server, unique("reader"))
    handshakes: list[dict[str, Any]] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context()
            context.set_default_timeout(WAIT_MS)
            context.add_init_script(RECORD_FRAMES)
            page = context.new_page()
            # The browser's own record of the upgrade: the headers the server answered.
            devtools = context.new_cdp_session(page)
            devtools.on(
                "Network.webSocketHandshakeResponseReceived",
                lambda event: handshakes.append(event),
            )
            devtools.send("Network.enable")
            sign_in(page, chat_server, reader["user"]["username"])
            connected(page)
            # Posted over REST, the message reaches the page through the fan-out.
            rest(chat_server, reader)(
                "POST", f"/api/rooms/{general.pk}/messages/", json={"content": CONTENT}
            )
            received(page, {"type": "message", "message.content": CONTENT})
        finally:
            browser.close()
    assert handshakes, "the page opened no WebSocket"
    for event in handshakes:
        response = event["response"]
        assert response["status"] == 101
        headers = {name.lower(): value for name, value in response["headers"].items()}
        assert headers.get(EXTENSION, "").startswith("permessage-deflate"), headers
