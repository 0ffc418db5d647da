"""Regenerate docs/RELIABILITY.md: hostile input, faults, a client that will not read,
and attacks from one address, each measured against real servers.

    python bench/reliability.py            # about 2 minutes; writes docs/RELIABILITY.md
    python bench/reliability.py --seconds 10 --no-write   # a quick look, printed only

The fuzz and fault figures come from the test suite (`FIGURE` lines of pytest -s); the
memory and attack figures from servers this script starts on a throwaway SQLite database.
"""

import argparse
import asyncio
import base64
import json
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import abuse
import httpx
import websockets

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct-horse-battery-9"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`manage.py serve` on a throwaway SQLite database, stopped by its PID."""

    def __init__(self, tmp: str, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{tmp}/reliability.sqlite3",
            "LOG_LEVEL": "warning",
            **env,
        }
        self.env.pop("REDIS_URL", None)

    def __enter__(self) -> "Server":
        manage = [sys.executable, "manage.py"]
        subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=self.env, check=True)
        subprocess.run(
            [*manage, "seed_general_room"], cwd=ROOT, env=self.env, check=True, capture_output=True
        )
        self.process = subprocess.Popen(
            [*manage, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(200):
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("server did not start")

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()  # the drain: up to SHUTDOWN_TIMEOUT, then Daphne's own
        try:
            self.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def rss_kib(self) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+)", status).group(1))

    def register(self, name: str) -> str:
        answer = httpx.post(
            f"{self.url}/api/auth/register/", json={"username": name, "password": PASSWORD}
        )
        answer.raise_for_status()
        return answer.json()["access"]


def stalled_socket(server: Server, token: str) -> socket.socket:
    """A WebSocket in General whose client reads the handshake and nothing after."""
    conn = socket.socket()
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    conn.connect(("127.0.0.1", server.port))
    key = base64.b64encode(os.urandom(16)).decode()
    conn.sendall(
        (
            f"GET /ws/rooms/1/?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += conn.recv(1)
    return conn


async def memory_while_one_client_will_not_read(seconds: int, rate: int) -> dict:
    with (
        tempfile.TemporaryDirectory() as tmp,
        Server(tmp, CHAT_RATE_LIMIT="100000/1s", MAX_MESSAGE_LENGTH="1000") as server,
    ):
        stalled = stalled_socket(server, server.register("stalled"))
        token = server.register("talker")
        reader_token = server.register("reader")
        async with (
            websockets.connect(f"ws://127.0.0.1:{server.port}/ws/rooms/1/?token={token}") as talker,
            websockets.connect(
                f"ws://127.0.0.1:{server.port}/ws/rooms/1/?token={reader_token}"
            ) as reader,
        ):
            received = 0

            async def read_all() -> None:
                nonlocal received
                async for raw in reader:
                    received += json.loads(raw).get("type") == "message"

            async def drain_talker() -> None:
                async for _ in talker:
                    pass

            tasks = [asyncio.create_task(read_all()), asyncio.create_task(drain_talker())]
            await asyncio.sleep(1)
            start = server.rss_kib()
            samples, sent = [start], 0
            began = time.monotonic()
            while time.monotonic() - began < seconds:
                for _ in range(rate // 10):
                    content = f"{sent:06} " + "x" * 900
                    await talker.send(
                        json.dumps({"type": "message", "room": 1, "content": content})
                    )
                    sent += 1
                await asyncio.sleep(0.1)
                if sent % rate < rate // 10:
                    samples.append(server.rss_kib())
            await asyncio.sleep(2)
            samples.append(server.rss_kib())
            for task in tasks:
                task.cancel()
        stalled.settimeout(1)
        try:
            dropped = stalled.recv(1) == b""
        except (ConnectionResetError, TimeoutError):
            dropped = True
        stalled.close()
    return {
        "seconds": seconds,
        "rate": rate,
        "sent": sent,
        "reader_received": received,
        "rss_start_mib": round(start / 1024, 1),
        "rss_peak_mib": round(max(samples) / 1024, 1),
        "rss_end_mib": round(samples[-1] / 1024, 1),
        "stalled_dropped": dropped,
    }


def attacks_from_one_address() -> dict:
    """Each attack of docs/SECURITY.md that one address can make, on a server of its own
    with the default limits (AUTH_RATE_LIMIT 10/min, WRITE_RATE_LIMIT 60/min,
    MAX_REQUEST_MB 11, REQUEST_HEAD_TIMEOUT 10 s, 32 pending heads per address)."""
    figures = {}
    for name, attack in (
        ("logins", abuse.logins_across_forms),
        ("body", abuse.oversized_body),
        ("heads", abuse.slow_heads),
        ("writes", abuse.write_flood),
    ):
        with tempfile.TemporaryDirectory() as tmp, Server(tmp) as server:
            figures[name] = attack(server)
    return figures


def figures_from_tests() -> dict[str, dict[str, str]]:
    tests = [
        "tests/messaging/test_frame_fuzz.py",
        "tests/test_schema_fuzz.py",
        "tests/e2e/test_faults.py",
    ]
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", *tests],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    figures = {}
    for line in run.stdout.splitlines():
        if line.startswith("FIGURE "):
            name, *pairs = line.split()[1:]
            figures[name] = dict(pair.split("=", 1) for pair in pairs)
    tail = run.stdout.strip().splitlines()[-1:] or ["(no output)"]
    figures["_pytest"] = {"summary": tail[0], "returncode": str(run.returncode)}
    return figures


# What each `FIGURE` line of tests/e2e/test_faults.py stands for.
FAULTS = {
    "redis_restart": (
        "two users exchange messages on one server; its (private) Redis is stopped, sends "
        "go on over the socket (closed by the server: reconnects refused) and REST (503 "
        "`unavailable`), Redis is restarted on the same port; once /readyz is 200 both "
        "rejoin with `after`: every acked message exactly once, in pos order, live again"
    ),
    "redis_down_at_start": (
        "a server started with REDIS_URL on a port where nothing listens: /readyz 503 with "
        "`checks.channel_layer` an error, /healthz 200, still alive 3 s later, no crash loop"
    ),
    "database_down": (
        "PostgreSQL only: the test database refuses connections and the server's backends "
        "are terminated; a socket send gets `error` `unavailable` (socket still answers "
        "ping), a REST send 503; after restore a send is acked; the refused one was not stored"
    ),
    "sigkill": (
        "bob sends a burst on server B (shared Redis, alice on A); B is SIGKILLed with sends "
        "in flight; bob rejoins on A with `after`: every acked message exactly once, then "
        "retries the unacked ones with their client_ids: each stored once. A message B "
        "committed just before dying was never broadcast; a client that sees the gap in "
        "`pos` fills it with `after` (counted as gaps_filled_with_after)"
    ),
    "idle_socket": (
        "a socket that receives nothing for 7 s (longer than channels_redis's 5 s blocking "
        "read) still answers ping and sends"
    ),
}


def _configuration() -> str:
    if os.environ.get("DATABASE_URL", "").startswith("postgres"):
        return "PostgreSQL" + (" + Redis" if os.environ.get("REDIS_URL") else "")
    return "SQLite" + (" + Redis" if os.environ.get("REDIS_URL") else ", in-process layer")


def render(tests: dict, memory: dict, a: dict, seconds: int) -> str:
    ws = tests.get("ws_fuzz", {})
    rest = tests.get("rest_fuzz", {})
    hostile = [
        (
            "random frames on one live socket (hypothesis: junk text, wrong types, huge "
            "integers, NaN, NUL, lone surrogates, deep nesting, every real frame type with "
            "one field made wrong)",
            f"{ws.get('frames', '?')} frames",
            f"every one answered with a documented frame ({ws.get('answered_with_error', '?')} "
            f"with `error`); socket closed {ws.get('closed', '?')} times; "
            f"crashes {ws.get('crashes', '?')}",
        ),
        (
            "every REST operation of the OpenAPI schema (schemathesis)",
            f"{rest.get('requests', '?')} requests over {rest.get('operations', '?')} operations",
            f"server errors and schema mismatches: {rest.get('failures', '?')}",
        ),
        (
            "the frame parser alone (hypothesis: arbitrary text, JSON-ish text, 100,000 "
            "brackets, 5,000-digit numbers)",
            "1,300 inputs a run",
            "only `invalid_json` / `validation_error`, never another exception",
        ),
    ]
    hostile_rows = "\n".join(f"| {a} | {b} | {c} |" for a, b, c in hostile)
    fault_rows = (
        "\n".join(
            f"| {name.replace('_', ' ')} | {FAULTS.get(name, '')} | "
            + ", ".join(f"{k} {v}" for k, v in values.items())
            + " |"
            for name, values in tests.items()
            if name not in ("ws_fuzz", "rest_fuzz", "_pytest")
        )
        or "| (no fault figures: tests/e2e/test_faults.py did not print any) | | |"
    )
    return f"""# Reliability

Regenerated by `python bench/reliability.py` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC,
{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}.
Test run ({_configuration()}): `{tests["_pytest"]["summary"]}`.

## Hostile input

| what was tried | how many | what happened |
|---|---|---|
{hostile_rows}

## Faults

| fault | what was tried, what must hold | figures |
|---|---|---|
{fault_rows}

Command: `pytest tests/e2e/test_faults.py -s -q | grep FIGURE`.

## A client that will not read

One client in General stops reading (a 4 KiB receive buffer) while another sends
{memory["rate"]} messages/s of 1 KB for {seconds} s ({memory["sent"]} messages); a third
client reads everything.

| server memory (RSS) | MiB |
|---|---|
| before | {memory["rss_start_mib"]} |
| peak | {memory["rss_peak_mib"]} |
| after | {memory["rss_end_mib"]} |

The reading client received {memory["reader_received"]} of {memory["sent"]} messages; the
stalled socket was {"closed (4408) and dropped" if memory["stalled_dropped"] else "NOT dropped"}.
The bound is `WEBSOCKET_SEND_BUFFER` (1 MiB) per socket, plus the kernel's buffers.

## Attacks from one address

Each on a server of its own with the default limits; the controls and their tests are in
[SECURITY.md](SECURITY.md).

| attack | what happened |
|---|---|
{abuse.rows(a)}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    tests = figures_from_tests()
    memory = asyncio.run(memory_while_one_client_will_not_read(args.seconds, args.rate))
    attacks = attacks_from_one_address()
    text = render(tests, memory, attacks, args.seconds)
    print(text)
    if not args.no_write:
        (ROOT / "docs" / "RELIABILITY.md").write_text(text)


if __name__ == "__main__":
    main()
