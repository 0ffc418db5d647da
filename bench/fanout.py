"""Delivery measurement: a sender paces stamped messages, every member records them.

A message's content is a marker `~STEP.SEQ.T~` (T: `time.monotonic_ns()` at sending;
the monotonic clock is one clock for every process on Linux). Members find it with one
regex over the raw frame, without parsing the JSON, so the generator stays cheap;
frames that carry a `ref` are answers to the sender and are parsed as JSON.
"""

import asyncio
import json
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from servers import CoreMeter, CpuMeter, Server
from stats import Histogram
from targets import Target
from wsclient import WebSocketClient

MARKER = re.compile(rb"~(\d+)\.(\d+)\.(\d+)~")
P99_LIMIT_MS = 100.0  # a rate counts as "fast" while p99 stays under this
SUSTAIN_P99_MS = 1000.0  # beyond this the server is falling behind (a growing backlog)
RATE_SLACK = 0.95  # a step "achieves" its rate when it sent at >= 95 % of it
GENERATOR_BOUND = 0.85  # share of its core beyond which the generator may be the limit
DRAIN_QUIET_S = 2.0  # a step ends when nothing new arrived for this long …
DRAIN_MAX_S = 15.0  # … or after this long past the last send


def marker(step: int, seq: int) -> str:
    return f"~{step}.{seq}.{time.monotonic_ns()}~"


@dataclass
class Step:
    """What one step of a sweep records, for one group of members."""

    id: int
    messages: int
    hist: Histogram = field(default_factory=Histogram)
    received: int = 0
    duplicates: int = 0
    last_at: float = 0.0


class Member:
    """One member socket: records the deliveries of the current step."""

    def __init__(self, client: WebSocketClient) -> None:
        self.client = client
        self.step: Step | None = None
        self.seen = bytearray()
        client.listen(self.on_text)

    def start(self, step: Step) -> None:
        self.step, self.seen = step, bytearray(step.messages)

    def on_text(self, payload: bytes) -> None:
        found = MARKER.search(payload)
        step = self.step
        if found is None or step is None or int(found[1]) != step.id:
            return
        now = time.monotonic_ns()
        seq = int(found[2])
        if self.seen[seq]:
            step.duplicates += 1
            return
        self.seen[seq] = 1
        step.received += 1
        step.last_at = time.monotonic()
        step.hist.add((now - int(found[3])) // 1000)


class Sender:
    """The socket that sends; on our server it also reads the `ack`s (frames with `ref`)."""

    def __init__(self, member: Member, target: Target, room: str) -> None:
        self.member = member
        self.target = target
        self.room = room
        self.acks = 0
        self.errors: Counter[str] = Counter()
        member.client.listen(self.on_text)

    def on_text(self, payload: bytes) -> None:
        if b'"ref"' not in payload:
            self.member.on_text(payload)
            return
        frame = json.loads(payload)
        if frame.get("type") == "ack":
            self.acks += 1
        else:
            self.errors[str(frame.get("code", frame.get("type")))] += 1

    async def send_paced(self, step: int, count: int, rate: float) -> float:
        """Send `count` messages at `rate` per second; returns the seconds it took."""
        client = self.member.client
        start = time.monotonic()
        for seq in range(count):
            due = start + seq / rate
            ahead = due - time.monotonic()
            if ahead > 0.001:
                await asyncio.sleep(ahead)
            client.send_text(self.target.message(self.room, marker(step, seq), seq))
        return max(time.monotonic() - start, (count - 1) / rate, 1e-9)


async def wait_for_deliveries(steps: list[Step], expected: int, sender: Sender, sent: int) -> None:
    """Until every delivery (and ack) is in, or nothing new came for DRAIN_QUIET_S."""
    wants_acks = sender.target.kind == "chat"
    began = time.monotonic()
    while time.monotonic() - began < DRAIN_MAX_S:
        received = sum(s.received for s in steps)
        acked = sender.acks + sum(sender.errors.values())
        if received >= expected and (not wants_acks or acked >= sent):
            return
        last = max([s.last_at for s in steps] + [began])
        if time.monotonic() - last > DRAIN_QUIET_S:
            return
        await asyncio.sleep(0.05)


async def settle(server: Server, *, idle_share: float = 0.05, limit_s: float = 20.0) -> None:
    """Wait until the server's CPU use is near zero (its queues are drained)."""
    began = time.monotonic()
    while time.monotonic() - began < limit_s:
        meter = CpuMeter(server.pid)
        await asyncio.sleep(0.3)
        if meter.share() < idle_share:
            return


async def measure_step(
    *,
    step_id: int,
    rate: float,
    duration: float,
    sender: Sender,
    groups: dict[str, list[Member]],
    servers: list[Server],
) -> dict[str, Any]:
    """Send at `rate` for `duration` seconds; return what every group of members saw."""
    count = max(1, round(rate * duration))
    steps = {name: Step(step_id, count) for name in groups}
    for name, members in groups.items():
        for member in members:
            member.start(steps[name])
    acks0, errors0 = sender.acks, sum(sender.errors.values())
    meters = [CpuMeter(s.pid) for s in servers]
    core = CoreMeter()
    cpu0, wall0 = time.process_time(), time.monotonic()
    send_s = await sender.send_paced(step_id, count, rate)
    expected = sum(count * len(members) for members in groups.values())
    await wait_for_deliveries(list(steps.values()), expected, sender, count)
    wall = time.monotonic() - wall0
    achieved = (count - 1) / send_s if count > 1 else rate
    acks = sender.acks - acks0
    errors = sum(sender.errors.values()) - errors0
    result: dict[str, Any] = {
        "rate": rate,
        "achieved_rate": round(achieved, 1),
        "sent": count,
        "acks": acks if sender.target.kind == "chat" else None,
        "errors": errors,
        "server_cpu": [round(m.share(), 3) for m in meters],
        "core_busy": core.shares(),  # [server core, generator core], whoever used them
        "generator_cpu": round((time.process_time() - cpu0) / wall, 3),
        "groups": {},
    }
    closed = Counter(
        str(m.client.close_code)
        for members in groups.values()
        for m in members
        if m.client.closed.done()
    )
    result["closed_sockets"] = dict(closed)
    total_received = 0
    for name, members in groups.items():
        step = steps[name]
        total_received += step.received
        result["groups"][name] = {
            "members": len(members),
            "received": step.received,
            "lost": count * len(members) - step.received,
            "duplicates": step.duplicates,
            **step.hist.summary(),
        }
    # Over the time the deliveries took: a server that falls behind shows a lower figure.
    last = max([s.last_at for s in steps.values()], default=0.0)
    result["deliveries_per_s"] = round(total_received / max(last - wall0, count / rate))
    result["generator_bound"] = result["generator_cpu"] > GENERATOR_BOUND
    faults = failures(result, achieved >= rate * RATE_SLACK)
    result["sustained"] = not faults
    slow = [
        f"p99 {g['p99']:.0f} ms" + (f" ({name})" if len(groups) > 1 else "")
        for name, g in result["groups"].items()
        if g["p99"] is not None and P99_LIMIT_MS <= g["p99"] < SUSTAIN_P99_MS
    ]
    result["verdict"] = "; ".join(faults + slow) or "ok"
    return result


def failures(result: dict[str, Any], rate_ok: bool) -> list[str]:
    """Why the server did not keep up with the step, if it did not (latency aside)."""
    reasons = []
    for name, group in result["groups"].items():
        where = f" ({name})" if len(result["groups"]) > 1 else ""
        if group["lost"] > 0:
            reasons.append(f"lost {group['lost']}{where}")
        if group["duplicates"]:
            reasons.append(f"{group['duplicates']} duplicates{where}")
        if group["p99"] is not None and group["p99"] >= SUSTAIN_P99_MS:
            reasons.append(f"backlog: p99 {group['p99'] / 1000:.1f} s{where}")
    if not rate_ok:
        reasons.append(f"sent at {result['achieved_rate']}/s")
    if result["acks"] is not None and result["acks"] < result["sent"]:
        reasons.append(f"{result['sent'] - result['acks']} not acked")
    if result["errors"]:
        reasons.append(f"{result['errors']} errors")
    for code, count in result["closed_sockets"].items():
        reasons.append(f"{count} sockets closed (code {code})")
    return reasons


async def sweep(
    *,
    target: Target,
    clients: list[WebSocketClient],
    room: str,
    rates: list[float],
    duration: float,
) -> dict[str, Any]:
    """Raise the rate step by step while the server keeps up (no loss, no backlog).

    `best` is the highest rate with p99 under P99_LIMIT_MS and nothing lost; `sustained`
    the highest the server kept up with at all, whatever its latency.
    """
    members = [Member(c) for c in clients]
    sender = Sender(members[0], target, room)
    # The first message through a fresh process pays one-time costs; it is not measured.
    sender.member.client.send_text(target.message(room, marker(0, 0), 0))
    steps: list[dict[str, Any]] = []
    best = sustained = None
    for step_id, rate in enumerate(rates, start=1):
        await settle(target.server)
        if not target.server.alive():
            steps.append({"rate": rate, "verdict": "server exited"})
            break
        result = await measure_step(
            step_id=step_id,
            rate=rate,
            duration=duration,
            sender=sender,
            groups={"all": members},
            servers=[target.server],
        )
        steps.append(result)
        if not result["sustained"]:
            break
        sustained = result
        if result["verdict"] == "ok":
            best = result
    return {
        "steps": steps,
        "best": best,
        "sustained": sustained,
        "errors_by_code": dict(sender.errors),
    }
