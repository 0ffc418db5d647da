"""The `socketio` scenario: Socket.IO clients beside native ones, on one server process.

    python bench/load.py socketio [--quick]

Fan-out: one `manage.py serve` process; one room holds N native members and N Socket.IO
members (python-socketio's `AsyncClient` over the WebSocket transport: the token in
`auth`, `join` by room id, acknowledged). A native member sends at a fixed rate; every
member records each message's delay (the marker of `fanout.py`), one group per kind.

Idle memory: a fresh process; a few connections of each kind first (one-time costs, not
counted), then M idle native sockets (authenticated, no room), then M idle Socket.IO
connections beside them. The server's RSS growth over each batch, divided by M, is the
cost of one connection of that kind.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import scenarios
import socketio
from fanout import Member, Sender, marker, measure_step, settle
from servers import Server, rss_bytes
from targets import (
    CONNECT_CONCURRENCY,
    SETUP_TIMEOUT,
    ChatTarget,
    SetupFailed,
    close_all,
    open_many,
)

KEY = "socketio"
MB = 1024 * 1024
MEMBERS = 100  # of each kind in the fan-out room
RATE = 20.0  # messages a second
WARM = 10  # idle connections of each kind opened before the memory is read


def seconds(config: scenarios.Config) -> float:
    return 3.0 if config.quick else 10.0


def idle_count(config: scenarios.Config) -> int:
    return 200 if config.quick else 500


def users(config: scenarios.Config) -> int:
    return max(2 * MEMBERS, 2 * (idle_count(config) + WARM))


def rooms(config: scenarios.Config, first: int) -> dict[str, list[int]]:
    return {KEY: list(range(first, first + 2 * MEMBERS))}


class SocketIOClient:
    """python-socketio's AsyncClient, with what `fanout.Member` and `measure_step` use of
    a client: `listen` (here: the content of each `message` event), `closed`, `close_code`."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.closed: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.close_code: str | None = None
        self.sio.on("disconnect", self._on_disconnect)

    async def _on_disconnect(self, *reason: Any) -> None:
        if not self.closed.done():
            self.close_code = f"socket.io {reason[0] if reason else 'disconnect'}"
            self.closed.set_result(self.close_code)

    def listen(self, handler: Callable[[bytes], None]) -> None:
        self.sio.on("message", lambda data: handler(str(data.get("content", "")).encode()))

    @classmethod
    async def open(cls, server: Server, token: str, room_id: int | None) -> SocketIOClient:
        client = cls()
        await client.sio.connect(
            server.url(""),
            auth={"token": token},
            transports=["websocket"],
            wait_timeout=SETUP_TIMEOUT,
        )
        if room_id is not None:
            answer = await client.sio.call("join", {"room_id": room_id}, timeout=SETUP_TIMEOUT)
            if not isinstance(answer, dict) or answer.get("room") != room_id:
                raise SetupFailed(f"Socket.IO join answered {str(answer)[:200]}")
        return client


async def open_socketio(
    server: Server, tokens: list[str], room_id: int | None
) -> list[SocketIOClient]:
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def one(token: str) -> SocketIOClient:
        async with gate:
            return await SocketIOClient.open(server, token, room_id)

    return list(await asyncio.gather(*(one(t) for t in tokens)))


async def close_socketio(clients: list[SocketIOClient]) -> None:
    await asyncio.gather(*(c.sio.disconnect() for c in clients), return_exceptions=True)


async def run(ctx: scenarios.Context) -> dict[str, Any]:
    first = ctx.first_user[KEY]
    return {
        "members_per_kind": MEMBERS,
        "fanout": await scenarios.guarded(lambda: fanout(ctx, first)),
        "idle": await scenarios.guarded(lambda: idle(ctx, first)),
    }


async def fanout(ctx: scenarios.Context, first: int) -> dict[str, Any]:
    target = ctx.chat("chat-socketio-fanout")
    server, room_id = target.server, ctx.rooms[KEY]
    natives: list[Any] = []
    sios: list[SocketIOClient] = []
    with scenarios.running(server):
        try:
            began = time.monotonic()
            natives = await open_many(target, [(first + i, KEY) for i in range(MEMBERS)])
            tokens = ctx.tokens[first + MEMBERS : first + 2 * MEMBERS]
            sios = await open_socketio(server, tokens, room_id)
            setup_s = time.monotonic() - began
            groups = {"native": [Member(c) for c in natives], "socketio": [Member(c) for c in sios]}
            sender = Sender(groups["native"][0], target, KEY)
            # The first message through a fresh process pays one-time costs: not measured.
            sender.member.client.send_text(target.message(KEY, marker(0, 0), 0))
            await settle(server)
            result = await measure_step(
                step_id=1,
                rate=RATE,
                duration=seconds(ctx.config),
                sender=sender,
                groups=groups,  # Members over a WebSocketClient or a SocketIOClient
                servers=[server],
            )
        finally:
            server.mark_teardown()
            close_all(natives)
            await close_socketio(sios)
    return {
        "setup_s": round(setup_s, 1),
        "transport": "websocket",
        **result,
        "server_log": scenarios.log_summary(server),
    }


async def idle(ctx: scenarios.Context, first: int) -> dict[str, Any]:
    target: ChatTarget = ctx.chat("chat-socketio-idle")
    server, count = target.server, idle_count(ctx.config)
    native_users = [first + i for i in range(WARM + count)]
    sio_tokens = ctx.tokens[first + WARM + count : first + 2 * (WARM + count)]
    natives: list[Any] = []
    sios: list[SocketIOClient] = []
    rss: dict[str, int] = {}
    with scenarios.running(server):
        try:
            natives += await open_many(target, [(u, KEY) for u in native_users[:WARM]], join=False)
            sios += await open_socketio(server, sio_tokens[:WARM], None)
            await settle(server)
            rss["before"] = rss_bytes(server.pid)
            natives += await open_many(target, [(u, KEY) for u in native_users[WARM:]], join=False)
            await settle(server, limit_s=60)
            rss["native"] = rss_bytes(server.pid)
            sios += await open_socketio(server, sio_tokens[WARM:], None)
            await settle(server, limit_s=60)
            rss["socketio"] = rss_bytes(server.pid)
            await asyncio.sleep(1.0)
            open_now = {
                "native": sum(not c.closed.done() for c in natives),
                "socketio": sum(not c.closed.done() for c in sios),
            }
        finally:
            server.mark_teardown()
            close_all(natives)
            await close_socketio(sios)
    grown = {"native": rss["native"] - rss["before"], "socketio": rss["socketio"] - rss["native"]}
    return {
        "connections_per_kind": count,
        "order": "native first, then Socket.IO beside them",
        "rss_before_mb": round(rss["before"] / MB, 1),
        "kinds": {
            kind: {
                "connections": count,
                "open_at_end": f"{open_now[kind]}/{WARM + count}",
                "rss_growth_mb": round(grown[kind] / MB, 1),
                "kib_per_connection": round(grown[kind] / count / 1024, 1),
            }
            for kind in ("native", "socketio")
        },
        "server_log": scenarios.log_summary(server),
    }
