"""Real servers for end-to-end tests: `manage.py serve` processes on free ports.

Servers run against the test database (a file for SQLite, the test database on
PostgreSQL) and, when REDIS_URL is set, the same Redis as the tests, under a prefix
of their own. They are started and stopped by PID, with bounded waits.
"""

import asyncio
import collections
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import websockets
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
RUN_ID = uuid.uuid4().hex[:8]
# Seconds to wait for anything that crosses a server once. Only a broken server reaches
# it; a loaded machine (CI) can take several seconds for what usually takes milliseconds.
WAIT = 20.0


def database_url() -> str:
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = f"{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}"
    return f"postgres://{user}{password}@{host}/{db['NAME']}"


def server_environment(**extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "ENV": "development",
        "LOG_LEVEL": os.environ.get("TEST_SERVER_LOG_LEVEL", "warning"),
        "JWT_SECRET": settings.JWT_SECRET,
        "SECRET_KEY": settings.SECRET_KEY,
        "CHANNEL_PREFIX": f"test-{RUN_ID}",
        # Limits get tests of their own, with servers started with the real values.
        "CHAT_RATE_LIMIT": "100000/1s",
        "AUTH_RATE_LIMIT": "100000/1s",
        "WRITE_RATE_LIMIT": "100000/1s",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra)
    return env


def free_port() -> int:
    """A free port below the kernel's ephemeral range. The kernel hands ephemeral ports to
    every outgoing connection (the tests make thousands), so one freed by `bind(0)` can be
    taken again before a server, which needs a second or two to start, binds it."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 0
    for _ in range(100 if low > 12_000 else 0):
        port = random.randrange(low - 10_000, low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    def __init__(self, env: dict[str, str], *, serve_args: tuple[str, ...] = ()) -> None:
        self.env = env
        self.serve_args = serve_args  # more options of `manage.py serve` (--proxy-headers)
        self.port = 0
        self.process: subprocess.Popen | None = None
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 (lives as long as the server)
            prefix="chat-server-", suffix=".log", delete=False
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0, port: int | None = None) -> None:
        """Start on `port` (a restart on the same port) or on a free one. A free port
        that another process took before the server bound it means another port."""
        for attempt in range(3):
            self.port = port or free_port()
            started = os.path.getsize(self.log.name)
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "manage.py",
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    *self.serve_args,
                ],
                cwd=ROOT,
                env=self.env,
                stdout=self.log,
                stderr=subprocess.STDOUT,
            )
            if self._wait_until_up(timeout):
                return
            taken = "could not listen" in self.log_text(since=started)
            if port is not None or not taken or attempt == 2:
                raise RuntimeError(
                    f"server exited with {self.process.returncode}:\n{self.output()}"
                )

    def _wait_until_up(self, timeout: float) -> bool:
        """True once /healthz answers; False if the process exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not answer /healthz within {timeout}s:\n{self.output()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout=5)

    def log_text(self, since: int = 0) -> str:
        """The server's whole log, from byte `since`."""
        with open(self.log.name, "rb") as log:
            log.seek(since)
            return log.read().decode(errors="replace")

    def output(self, since: int = 0) -> str:
        """The end of the server's log (its last 5,000 characters), for a failure's message."""
        return self.log_text(since)[-5000:]


class WS:
    """A thin test client over a real WebSocket: JSON frames, bounded waits."""

    def __init__(self, conn: websockets.ClientConnection) -> None:
        self.conn = conn
        # Frames that arrived while `request` waited for its answer, for the next `recv`.
        self.backlog: collections.deque[dict[str, Any]] = collections.deque()

    @classmethod
    async def connect(cls, url: str, *, token: str | None = None, **kwargs: Any) -> "WS":
        if token is not None:
            kwargs.setdefault("additional_headers", {})["Authorization"] = f"Bearer {token}"
        kwargs.setdefault("open_timeout", WAIT)
        return cls(await websockets.connect(url, **kwargs))

    async def send(self, frame: dict[str, Any] | str) -> None:
        await self.conn.send(frame if isinstance(frame, str) else json.dumps(frame))

    async def recv(self, timeout: float = WAIT) -> dict[str, Any]:
        if self.backlog:
            return self.backlog.popleft()
        return json.loads(await asyncio.wait_for(self.conn.recv(), timeout))

    async def recv_until(self, kind: str, timeout: float = WAIT, **match: Any) -> dict[str, Any]:
        """The next frame of type `kind` (and fields `match`), skipping others."""

        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise TimeoutError(f"no {kind} frame matching {match} within {timeout}s")
            frame = await self.recv(left)
            if frame.get("type") == kind and all(frame.get(k) == v for k, v in match.items()):
                return frame

    async def request(self, frame: dict[str, Any], timeout: float = WAIT) -> dict[str, Any]:
        """Send a frame with a fresh `ref` and return its answer (`ack` or `error`). Frames
        that arrive first (the echo of one's own message can precede its `ack`) stay for
        the next `recv`."""
        ref = uuid.uuid4().hex[:12]
        await self.send({**frame, "ref": ref})

        deadline = asyncio.get_running_loop().time() + timeout
        earlier: list[dict[str, Any]] = []
        try:
            while True:
                left = max(0.01, deadline - asyncio.get_running_loop().time())
                answer = json.loads(await asyncio.wait_for(self.conn.recv(), left))
                if answer.get("ref") == ref:
                    return answer
                earlier.append(answer)
        finally:
            self.backlog.extend(earlier)

    async def no_frame(self, within: float = 0.5) -> None:
        """Assert that nothing arrives for `within` seconds."""

        try:
            frame = await asyncio.wait_for(self.conn.recv(), within)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected frame: {frame}")

    async def close(self) -> None:
        await self.conn.close()

    async def __aenter__(self) -> "WS":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def collect(ws: WS, within: float) -> list[dict[str, Any]]:
    """Every frame that arrives within `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    seen: list[dict[str, Any]] = []
    while (left := deadline - loop.time()) > 0:
        try:
            seen.append(await ws.recv(left))
        except TimeoutError:
            break
    return seen


@contextlib.asynccontextmanager
async def socket_in(server: LiveServer, room: Any, user: Any) -> AsyncIterator[WS]:
    """A real socket of `user` on `server`, subscribed to `room` (its join answered)."""
    from asgiref.sync import sync_to_async

    from accounts.services import issue_tokens

    token = (await sync_to_async(issue_tokens)(user=user))["access"]
    async with await WS.connect(f"{server.ws_url}/ws/rooms/{room.pk}/", token=token) as ws:
        await ws.recv_until("authenticated")
        await ws.recv_until("room_users", room=room.pk)
        yield ws
