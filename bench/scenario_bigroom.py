"""The `bigroom` scenario: one room of 5,000 members, 5,000 sockets join it, then a
sender posts 10 msg/s into it.

    python bench/load.py bigroom [--quick]

Phases, each on a fresh `manage.py serve` process (PostgreSQL, pinned to core 0, the
generator on core 1):

- `batched` (this server as configured: ROOM_USERS_MAX=100, PRESENCE_BATCH_MS=250):
  5,000 sockets authenticate and join the room, 20 handshakes at a time (the bench's
  usual pace); the total join time, the server's CPU per join and the presence frames
  the sockets received. Then 10 msg/s for 20 s into the room: the fan-out latency at the
  5,000 sockets (p50/p99, from the sender's `send` to each receipt; one clock).
- `batched, Redis`: the same with REDIS_URL (presence and layer in Redis, one process).
- `legacy` at 1,000 (the baseline): ROOM_USERS_MAX so high that no room is big, which
  is the server before big rooms (every join a `user_joined` and a `user_online` to
  every member, `room_users` listing everyone); at 5,000 it would take many minutes.
  Beside it `batched` at 1,000, for the ratio.

`--quick`: 1,000 members, 5 s of messages, no Redis phase. Two knobs for looking closer:
`BIGROOM_PHASES=batched` runs only the named phases (comma-separated), and
`BIGROOM_PROFILE=/tmp/bigroom.prof` runs the `batched` phase's server under cProfile
(its event loop thread; the profile is written when the server exits), for
`python -m pstats`. The profiler slows the server: its latencies are not the figures.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
import urllib.request
from collections import Counter
from typing import TYPE_CHECKING, Any

from fanout import Member, Sender, marker, measure_step, settle
from report import _others
from servers import CpuMeter, cpu_seconds, rss_bytes
from targets import HOST, SETUP_TIMEOUT, Answers, ChatTarget, close_all
from wsclient import WebSocketClient, connect

if TYPE_CHECKING:
    from scenarios import Config, Context

KEY = "bigroom"
BASELINE_KEY = "bigroom1000"
RATE = 10.0  # messages a second into the room
P99_TARGET_MS = 150.0
CONCURRENCY = 20  # handshakes in flight (targets.CONNECT_CONCURRENCY)
SOURCES = ("127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4")
PRESENCE = (b'"room_presence"', b'"user_joined"', b'"user_online"', b'"user_left"')
LEGACY = {"ROOM_USERS_MAX": "1000000000"}  # no room is big: the server before big rooms
# The server's own figures (GET /metrics), read before and after the fan-out step.
METRICS = (
    "chat_fanout_seconds_sum",
    "chat_fanout_seconds_count",
    "chat_frames_out_total",
    "chat_gc_full_pause_seconds_sum",
    "chat_gc_full_pause_seconds_count",
)
METRIC_LINE = re.compile(r"^(\w+)(?:\{[^}]*\})? ([0-9.e+-]+)$", re.MULTILINE)


def scrape(server: Any) -> dict[str, float]:
    with urllib.request.urlopen(server.url("/metrics"), timeout=10) as answer:
        text = answer.read().decode()
    found = {name: float(value) for name, value in METRIC_LINE.findall(text)}
    return {name: found.get(name, 0.0) for name in METRICS}


def fanout_buckets(server: Any) -> dict[str, float]:
    """The cumulative `chat_fanout_seconds` histogram: le -> count."""
    with urllib.request.urlopen(server.url("/metrics"), timeout=10) as answer:
        text = answer.read().decode()
    pattern = re.compile(r'^chat_fanout_seconds_bucket\{le="([^"]+)"\} ([0-9.e+-]+)$', re.M)
    return {le: float(n) for le, n in pattern.findall(text)}


def members(config: Config) -> int:
    return 1000 if config.quick else 5000


def baseline_members(config: Config) -> int:
    return min(1000, members(config))


def seconds(config: Config) -> float:
    return 5.0 if config.quick else 20.0


def users(config: Config) -> int:
    return members(config)


def rooms(config: Config, first: int) -> dict[str, list[int]]:
    return {
        KEY: list(range(first, first + members(config))),
        BASELINE_KEY: list(range(first, first + baseline_members(config))),
    }


class Joiner:
    """Counts what the joined sockets receive while the others join."""

    def __init__(self) -> None:
        self.frames: Counter[str] = Counter()
        self.bytes = 0
        self.room_users_bytes = 0

    def count(self, payload: bytes) -> None:
        self.bytes += len(payload)
        for kind in PRESENCE:
            if kind in payload:
                self.frames[kind.strip(b'"').decode()] += 1
                return
        self.frames["other"] += 1

    async def open(self, target: ChatTarget, user: int, room: str, source: str) -> WebSocketClient:
        """Authenticate on `/ws/`, join, wait for the `ack` and the `room_users`."""
        path = f"/ws/?token={target.tokens[user]}"
        client = await connect(HOST, target.server.port, path, source=source, timeout=SETUP_TIMEOUT)
        answers = Answers(client)
        await answers.expect("authenticated")
        got_users = asyncio.get_running_loop().create_future()

        def listen(payload: bytes) -> None:
            if b'"room_users"' in payload and not got_users.done():
                self.room_users_bytes += len(payload)
                got_users.set_result(None)
                client.listen(self.count)  # from here on: what the others' joins cost it
                return
            if b'"ref"' in payload or b'"error"' in payload:
                answers._on_text(payload)

        client.listen(listen)
        client.send_text(json.dumps({"type": "join", "room": target.rooms[room], "ref": "j"}))
        await answers.expect("ack")
        await asyncio.wait_for(got_users, SETUP_TIMEOUT)
        return client


async def join_all(target: ChatTarget, sockets: list[int], room: str) -> dict[str, Any]:
    """Every socket joins (CONCURRENCY at a time); the cost, per join."""
    server = target.server
    joiner = Joiner()
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int, user: int) -> WebSocketClient:
        async with gate:
            return await joiner.open(target, user, room, SOURCES[i % len(SOURCES)])

    await settle(server)
    rss0, cpu0, began = rss_bytes(server.pid), cpu_seconds(server.pid), time.monotonic()
    tasks = [asyncio.ensure_future(one(i, u)) for i, u in enumerate(sockets)]
    try:
        clients = list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        close_all([c for c in done if isinstance(c, WebSocketClient)])
        raise
    join_s = time.monotonic() - began
    join_cpu = cpu_seconds(server.pid) - cpu0
    await settle(server, limit_s=120)  # the last batches go out
    after_s = time.monotonic() - began
    settled_cpu = cpu_seconds(server.pid) - cpu0
    n = len(sockets)
    return {
        "clients": clients,
        "sockets": n,
        "join_s": round(join_s, 1),
        "joins_per_s": round(n / join_s),
        "server_cpu_s": round(join_cpu, 1),
        "server_ms_per_join": round(join_cpu / n * 1000, 2),
        "settled_s": round(after_s, 1),
        "server_ms_per_join_settled": round(settled_cpu / n * 1000, 2),
        "frames_during_joins": dict(joiner.frames),
        "frames_per_socket": round(sum(joiner.frames.values()) / n, 1),
        "bytes_per_socket": round(joiner.bytes / n),
        "room_users_bytes": round(joiner.room_users_bytes / n),
        "rss_mb": round((rss_bytes(server.pid) - rss0) / 1024 / 1024, 1),
    }


async def phase(
    ctx: Context, name: str, room: str, count: int, env: dict[str, str], *, fanout: bool
) -> dict[str, Any]:
    from scenarios import log_summary, running

    first = ctx.first_user[KEY]
    target = ctx.chat(f"chat-bigroom-{name.replace(' ', '-').replace(',', '')}", **env)
    profile = os.environ.get("BIGROOM_PROFILE")
    if profile and name == "batched":
        python = target.server.argv.index(sys.executable)
        target.server.argv[python + 1 : python + 1] = ["-m", "cProfile", "-o", profile]
    with running(target.server):
        result = await join_all(target, list(range(first, first + count)), room)
        clients: list[WebSocketClient] = result.pop("clients")
        try:
            if fanout:
                result["fanout"] = await fan_out(ctx.config, target, clients, room)
        finally:
            target.server.mark_teardown()
            close_all(clients)
    result["server_log"] = log_summary(target.server)
    return result


async def fan_out(
    config: Config, target: ChatTarget, clients: list[WebSocketClient], room: str
) -> dict[str, Any]:
    group = [Member(c) for c in clients]
    sender = Sender(group[0], target, room)
    # The first message through a fresh process pays one-time costs; it is not measured.
    sender.member.client.send_text(target.message(room, marker(0, 0), 0))
    await settle(target.server)
    idle = CpuMeter(target.server.pid)
    await asyncio.sleep(1.0)
    idle_cpu = idle.share()
    before, buckets_before = scrape(target.server), fanout_buckets(target.server)
    began = time.monotonic()
    result = await measure_step(
        step_id=1,
        rate=RATE,
        duration=seconds(config),
        sender=sender,
        groups={"all": group},
        servers=[target.server],
    )
    result["idle_cpu_before"] = round(idle_cpu, 3)
    result["duration_s"] = round(time.monotonic() - began, 2)  # what server_cpu is over
    after, buckets_after = scrape(target.server), fanout_buckets(target.server)
    delta = {name: after[name] - before[name] for name in METRICS}
    events = max(delta["chat_fanout_seconds_count"], 1)
    result["server_metrics"] = {
        "events": int(delta["chat_fanout_seconds_count"]),
        "frames_out": int(delta["chat_frames_out_total"]),
        "fanout_ms_per_event": round(delta["chat_fanout_seconds_sum"] / events * 1000, 1),
        # The server's CPU over the step per frame it wrote: what one delivery costs.
        "cpu_us_per_frame": round(
            result["server_cpu"][0]
            * result["duration_s"]
            / max(delta["chat_frames_out_total"], 1)
            * 1e6,
            1,
        ),
        "gc_full": int(delta["chat_gc_full_pause_seconds_count"]),
        "gc_full_ms": round(delta["chat_gc_full_pause_seconds_sum"] * 1000, 1),
        "fanout_seconds_buckets": {
            le: int(buckets_after.get(le, 0) - buckets_before.get(le, 0)) for le in buckets_after
        },
    }
    p99 = result["groups"]["all"]["p99"]
    result["p99_target_ms"] = P99_TARGET_MS
    result["p99_met"] = p99 is not None and p99 < P99_TARGET_MS
    return result


async def run(ctx: Context) -> dict[str, Any]:
    config = ctx.config
    n, base = members(config), baseline_members(config)
    redis = {"REDIS_URL": ctx.redis_url}
    phases: dict[str, Any] = {}
    plan: list[tuple[str, str, int, dict[str, str], bool]] = [
        ("batched", KEY, n, {}, True),
    ]
    if not config.quick:
        plan.append(("batched, Redis", KEY, n, redis, True))
    plan += [
        (f"legacy {base}", BASELINE_KEY, base, LEGACY, False),
        (f"batched {base}", BASELINE_KEY, base, {}, False),
    ]
    only = os.environ.get("BIGROOM_PHASES")
    if only:
        plan = [p for p in plan if p[0] in only.split(",")]
    for name, room, count, env, fanout in plan:
        print(f"  bigroom: {name} ({count} sockets)", flush=True)
        try:
            phases[name] = await phase(ctx, name, room, count, env, fanout=fanout)
        except Exception as exc:
            phases[name] = {"error": f"{type(exc).__name__}: {exc}"[:1000]}
    legacy, batched = phases.get(f"legacy {base}", {}), phases.get(f"batched {base}", {})
    ratios = {}
    if "join_s" in legacy and "join_s" in batched:
        ratios = {
            "members": base,
            "join_time": round(legacy["join_s"] / batched["join_s"], 1),
            "server_cpu": round(legacy["server_cpu_s"] / batched["server_cpu_s"], 1),
            "frames_per_socket": round(
                legacy["frames_per_socket"] / max(batched["frames_per_socket"], 0.1), 1
            ),
        }
    return {
        "members": n,
        "rate": RATE,
        "seconds": seconds(config),
        "phases": phases,
        "ratios": ratios,
    }


# ------------------------------------------------------------------------- report


def tables(name: str, data: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    joins = (
        f"{name}: sockets join one room of {data['members']:,} members "
        f"({CONCURRENCY} handshakes in flight); presence frames each socket got while the "
        "others joined"
    )
    header = [
        "phase",
        "sockets",
        "join s",
        "joins/s",
        "server CPU ms/join",
        "ms/join incl. settling",
        "frames/socket",
        "KiB/socket",
        "room_users bytes",
        "frames by kind",
    ]
    rows = []
    for phase_name, r in data["phases"].items():
        if "error" in r:
            rows.append([phase_name, r["error"][:200], *[""] * (len(header) - 2)])
            continue
        rows.append(
            [
                phase_name,
                f"{r['sockets']:,}",
                str(r["join_s"]),
                str(r["joins_per_s"]),
                str(r["server_ms_per_join"]),
                str(r["server_ms_per_join_settled"]),
                str(r["frames_per_socket"]),
                f"{r['bytes_per_socket'] / 1024:.1f}",
                f"{r['room_users_bytes']:,}",
                ", ".join(f"{k} {v:,}" for k, v in sorted(r["frames_during_joins"].items())),
            ]
        )
    out = [(joins, header, rows)]
    fan = [(phase_name, r["fanout"]) for phase_name, r in data["phases"].items() if "fanout" in r]
    if fan:
        title = (
            f"{name}: {data['rate']:g} msg/s for {data['seconds']:g} s into the room, "
            f"every socket joined; target p99 < {P99_TARGET_MS:g} ms"
        )
        head = [
            "phase",
            "sent",
            "deliveries/s",
            "lost",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "max ms",
            "server CPU",
            "others on core 0 / 1",
            "idle CPU before",
            "generator CPU",
            "verdict",
            "p99 met",
            "server: publish to last write, ms per event",
            "server CPU µs per frame",
            "full GCs (ms)",
        ]
        frows = []
        for phase_name, f in fan:
            g = f["groups"]["all"]
            frows.append(
                [
                    phase_name,
                    str(f["sent"]),
                    f"{f['deliveries_per_s']:,}",
                    str(g["lost"]),
                    str(g["p50"]),
                    str(g["p95"]),
                    str(g["p99"]),
                    str(g["max"]),
                    f"{f['server_cpu'][0] * 100:.0f} %",
                    _others(f["core_busy"], f["server_cpu"], f["generator_cpu"]),
                    f"{f['idle_cpu_before'] * 100:.0f} %",
                    f"{f['generator_cpu'] * 100:.0f} %"
                    + (" (generator-bound)" if f["generator_bound"] else ""),
                    f["verdict"],
                    "yes" if f["p99_met"] else "no",
                    str(f.get("server_metrics", {}).get("fanout_ms_per_event", "")),
                    str(f.get("server_metrics", {}).get("cpu_us_per_frame", "")),
                    "{} ({})".format(
                        f.get("server_metrics", {}).get("gc_full", ""),
                        f.get("server_metrics", {}).get("gc_full_ms", ""),
                    ),
                ]
            )
        out.append((title, head, frows))
    if data.get("ratios"):
        r = data["ratios"]
        out.append(
            (
                f"{name}: legacy / batched at {r['members']:,} sockets",
                ["join time", "server CPU", "presence frames per socket"],
                [[f"{r['join_time']}x", f"{r['server_cpu']}x", f"{r['frames_per_socket']}x"]],
            )
        )
    return out
