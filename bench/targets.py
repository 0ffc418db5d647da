"""The two servers under test, seen through their protocols only.

`ChatTarget` is our server: `/ws/?token=`, wait for `authenticated`, `join` a room and
wait for its `ack`; messages are `message` frames with a unique `client_id`, answered by
`ack`. `TutorialTarget` is the Channels tutorial app: `/ws/chat/<room>/`, and a message is
`{"message": …}`, relayed to the room as is.
"""

import asyncio
import itertools
import json
from typing import Any

from servers import Server
from wsclient import WebSocketClient, connect

HOST = "127.0.0.1"
SETUP_TIMEOUT = 60.0
# Handshakes in progress at once. The server completes them one after another anyway, and
# `manage.py serve` drops a handshake not answered within 5 s: a deep queue of them on a
# busy server would be cut.
CONNECT_CONCURRENCY = 20


class SetupFailed(RuntimeError):
    pass


class Answers:
    """The frames that matter while a socket is set up: `authenticated`, answers, errors.

    Everything else (presence, `room_users`, messages) is dropped unparsed.
    """

    def __init__(self, client: WebSocketClient) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        client.listen(self._on_text)
        client.closed.add_done_callback(
            lambda f: self.queue.put_nowait({"type": "closed", "code": f.result()})
        )

    def _on_text(self, payload: bytes) -> None:
        if b'"ref"' in payload or b'"authenticated"' in payload or b'"error"' in payload:
            self.queue.put_nowait(json.loads(payload))

    async def expect(self, kind: str, timeout: float = SETUP_TIMEOUT) -> dict[str, Any]:
        """The next interesting frame, which must be of type `kind`."""
        try:
            frame = await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            raise SetupFailed(f"no {kind} frame within {timeout:.0f}s") from None
        if frame.get("type") != kind:
            raise SetupFailed(f"expected {kind}, got {json.dumps(frame)[:200]}")
        return frame


class ChatTarget:
    """Our server (one process of it)."""

    kind = "chat"

    def __init__(self, server: Server, tokens: list[str], rooms: dict[str, int]) -> None:
        self.server = server
        self.tokens = tokens
        self.rooms = rooms
        self._client_ids = itertools.count()

    async def open(
        self, user: int, room: str, source: str | None = None, *, join: bool = True
    ) -> WebSocketClient:
        """An authenticated socket of user number `user`, joined to `room` (ack received).

        With `join=False` the socket only authenticates: it may still post to the room
        (the user is a member) but receives nothing from it.
        """
        path = f"/ws/?token={self.tokens[user]}"
        client = await connect(HOST, self.server.port, path, source=source, timeout=SETUP_TIMEOUT)
        answers = Answers(client)
        await answers.expect("authenticated")
        if join:
            client.send_text(json.dumps({"type": "join", "room": self.rooms[room], "ref": "j"}))
            await answers.expect("ack")
        return client

    def message(self, room: str, content: str, ref: int) -> str:
        client_id = f"b{self.server.port}-{next(self._client_ids)}"
        frame = {
            "type": "message",
            "room": self.rooms[room],
            "content": content,
            "client_id": client_id,
            "ref": ref,
        }
        return json.dumps(frame, separators=(",", ":"))


class TutorialTarget:
    """The tutorial-style reference app."""

    kind = "tutorial"

    def __init__(self, server: Server) -> None:
        self.server = server

    async def open(
        self, user: int, room: str, source: str | None = None, *, join: bool = True
    ) -> WebSocketClient:
        """A socket in `room` (the app adds it to the group before accepting; always joined)."""
        path = f"/ws/chat/{room}/"
        return await connect(HOST, self.server.port, path, source=source, timeout=SETUP_TIMEOUT)

    def message(self, room: str, content: str, ref: int) -> str:
        return json.dumps({"message": content}, separators=(",", ":"))


Target = ChatTarget | TutorialTarget


async def open_many(
    target: Target,
    sockets: list[tuple[int, str]],
    *,
    concurrency: int = CONNECT_CONCURRENCY,
    sources: tuple[str, ...] = (HOST,),
    join: bool = True,
) -> list[WebSocketClient]:
    """Open one socket per (user number, room), at most `concurrency` at a time."""
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int, user: int, room: str) -> WebSocketClient:
        async with gate:
            return await target.open(user, room, sources[i % len(sources)], join=join)

    tasks = [asyncio.ensure_future(one(i, u, r)) for i, (u, r) in enumerate(sockets)]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        clients = await asyncio.gather(*tasks, return_exceptions=True)
        close_all([c for c in clients if isinstance(c, WebSocketClient)])
        raise


def close_all(clients: list[WebSocketClient]) -> None:
    """Drop the connections at once (the servers run their `disconnect` either way)."""
    for client in clients:
        client.abort()
