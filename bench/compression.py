"""permessage-deflate: server CPU per delivery and bytes per message, compressed against
uncompressed, in one run of one server process; and idle memory per socket of each kind.

    python bench/compression.py                    # 300 sockets of each kind, 200 messages
    python bench/compression.py --sockets 100 --messages 50

One `manage.py serve` on a throwaway SQLite database (no Redis). One sender posts typical
chat messages (a sentence or two) into General and waits for each `ack`; the room's
listeners are raw WebSocket clients written here (they count the bytes of every frame and
inflate compressed ones). Phases, in the same process:

  1. the sender alone: the cost of posting (subtracted from the next two);
  2. N uncompressed listeners (no extension offered);
  3. N compressed listeners (Chromium's offer: `permessage-deflate; client_max_window_bits`).

Server CPU is user + system time from /proc/<pid>/stat; memory is VmRSS after each set of
sockets has connected and gone idle. Per-socket compression (what a fan-out that could not
share one compressed frame would pay per delivery) is timed here, on the same frame, with
the server's parameters.
"""

import argparse
import asyncio
import base64
import contextlib
import json
import os
import random
import re
import sys
import tempfile
import time
import zlib
from pathlib import Path

import websockets
from reliability import ROOT, Server

sys.path.insert(0, str(ROOT))
from chatproject.transport import deflate

WORDS = [
    "the",
    "meeting",
    "moved",
    "to",
    "three",
    "see",
    "you",
    "there",
    "can",
    "someone",
    "review",
    "my",
    "pull",
    "request",
    "lunch",
    "is",
    "ready",
    "deploy",
    "went",
    "fine",
    "thanks",
    "for",
    "the",
    "quick",
    "fix",
    "I",
    "will",
    "be",
    "late",
    "today",
    "the",
    "build",
    "is",
    "green",
    "again",
    "please",
    "check",
    "the",
    "numbers",
    "before",
    "Friday",
    "sounds",
    "good",
]
TICKS = os.sysconf("SC_CLK_TCK")
OFFER = "permessage-deflate; client_max_window_bits"


def typical_message(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 24))).capitalize() + "."


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


class Listener:
    """A raw WebSocket client: counts frames, bytes on the wire, and messages."""

    def __init__(self) -> None:
        self.wire_bytes = self.payload_bytes = self.messages = 0
        self.compressed_frames = 0
        self.extensions = ""

    async def open(self, port: int, token: str, offer: str | None) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        extension = f"Sec-WebSocket-Extensions: {offer}\r\n" if offer else ""
        self.writer.write(
            (
                f"GET /ws/rooms/1/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extension}"
                f"Authorization: Bearer {token}\r\n\r\n"
            ).encode()
        )
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode()
        assert head.startswith("HTTP/1.1 101"), head
        found = re.search(r"(?im)^sec-websocket-extensions:\s*(.*?)\r?$", head)
        self.extensions = found.group(1) if found else ""
        self.task = asyncio.create_task(self.read())

    async def read(self) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await self._read()  # until closed: the phase notices anything missing

    async def _read(self) -> None:
        while True:
            head = await self.reader.readexactly(2)
            length, size = head[1] & 0x7F, 2
            if length == 126:
                length, size = int.from_bytes(await self.reader.readexactly(2), "big"), 4
            elif length == 127:
                length, size = int.from_bytes(await self.reader.readexactly(8), "big"), 10
            payload = await self.reader.readexactly(length)
            if head[0] & 0x0F != 0x1:
                continue  # pings (autobahn's keep-alive) are not counted
            text = payload
            compressed = bool(head[0] & 0x40)
            if compressed:
                text = zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff")
            if text.startswith(b'{"type":"message",'):
                self.messages += 1
                self.compressed_frames += compressed
                self.wire_bytes += size + length
                self.payload_bytes += len(text)

    def close(self) -> None:
        self.task.cancel()
        self.writer.close()


async def phase(
    server: Server,
    token: str,
    sender: websockets.ClientConnection,
    count: int,
    offer: str | None,
    messages: int,
    seed: int,
) -> dict:
    listeners = [Listener() for _ in range(count)]
    rss_before = server.rss_kib()
    for listener in listeners:
        await listener.open(server.port, token, offer)
    await asyncio.sleep(2)  # joins answered, the process idle
    rss_after = server.rss_kib()
    rng = random.Random(seed)  # the same messages in every phase
    before = cpu_seconds(server.process.pid)
    started = time.perf_counter()
    for n in range(messages):
        await sender.send(
            json.dumps(
                {"type": "message", "room": 1, "content": typical_message(rng), "ref": str(n)}
            )
        )
        while json.loads(await sender.recv()).get("ref") != str(n):
            pass
    deadline = time.monotonic() + 60
    while any(listener.messages < messages for listener in listeners):
        if time.monotonic() > deadline:
            raise RuntimeError("listeners did not get every message")
        await asyncio.sleep(0.05)
    cpu = cpu_seconds(server.process.pid) - before
    elapsed = time.perf_counter() - started
    for listener in listeners:
        listener.close()
    await asyncio.sleep(1)
    delivered = sum(listener.messages for listener in listeners)
    return {
        "sockets": count,
        "extension": listeners[0].extensions if listeners else "",
        "cpu_s": cpu,
        "elapsed_s": elapsed,
        "deliveries": delivered,
        "compressed_frames": sum(listener.compressed_frames for listener in listeners),
        "wire_bytes_per_message": (
            sum(listener.wire_bytes for listener in listeners) / delivered if delivered else 0
        ),
        "json_bytes_per_message": (
            sum(listener.payload_bytes for listener in listeners) / delivered if delivered else 0
        ),
        "idle_rss_kib_per_socket": (rss_after - rss_before) / count if count else 0,
    }


def per_socket_compression_us(frame_text: str, repeat: int = 20_000) -> float:
    """What compressing one frame for one socket costs (the server's parameters)."""
    payload = frame_text.encode()
    started = time.perf_counter()
    for _ in range(repeat):
        compressor = zlib.compressobj(
            zlib.Z_DEFAULT_COMPRESSION,
            zlib.DEFLATED,
            -deflate.SERVER_WINDOW_BITS,
            deflate.MEM_LEVEL,
        )
        compressor.compress(payload)
        compressor.flush(zlib.Z_SYNC_FLUSH)
    return (time.perf_counter() - started) / repeat * 1e6


async def run(args: argparse.Namespace) -> None:
    with (
        tempfile.TemporaryDirectory() as tmp,
        Server(
            tmp,
            WEBSOCKET_COMPRESSION="true",
            MAX_SOCKETS_PER_USER="100000",
            CHAT_RATE_LIMIT="1000000/1s",
            WRITE_RATE_LIMIT="1000000/1s",
        ) as server,
    ):
        token = server.register("bench-compression")
        sender = await websockets.connect(
            f"ws://127.0.0.1:{server.port}/ws/rooms/1/",
            compression=None,
            additional_headers={"Authorization": f"Bearer {token}"},
            max_size=None,
        )
        sample = ""
        while True:  # skip `authenticated`, `room_users`: keep one message frame as a sample
            frame = json.loads(await sender.recv())
            if frame.get("type") == "room_users":
                break
        await sender.send(
            json.dumps(
                {
                    "type": "message",
                    "room": 1,
                    "content": typical_message(random.Random(0)),
                    "ref": "sample",
                }
            )
        )
        while True:
            text = await sender.recv()
            if json.loads(text).get("type") == "message":
                sample = text
                break
        # Grow the heap for M sockets first, so the idle memory of the first measured set
        # is not the heap's growth.
        await phase(server, token, sender, args.sockets, None, 0, 1)
        results = {}
        for name, count, offer in [
            ("sender only", 0, None),
            ("uncompressed", args.sockets, None),
            ("compressed", args.sockets, OFFER),
            ("sender only again", 0, None),
        ]:
            results[name] = await phase(server, token, sender, count, offer, args.messages, 1)
        await sender.close()
    base = (results["sender only"]["cpu_s"] + results["sender only again"]["cpu_s"]) / 2
    print(
        f"{args.sockets} sockets per kind, {args.messages} messages; a sample message frame "
        f"is {len(sample.encode())} bytes of JSON"
    )
    print(f"posting alone: {base / args.messages * 1e3:.2f} ms CPU per message")
    for name in ("uncompressed", "compressed"):
        r = results[name]
        per = (r["cpu_s"] - base) / r["deliveries"] * 1e6
        print(
            f"{name:>12}: {per:6.1f} µs server CPU per delivery, "
            f"{r['wire_bytes_per_message']:6.1f} bytes on the wire per message "
            f"(JSON {r['json_bytes_per_message']:.1f}), "
            f"{r['compressed_frames']} of {r['deliveries']} frames compressed, "
            f"idle RSS {r['idle_rss_kib_per_socket']:.1f} KiB per socket; "
            f"extension: {r['extension'] or '-'}"
        )
    plain, packed = results["uncompressed"], results["compressed"]
    saved = plain["wire_bytes_per_message"] - packed["wire_bytes_per_message"]
    print(f"saved: {saved:.1f} bytes per message ({saved / plain['wire_bytes_per_message']:.0%})")
    print(
        f"compressing per socket instead (not done): "
        f"{per_socket_compression_us(sample):.1f} µs per delivery"
    )
    print(json.dumps(results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=300)
    parser.add_argument("--messages", type=int, default=200)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
