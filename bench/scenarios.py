"""The scenarios: fan-out sweeps, idle sockets, concurrent writes, two processes on Redis,
Socket.IO clients beside native ones (its own module, `scenario_socketio.py`).

Each scenario says how many users and which rooms it needs (`Scenario.users`,
`Scenario.rooms`), so one seeding pass prepares the whole run, and each starts the server
processes it measures and stops them before it returns.
"""

import asyncio
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import scenario_reconnect
import scenario_socketio
from fanout import GENERATOR_BOUND, MARKER, Member, Sender, measure_step, settle, sweep
from servers import (
    BENCH,
    CoreMeter,
    CpuMeter,
    Server,
    chat_server,
    cpu_seconds,
    rss_bytes,
    tutorial_server,
)
from stats import Histogram
from targets import ChatTarget, Target, TutorialTarget, close_all, open_many
from wsclient import WebSocketClient

MB = 1024 * 1024
START_ATTEMPTS = 3  # the server may be mid-edit: try again a little later
START_PAUSE_S = 20.0
# Messages per second of a fan-out sweep, in order; a sweep stops at the first step the
# server does not keep up with (loss, backlog, unanswered messages).
RATES = [1, 2, 5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 400, 500, 750, 1000, 2000]
QUICK_RATES = [2, 10, 50, 100, 200, 500, 1000, 2000]


@dataclass
class Config:
    quick: bool
    step_seconds: float
    rates: list[float]
    idle_sockets: int
    idle_room_size: int
    idle_window_s: float
    write_senders: int
    write_window: int
    write_seconds: float
    redis_members: int
    redis_rate: float
    redis_seconds: float

    @classmethod
    def make(cls, quick: bool) -> "Config":
        return cls(
            quick=quick,
            step_seconds=1.5 if quick else 5.0,
            rates=QUICK_RATES if quick else RATES,
            idle_sockets=1000 if quick else 10_000,
            idle_room_size=10,
            idle_window_s=2.0 if quick else 5.0,
            write_senders=50,
            write_window=4,
            write_seconds=2.0 if quick else 5.0,
            redis_members=100,
            redis_rate=20,
            redis_seconds=3.0 if quick else 10.0,
        )


@dataclass
class Context:
    """What every scenario gets: the settings, our server's environment, seeded data."""

    config: Config
    env: dict[str, str]  # our server's environment (no REDIS_URL)
    redis_url: str
    tokens: list[str]  # by user number
    rooms: dict[str, int]  # room key -> id
    first_user: dict[str, int]  # scenario -> its first user number

    def chat(self, name: str, **env: str) -> ChatTarget:
        server = chat_server(name, {**self.env, **env})
        return ChatTarget(server, self.tokens, self.rooms)


@dataclass
class Scenario:
    users: Callable[[Config], int]
    rooms: Callable[[Config, int], dict[str, list[int]]]
    run: Callable[[Context], Awaitable[dict[str, Any]]]


# ------------------------------------------------------------------------ helpers


def start(server: Server) -> None:
    for attempt in range(1, START_ATTEMPTS + 1):
        try:
            server.start()
            return
        except RuntimeError as exc:
            if attempt == START_ATTEMPTS:
                raise
            print(f"  {server.name} did not start ({exc}); retrying in {START_PAUSE_S:.0f}s")
            time.sleep(START_PAUSE_S)


@contextlib.contextmanager
def running(*servers: Server) -> Iterator[None]:
    """Start the servers (pinned, /healthz answered); stop them by PID on the way out."""
    try:
        for server in servers:
            start(server)
        yield
    finally:
        for server in servers:
            server.stop()


def log_summary(*servers: Server) -> dict[str, Any]:
    """What each server logged (at LOG_LEVEL=warning), while measuring and at teardown."""
    return {s.name: {"log": str(s.log_path), **s.log_events()} for s in servers}


async def guarded(run: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    """A target's result, or the error that stopped it (the run goes on)."""
    try:
        return await run()
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"[:1000]}


# ------------------------------------------------------------------------ fanout


def fanout(size: int) -> Scenario:
    """N members in one room, one of them sending at a rising rate."""
    key = f"fanout{size}"

    async def run(ctx: Context) -> dict[str, Any]:
        users = range(ctx.first_user[key], ctx.first_user[key] + size)
        results = {}
        for target in (ctx.chat(f"chat-{key}"), TutorialTarget(tutorial_server(f"tutorial-{key}"))):
            print(f"  {key}: {target.kind}")
            results[target.kind] = await guarded(
                lambda t=target: fanout_one(ctx.config, t, [(u, key) for u in users], key)
            )
        return {"members": size, "step_seconds": ctx.config.step_seconds, "targets": results}

    return Scenario(users=lambda c: size, rooms=lambda c, first: {key: _span(first, size)}, run=run)


async def fanout_one(
    config: Config, target: Target, sockets: list[tuple[int, str]], room: str
) -> dict[str, Any]:
    server = target.server
    with running(server):
        began = time.monotonic()
        clients = await open_many(target, sockets)
        setup_s = time.monotonic() - began
        try:
            result = await sweep(
                target=target,
                clients=clients,
                room=room,
                rates=config.rates,
                duration=config.step_seconds,
            )
        finally:
            server.mark_teardown()
            close_all(clients)
    return {"setup_s": round(setup_s, 1), **result, "server_log": log_summary(server)}


def _span(first: int, count: int) -> list[int]:
    return list(range(first, first + count))


# -------------------------------------------------------------------------- idle


def _idle_rooms(config: Config, first: int) -> dict[str, list[int]]:
    size = config.idle_room_size
    return {
        f"idle{k}": _span(first + k * size, min(size, config.idle_sockets - k * size))
        for k in range((config.idle_sockets + size - 1) // size)
    }


async def idle(ctx: Context) -> dict[str, Any]:
    """Many idle sockets on one process: memory per socket and CPU while idle."""
    config, first = ctx.config, ctx.first_user["idle"]
    sockets = [(first + i, f"idle{i // config.idle_room_size}") for i in range(config.idle_sockets)]
    results = {}
    for target in (ctx.chat("chat-idle"), TutorialTarget(tutorial_server("tutorial-idle"))):
        print(f"  idle: {target.kind}")
        results[target.kind] = await guarded(lambda t=target: idle_one(config, t, sockets))
    return {"sockets": config.idle_sockets, "room_size": config.idle_room_size, "targets": results}


async def idle_one(
    config: Config, target: Target, sockets: list[tuple[int, str]]
) -> dict[str, Any]:
    server = target.server
    sources = ("127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4")
    warm = max(10, len(sockets) // 100)  # first sockets pay one-time costs; not counted
    clients: list[WebSocketClient] = []
    with running(server):
        try:
            clients += await open_many(target, sockets[:warm], sources=sources)
            await settle(server)
            rss_before = rss_bytes(server.pid)
            began, cpu0 = time.monotonic(), time.process_time()
            server_cpu0 = cpu_seconds(server.pid)
            clients += await open_many(target, sockets[warm:], sources=sources)
            setup_s = time.monotonic() - began
            server_setup_s = cpu_seconds(server.pid) - server_cpu0
            generator = (time.process_time() - cpu0) / setup_s
            await settle(server, limit_s=60)
            rss_after = rss_bytes(server.pid)
            meter = CpuMeter(server.pid)
            await asyncio.sleep(config.idle_window_s)
            idle_cpu = meter.share()
            still_open = sum(not c.closed.done() for c in clients)
        finally:
            server.mark_teardown()
            close_all(clients)
    added = len(sockets) - warm
    return {
        "sockets": len(sockets),
        "still_open": still_open,
        "setup_s": round(setup_s, 1),
        "connects_per_s": round(added / setup_s),
        "server_ms_per_connect": round(server_setup_s / added * 1000, 2),
        "rss_before_mb": round(rss_before / MB, 1),
        "rss_after_mb": round(rss_after / MB, 1),
        "kib_per_socket": round((rss_after - rss_before) / added / 1024, 1),
        "idle_cpu": round(idle_cpu, 3),
        "generator_cpu_setup": round(generator, 3),
        "generator_bound": generator > GENERATOR_BOUND,
        "server_log": log_summary(server),
    }


# ------------------------------------------------------------------------- write


class Writer:
    """A sender that keeps up to `window` messages un-acked until `stop_at`."""

    def __init__(self, client: WebSocketClient, target: ChatTarget, window: int) -> None:
        self.client = client
        self.target = target
        self.window = window
        self.stop_at = 0.0
        self.inflight: dict[int, int] = {}  # ref -> send time (ns)
        self.next_ref = 0
        self.hist = Histogram()
        self.acks = 0
        self.errors: Counter[str] = Counter()
        self.deliveries = 0
        client.listen(self.on_text)

    def fill(self) -> None:
        while len(self.inflight) < self.window and time.monotonic() < self.stop_at:
            ref, self.next_ref = self.next_ref, self.next_ref + 1
            self.inflight[ref] = time.monotonic_ns()
            self.client.send_text(self.target.message("write", f"~0.{ref}.0~", ref))

    def on_text(self, payload: bytes) -> None:
        if b'"ref"' not in payload:
            if MARKER.search(payload):
                self.deliveries += 1
            return
        frame = json.loads(payload)
        sent = self.inflight.pop(frame.get("ref"), None)
        if sent is None:
            return
        if frame.get("type") == "ack":
            self.acks += 1
            self.hist.add((time.monotonic_ns() - sent) // 1000)
        else:
            self.errors[str(frame.get("code"))] += 1
        self.fill()


async def write(ctx: Context) -> dict[str, Any]:
    """K senders, W messages in flight each, into one room; then check the stream.

    Two phases on one server: senders that only post (the write path: commit and ack),
    then senders that have also joined the room (each message is delivered to all K).
    """
    config, first = ctx.config, ctx.first_user["write"]
    target = ctx.chat("chat-write")
    sockets = [(first + i, "write") for i in range(config.write_senders)]
    phases = {}
    with running(target.server):
        for joined in (False, True):
            clients = await open_many(target, sockets, join=joined)
            try:
                phases["joined" if joined else "posting only"] = await write_phase(
                    config, target, clients
                )
            finally:
                close_all(clients)
    acked = sum(p["acked"] for p in phases.values())
    return {
        "senders": config.write_senders,
        "window": config.write_window,
        "seconds": config.write_seconds,
        "phases": phases,
        "database": verify_room(ctx, ctx.rooms["write"], acked),
        "server_log": log_summary(target.server),
    }


async def write_phase(
    config: Config, target: ChatTarget, clients: list[WebSocketClient]
) -> dict[str, Any]:
    """Send for `write_seconds`, then wait for the answers still due."""
    writers = [Writer(c, target, config.write_window) for c in clients]
    await settle(target.server)
    meter, core = CpuMeter(target.server.pid), CoreMeter()
    cpu0, began = time.process_time(), time.monotonic()
    for w in writers:
        w.stop_at = began + config.write_seconds
        w.fill()
    await asyncio.sleep(config.write_seconds)
    in_window = sum(w.acks for w in writers)
    server_cpu, core_busy = meter.share(), core.shares()
    generator = (time.process_time() - cpu0) / (time.monotonic() - began)
    deadline = time.monotonic() + 30
    while any(w.inflight for w in writers) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    hist, errors = Histogram(), Counter[str]()
    for w in writers:
        hist.merge(w.hist)
        errors.update(w.errors)
    return {
        "acked": sum(w.acks for w in writers),
        "acked_per_s": round(in_window / config.write_seconds),
        "unanswered": sum(len(w.inflight) for w in writers),
        "errors": dict(errors),
        **{f"ack_{k}": v for k, v in hist.summary().items()},
        "deliveries_per_s": round(sum(w.deliveries for w in writers) / config.write_seconds),
        "server_cpu": round(server_cpu, 3),
        "core_busy": core_busy,
        "generator_cpu": round(generator, 3),
        "generator_bound": generator > GENERATOR_BOUND,
    }


def verify_room(ctx: Context, room_id: int, acked: int) -> dict[str, Any]:
    """Ask the database whether the room's positions are 1..N, each once."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "verify.json"
        subprocess.run(
            [sys.executable, str(BENCH / "seed.py"), "verify", str(room_id), str(out)],
            env=ctx.env,
            check=True,
        )
        result = json.loads(out.read_text())
    result["matches_acks"] = result["messages"] == acked
    return result


# ------------------------------------------------------------------------ redis2


async def redis2(ctx: Context) -> dict[str, Any]:
    """Two processes over Redis; the sender on A; receivers on A and on B."""
    config, first = ctx.config, ctx.first_user["redis2"]
    env = {"REDIS_URL": ctx.redis_url}
    a, b = ctx.chat("chat-redis-a", **env), ctx.chat("chat-redis-b", **env)
    half = config.redis_members // 2
    users = [first + i for i in range(config.redis_members)]
    with running(a.server, b.server):
        on_a = await open_many(a, [(u, "redis2") for u in users[:half]])
        on_b = await open_many(b, [(u, "redis2") for u in users[half:]])
        try:
            groups = {"A": [Member(c) for c in on_a], "B": [Member(c) for c in on_b]}
            sender = Sender(groups["A"][0], a, "redis2")
            await settle(a.server)
            await settle(b.server)
            result = await measure_step(
                step_id=1,
                rate=config.redis_rate,
                duration=config.redis_seconds,
                sender=sender,
                groups=groups,
                servers=[a.server, b.server],
            )
        finally:
            a.server.mark_teardown()
            b.server.mark_teardown()
            close_all(on_a + on_b)
    return {
        "servers": "both pinned to core 0",
        **result,
        "server_log": log_summary(a.server, b.server),
    }


SCENARIOS: dict[str, Scenario] = {
    "fanout100": fanout(100),
    "fanout1000": fanout(1000),
    "idle": Scenario(users=lambda c: c.idle_sockets, rooms=_idle_rooms, run=idle),
    "write": Scenario(
        users=lambda c: c.write_senders,
        rooms=lambda c, first: {"write": _span(first, c.write_senders)},
        run=write,
    ),
    "redis2": Scenario(
        users=lambda c: c.redis_members,
        rooms=lambda c, first: {"redis2": _span(first, c.redis_members)},
        run=redis2,
    ),
    # A drain's reconnect storm onto a second process (bench/scenario_reconnect.py).
    "reconnect": Scenario(
        users=scenario_reconnect.users, rooms=scenario_reconnect.rooms, run=scenario_reconnect.run
    ),
    # Socket.IO clients beside native ones (bench/scenario_socketio.py).
    "socketio": Scenario(
        users=scenario_socketio.users, rooms=scenario_socketio.rooms, run=scenario_socketio.run
    ),
}
