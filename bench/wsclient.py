"""A lean WebSocket client on `asyncio.Protocol`, cheap enough to drive thousands of sockets.

It speaks just what the load tool needs of RFC 6455: the opening handshake with a random
key, masked client text frames, unmasked server frames parsed in `data_received`
(fragmented messages reassembled), pings answered with pongs, and the close handshake.
Each text message is handed, as bytes, to the handler set with `listen`, which the caller
may swap at any time (a JSON-parsing one while a socket is set up, a regex-only one on the
hot path). Messages that arrive before the first `listen` (the server's first frame often
comes in the same read as the handshake answer) are kept and handed over then.
"""

import asyncio
import base64
import hashlib
import os
import struct
from collections.abc import Callable

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

TextHandler = Callable[[bytes], None]


def mask(payload: bytes, key: bytes) -> bytes:
    """XOR `payload` with the repeated 4-byte `key` (one big-integer XOR, not a byte loop)."""
    n = len(payload)
    if n == 0:
        return payload
    repeated = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(repeated, "little")).to_bytes(
        n, "little"
    )


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """One final, masked client frame."""
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    key = os.urandom(4)
    return header + key + mask(payload, key)


class WebSocketClient(asyncio.Protocol):
    """One client WebSocket. Await `opened` after `loop.create_connection`."""

    def __init__(self, host: str, path: str) -> None:
        self.host = host
        self.path = path
        self._early: list[bytes] | None = []  # messages received before `listen`
        self.on_text: TextHandler = self._early.append
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        # A handshake that fails after its caller gave up is not an unhandled error.
        self.opened.add_done_callback(lambda f: f.cancelled() or f.exception())
        self.closed: asyncio.Future[int | None] = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self._key = base64.b64encode(os.urandom(16))
        self._handshaking = True
        self._buffer = bytearray()
        self._fragments: list[bytes] = []
        self.close_code: int | None = None

    # ------------------------------------------------------------------ asyncio

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        request = (
            f"GET {self.path} HTTP/1.1\r\n"
            f"Host: {self.host}\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {self._key.decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        )
        transport.write(request.encode())

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._handshaking and not self._finish_handshake():
            return
        self._parse_frames()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed during the handshake"))
        if not self.closed.done():
            self.closed.set_result(self.close_code)

    # ------------------------------------------------------------------ protocol

    def _finish_handshake(self) -> bool:
        """Consume the HTTP answer once complete; False while more bytes are needed."""
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self._buffer[:end]).decode("latin-1")
        del self._buffer[: end + 4]
        self._handshaking = False
        expected = base64.b64encode(hashlib.sha1(self._key + GUID).digest()).decode()
        status = head.split("\r\n", 1)[0]
        if " 101 " not in f"{status} " or expected not in head:
            self.opened.set_exception(ConnectionError(f"handshake refused: {status}"))
            assert self.transport is not None
            self.transport.close()
            return False
        self.opened.set_result(None)
        return True

    def _parse_frames(self) -> None:
        buf = self._buffer
        at, size = 0, len(buf)
        while size - at >= 2:
            first, second = buf[at], buf[at + 1]
            length, head = second & 0x7F, 2
            if length == 126:
                if size - at < 4:
                    break
                length, head = int.from_bytes(buf[at + 2 : at + 4], "big"), 4
            elif length == 127:
                if size - at < 10:
                    break
                length, head = int.from_bytes(buf[at + 2 : at + 10], "big"), 10
            key = b""
            if second & 0x80:  # servers must not mask, but unmask if one does
                key, head = bytes(buf[at + head : at + head + 4]), head + 4
            if size - at < head + length:
                break
            payload = bytes(buf[at + head : at + head + length])
            at += head + length
            self._on_frame(first & 0x80, first & 0x0F, mask(payload, key) if key else payload)
        if at:
            del buf[:at]

    def _on_frame(self, fin: int, opcode: int, payload: bytes) -> None:
        if opcode == OP_TEXT and fin:
            self.on_text(payload)
        elif opcode in (OP_TEXT, OP_BINARY, OP_CONT):
            self._fragments.append(payload)
            if fin:
                message, self._fragments = b"".join(self._fragments), []
                self.on_text(message)
        elif opcode == OP_PING:
            self._write(OP_PONG, payload)
        elif opcode == OP_CLOSE:
            self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
            self._write(OP_CLOSE, payload[:2])
            assert self.transport is not None
            self.transport.close()

    # ------------------------------------------------------------------ API

    def listen(self, handler: TextHandler) -> None:
        """Hand every text message from now on (and any that came earlier) to `handler`."""
        self.on_text = handler
        early, self._early = self._early, None
        for message in early or ():
            handler(message)

    def _write(self, opcode: int, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(encode_frame(opcode, payload))

    def send_text(self, text: str | bytes) -> None:
        self._write(OP_TEXT, text.encode() if isinstance(text, str) else text)

    def close(self, code: int = 1000) -> None:
        """Start the close handshake; `closed` resolves when the connection is gone."""
        self._write(OP_CLOSE, code.to_bytes(2, "big"))

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


async def connect(
    host: str,
    port: int,
    path: str,
    *,
    source: str | None = None,
    timeout: float = 30.0,
) -> WebSocketClient:
    """Open a WebSocket to ws://host:port/path, optionally from a given source address."""
    loop = asyncio.get_running_loop()
    local = (source, 0) if source else None
    _, client = await asyncio.wait_for(
        loop.create_connection(
            lambda: WebSocketClient(f"{host}:{port}", path), host, port, local_addr=local
        ),
        timeout,
    )
    try:
        await asyncio.wait_for(asyncio.shield(client.opened), timeout)
    except BaseException:
        client.abort()
        raise
    return client
