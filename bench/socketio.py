"""Socket.IO beside native sockets, one run: fan-out to both kinds in one room, and the
memory each idle connection costs the server.

    python bench/socketio.py [--members 100] [--rate 20] [--seconds 10] [--idle 300]

One `manage.py serve` on a fresh SQLite database (no Redis). The room holds `--members`
native sockets and as many Socket.IO ones (Engine.IO 4 over WebSocket, the packets written
here: `40{auth}`, `42["join",…]`, pongs); one native sender posts `--rate` messages a
second; each message's delay to every member is measured, by kind. Then `--idle` idle
native sockets are opened, and the server's RSS growth divided by their number is the
cost of one; then as many idle Socket.IO connections. Prints one JSON document.
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import websockets

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))

from servers import free_port, rss_bytes  # noqa: E402
from stats import Histogram  # noqa: E402


def prepare(env: dict[str, str], users: int) -> tuple[int, list[str]]:
    """Migrate, make a room and `users` users with tokens (in a child: Django setup)."""
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    code = f"""
import django, json
django.setup()
from accounts.models import User
from accounts.services import issue_tokens
from rooms.services import create_room
users = User.objects.bulk_create(User(username=f"b{{n}}") for n in range({users}))
room = create_room(creator=None, name="bench")
print(json.dumps([room.pk, [issue_tokens(user=u)["access"] for u in users]]))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, check=True, capture_output=True
    )
    room, tokens = json.loads(out.stdout.decode().strip().splitlines()[-1])
    return room, tokens


class Native:
    kind = "native"

    @classmethod
    async def open(cls, url: str, token: str, room: int | None) -> "Native":
        self = cls()
        self.ws = await websockets.connect(
            url.replace("http", "ws", 1) + "/ws/",
            additional_headers={"Authorization": f"Bearer {token}"},
            max_queue=None,
        )
        await self.until(lambda f: f["type"] == "authenticated")
        if room is not None:
            await self.ws.send(json.dumps({"type": "join", "room": room, "ref": "j"}))
            await self.until(lambda f: f.get("ref") == "j")
        return self

    async def until(self, match) -> dict[str, Any]:
        while True:
            frame = json.loads(await self.ws.recv())
            if match(frame):
                return frame

    async def messages(self, seen: list[float]) -> None:
        async for text in self.ws:
            frame = json.loads(text)
            if frame.get("type") == "message" and "sent_at" in frame["message"]["payload"]:
                seen.append(time.time() - frame["message"]["payload"]["sent_at"])


class SocketIO:
    kind = "socketio"

    @classmethod
    async def open(cls, url: str, token: str, room: int | None) -> "SocketIO":
        self = cls()
        ws_url = url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
        self.ws = await websockets.connect(ws_url, max_queue=None)
        await self.ws.recv()  # the Engine.IO open packet
        await self.ws.send("40" + json.dumps({"token": token}))
        await self.until(lambda t: t.startswith('42["authenticated"'))
        if room is not None:
            await self.ws.send("421" + json.dumps(["join", {"room_id": room}]))
            await self.until(lambda t: t.startswith("431"))
        return self

    async def until(self, match) -> str:
        while True:
            text = await self.ws.recv()
            if text == "2":
                await self.ws.send("3")
            elif match(text):
                return text

    async def messages(self, seen: list[float]) -> None:
        async for text in self.ws:
            if text == "2":
                await self.ws.send("3")
            elif text.startswith('42["message"'):
                data = json.loads(text[2:])[1]
                if "sent_at" in data["payload"]:
                    seen.append(time.time() - data["payload"]["sent_at"])


async def fanout(url: str, room: int, tokens: list[str], members: int, rate: float, seconds: float):
    natives = [await Native.open(url, t, room) for t in tokens[:members]]
    sios = [await SocketIO.open(url, t, room) for t in tokens[members : 2 * members]]
    sender = await Native.open(url, tokens[2 * members], room)
    seen: dict[str, list[float]] = {"native": [], "socketio": []}
    readers = [asyncio.ensure_future(c.messages(seen[c.kind])) for c in natives + sios]
    count = int(rate * seconds)
    for n in range(count):
        frame = {"type": "message", "room": room, "content": f"m{n}"}
        await sender.ws.send(json.dumps({**frame, "payload": {"sent_at": time.time()}}))
        await asyncio.sleep(1 / rate)
    await asyncio.sleep(3)
    for reader in readers:
        reader.cancel()
    result = {}
    for kind, delays in seen.items():
        histogram = Histogram()
        for delay in delays:
            histogram.add(int(max(0.0, delay) * 1_000_000))
        result[kind] = {"delivered": len(delays), "expected": count * members}
        result[kind].update(histogram.summary())
    for client in [*natives, *sios, sender]:
        await client.ws.close()
    return result


async def idle_cost(url: str, pid: int, tokens: list[str], kind: type, count: int) -> float:
    await asyncio.sleep(2)
    before = rss_bytes(pid)
    clients = [await kind.open(url, t, None) for t in tokens[:count]]
    await asyncio.sleep(3)
    after = rss_bytes(pid)
    for client in clients:
        await client.ws.close()
    return (after - before) / count / 1024


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--rate", type=float, default=20)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--idle", type=int, default=300)
    args = parser.parse_args()
    users = max(2 * args.members + 1, args.idle)
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "chatproject.settings",
            "DATABASE_URL": f"sqlite:///{tmp}/bench.sqlite3",
            "CHAT_RATE_LIMIT": "100000/1s",
            "WRITE_RATE_LIMIT": "100000/1s",
            "MAX_SOCKETS_PER_USER": "1000",
            "LOG_LEVEL": "warning",
        }
        env.pop("REDIS_URL", None)
        room, tokens = prepare(env, users)
        server = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--port", str(port)], cwd=ROOT, env=env
        )
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(100):
                try:
                    async with websockets.connect(url.replace("http", "ws") + "/ws/"):
                        break
                except OSError:
                    await asyncio.sleep(0.2)
            result: dict[str, Any] = {"args": vars(args)}
            result["fanout"] = await fanout(
                url, room, tokens, args.members, args.rate, args.seconds
            )
            result["idle_kib_per_connection"] = {
                "native": round(await idle_cost(url, server.pid, tokens, Native, args.idle), 1),
                "socketio": round(await idle_cost(url, server.pid, tokens, SocketIO, args.idle), 1),
            }
            print(json.dumps(result, indent=2))
        finally:
            server.terminate()
            server.wait(timeout=20)


if __name__ == "__main__":
    asyncio.run(main())
