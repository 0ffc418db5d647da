"""The `reconnect` scenario: a reconnect storm after a deploy (SPEC 5, 12).

    python bench/load.py reconnect [--quick]

Two `manage.py serve` processes over Redis, both pinned to the server core. N users, each
in 10 rooms of 100 members, hold one socket each on process A: authenticated, joined to
their 10 rooms with one batched `join` frame (`rooms`). A is sent SIGTERM: it drains,
closing every socket with 1012. Each client reconnects at once to process B with
`after_user` (its own stream's position) and joins its 10 rooms again with `after` (the
last position it saw in each), while a sender keeps posting into the rooms through B.

Reported: how long until every socket is back (authenticated, 10 joins answered, replays
received), the server CPU that cost per socket on B, and whether anything was missed: at
the end each client must have seen every position of each of its rooms exactly once.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import time
from typing import Any

import scenarios
from servers import cpu_seconds
from targets import SETUP_TIMEOUT, close_all
from wsclient import WebSocketClient, connect

ROOMS_PER_USER = 10
ROOM_SIZE = 100
CONCURRENCY = 50  # handshakes in flight from the generator
SOURCES = ("127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4")
POSTS_DURING = 200  # messages posted through B while the storm lasts (spread over rooms)


def count(config: scenarios.Config) -> int:
    override = os.environ.get("BENCH_RECONNECT_SOCKETS")  # a smaller storm, to profile
    if override:
        return int(override)
    return 1000 if config.quick else 10_000


def users(config: scenarios.Config) -> int:
    return count(config) + 1  # the last one posts into every room


def rooms(config: scenarios.Config, first: int) -> dict[str, list[int]]:
    """Blocks of ROOM_SIZE users; each block shares ROOMS_PER_USER rooms (with the sender)."""
    made: dict[str, list[int]] = {}
    sender = first + count(config)
    for block in range(count(config) // ROOM_SIZE):
        members = [*range(first + block * ROOM_SIZE, first + (block + 1) * ROOM_SIZE), sender]
        for k in range(ROOMS_PER_USER):
            made[f"rc{block}-{k}"] = members
    return made


class Client:
    """One user's socket, across the reconnect: what it saw of each room."""

    def __init__(self, token: str, room_ids: list[int], source: str) -> None:
        self.token = token
        self.room_ids = room_ids
        self.source = source
        self.last = dict.fromkeys(room_ids, 0)  # room -> last position seen, gap-free
        self.floor: dict[int, int] = {}  # room -> position its join answered (this connection)
        self.gaps = 0
        self.duplicates = 0
        self.user_pos = 0
        self.socket: WebSocketClient | None = None
        self.ready: asyncio.Future[None] | None = None
        self.started: set[int] = set()

    def _check_ready(self) -> None:
        """Back: every join answered and replayed up to its answer's position."""
        if self.ready is None or self.ready.done() or len(self.floor) < len(self.room_ids):
            return
        if all(self.last[r] >= floor for r, floor in self.floor.items()):
            self.ready.set_result(None)

    async def open(self, port: int, *, resume: bool) -> None:
        loop = asyncio.get_running_loop()
        self.ready = loop.create_future()
        self.floor = {}
        path = f"/ws/?token={self.token}"
        if resume:
            path += f"&after_user={self.user_pos}"
        self.socket = await connect(
            "127.0.0.1", port, path, source=self.source, timeout=SETUP_TIMEOUT
        )
        self.socket.listen(self._on_text)
        rooms: list[dict[str, int]] = []
        for room in self.room_ids:
            rooms.append({"room": room, "after": self.last[room]} if resume else {"room": room})
        self.socket.send_text(json.dumps({"type": "join", "rooms": rooms, "ref": 1}))
        await asyncio.wait_for(asyncio.shield(self.ready), SETUP_TIMEOUT)

    def _on_text(self, payload: bytes) -> None:
        frame = json.loads(payload)
        kind = frame.get("type")
        if kind == "message":
            room, pos = frame["room"], frame["pos"]
            last = self.last.get(room)
            if last is None:
                return
            if pos <= last:
                self.duplicates += 1
            elif pos > last + 1:
                self.gaps += 1
                self.last[room] = pos
            else:
                self.last[room] = pos
            self._check_ready()
        elif kind == "ack" and "rooms" in frame:
            for joined in frame["rooms"]:
                room = joined["room"]
                if room not in self.started:  # a first join starts at the room's end
                    self.started.add(room)
                    self.last[room] = joined["pos"]
                self.floor[room] = joined["pos"]
            self._check_ready()
        elif kind == "authenticated" or "user_pos" in frame:
            self.user_pos = max(self.user_pos, frame.get("user_pos", 0))
        elif kind == "error" and self.ready and not self.ready.done():
            self.ready.set_exception(RuntimeError(f"error frame: {frame}"))


async def _open_all(clients: list[Client], port: int, *, resume: bool) -> None:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(client: Client) -> None:
        async with gate:
            await client.open(port, resume=resume)

    await asyncio.gather(*(one(c) for c in clients))


async def _post(port: int, token: str, room_ids: list[int], n: int) -> int:
    """Post `n` messages through one socket, round-robin over the rooms; acked count."""
    sender = await connect("127.0.0.1", port, f"/ws/?token={token}", timeout=SETUP_TIMEOUT)
    acked = 0
    done = asyncio.get_running_loop().create_future()

    def on_text(payload: bytes) -> None:
        nonlocal acked
        if b'"ack"' in payload and b'"message"' in payload:
            acked += 1
            if acked == n and not done.done():
                done.set_result(None)

    sender.listen(on_text)
    for i in range(n):
        room = room_ids[i % len(room_ids)]
        sender.send_text(
            json.dumps({"type": "message", "room": room, "content": f"storm {i}", "ref": i})
        )
        await asyncio.sleep(0.005)
    await asyncio.wait_for(done, SETUP_TIMEOUT)
    sender.close()
    return acked


def _room_positions(ctx: scenarios.Context, room_ids: list[int]) -> dict[int, int]:
    import subprocess
    import sys

    code = (
        "import json,sys,django;django.setup();from rooms.models import Room;"
        "ids=json.loads(sys.argv[1]);"
        "print(json.dumps(dict(Room.objects.filter(pk__in=ids).values_list('pk','pos'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(room_ids)],
        env={**ctx.env, "DJANGO_SETTINGS_MODULE": "chatproject.settings"},
        cwd=str(scenarios.BENCH.parent),
        capture_output=True,
        text=True,
        check=True,
    )
    return {int(k): v for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items()}


async def run(ctx: scenarios.Context) -> dict[str, Any]:
    config, first = ctx.config, ctx.first_user["reconnect"]
    n = count(config)
    env = {"REDIS_URL": ctx.redis_url, "SHUTDOWN_TIMEOUT": "60"}
    a, b = ctx.chat("chat-reconnect-a", **env), ctx.chat("chat-reconnect-b", **env)
    profile = os.environ.get("BENCH_PROFILE")  # a script that runs B under a profiler
    if profile:
        b.server.argv[1:1] = [profile]
    room_of = ctx.rooms
    clients = []
    for i in range(n):
        block = i // ROOM_SIZE
        ids = [room_of[f"rc{block}-{k}"] for k in range(ROOMS_PER_USER)]
        clients.append(Client(ctx.tokens[first + i], ids, SOURCES[i % len(SOURCES)]))
    all_rooms = sorted({r for c in clients for r in c.room_ids})
    sender = ctx.tokens[first + n]
    with scenarios.running(a.server, b.server):
        try:
            print(f"  reconnect: {n} sockets on A")
            began = time.monotonic()
            cpu_a = cpu_seconds(a.server.pid)
            await _open_all(clients, a.server.port, resume=False)
            first_connect_s = time.monotonic() - began
            first_cpu_ms = (cpu_seconds(a.server.pid) - cpu_a) / n * 1000
            # Something to replay: a message in each room before the drain (seen live).
            await _post(b.server.port, sender, all_rooms, len(all_rooms))
            await asyncio.sleep(2)

            print("  reconnect: SIGTERM to A; every client reconnects to B")
            cpu_b = cpu_seconds(b.server.pid)
            began = time.monotonic()
            assert a.server.process is not None
            a.server.process.send_signal(signal.SIGTERM)
            await asyncio.gather(*(c.socket.closed for c in clients if c.socket))
            codes = [c.socket.close_code for c in clients if c.socket]
            random.shuffle(clients)
            storm = asyncio.ensure_future(_open_all(clients, b.server.port, resume=True))
            posted = await _post(b.server.port, sender, all_rooms, POSTS_DURING)
            await storm
            recovered_s = time.monotonic() - began
            storm_cpu_ms = (cpu_seconds(b.server.pid) - cpu_b) / n * 1000
            await asyncio.sleep(3)  # the last live messages
            final = _room_positions(ctx, all_rooms)
            behind = sum(1 for c in clients for r in c.room_ids if c.last[r] != final[r])
        finally:
            b.server.mark_teardown()
            close_all([c.socket for c in clients if c.socket])
    return {
        "sockets": n,
        "rooms_per_socket": ROOMS_PER_USER,
        "room_size": ROOM_SIZE,
        "first_connect_s": round(first_connect_s, 1),
        "first_connect_server_ms_per_socket": round(first_cpu_ms, 2),
        "closed_with_1012": sum(code == 1012 for code in codes),
        "recovered_s": round(recovered_s, 1),
        "storm_server_ms_per_socket": round(storm_cpu_ms, 2),
        "posted_during_storm": posted,
        "rooms_behind_at_end": behind,
        "gaps": sum(c.gaps for c in clients),
        "duplicates": sum(c.duplicates for c in clients),
        "server_log": scenarios.log_summary(a.server, b.server),
    }
