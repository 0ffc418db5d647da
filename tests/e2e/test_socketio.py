"""Socket.IO clients (SPEC 9.1) against real servers, written from the seed README (004).

The real socket.io-client v4 from npm, driven by Node (`tests/js/driver.mjs`, installed
by `npm ci --prefix tests/js`), and python-socketio's `AsyncClient` (aiohttp; over the
WebSocket transport, and polling only), beside native WebSocket clients of the same server.
"""

import asyncio
import contextlib
import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import socketio
import websockets
from django.conf import settings

from accounts.services import issue_tokens
from tests.factories import UserFactory, add_member
from tests.live import WAIT, WS, LiveServer, free_port, server_environment

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

JS = Path(__file__).resolve().parent.parent / "js"
NODE = shutil.which("node")
HAVE_CLIENT = (JS / "node_modules" / "socket.io-client" / "package.json").exists()
needs_node = pytest.mark.skipif(
    NODE is None or not HAVE_CLIENT,
    reason="socket.io-client needs `node` and `npm ci --prefix tests/js` (see .ci/run)",
)


class Node:
    """Real socket.io-client sockets in one Node process: commands in, reports out."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.unread: list[dict[str, Any]] = []
        self.seq = 0

    @classmethod
    @contextlib.asynccontextmanager
    async def running(cls) -> AsyncIterator["Node"]:
        process = await asyncio.create_subprocess_exec(
            NODE or "node",
            str(JS / "driver.mjs"),
            cwd=JS,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        node = cls(process)
        try:
            await node.expect(None, "ready")
            yield node
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()

    async def command(self, **command: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps(command) + "\n").encode())
        await self.process.stdin.drain()

    async def connect(self, id: str, url: str, **opts: Any) -> dict[str, Any]:
        await self.command(op="connect", id=id, url=url, opts=opts)
        return await self.expect(id, ("connect", "connect_error"))

    async def emit(self, id: str, event: str, data: Any) -> Any:
        """Emit with an acknowledgement callback; what the callback received."""
        self.seq += 1
        seq = self.seq
        await self.command(op="emit", id=id, event=event, data=data, seq=seq)
        return (await self.expect(id, "ack", where=lambda r: r["seq"] == seq))["data"]

    async def event(
        self, id: str, name: str, where: Callable[[Any], bool] = lambda data: True
    ) -> Any:
        found = await self.expect(
            id, "event", where=lambda r: r["event"] == name and where(r["data"])
        )
        return found["data"]

    async def expect(
        self,
        id: str | None,
        kinds: str | tuple[str, ...],
        where: Callable[[dict[str, Any]], bool] = lambda report: True,
        timeout: float = WAIT,
    ) -> dict[str, Any]:
        kinds = (kinds,) if isinstance(kinds, str) else kinds

        def matches(report: dict[str, Any]) -> bool:
            return report.get("id") == id and report["kind"] in kinds and where(report)

        for report in self.unread:
            if matches(report):
                self.unread.remove(report)
                return report
        assert self.process.stdout is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(f"no {kinds} for {id} within {timeout}s; unread: {self.unread}")
            line = await asyncio.wait_for(self.process.stdout.readline(), left)
            if not line:
                raise AssertionError(f"the driver exited; unread: {self.unread}")
            report = json.loads(line)
            if matches(report):
                return report
            self.unread.append(report)


def person(room: Any = None) -> tuple[Any, str]:
    user = UserFactory()
    if room is not None:
        add_member(room, user)
    return user, issue_tokens(user=user)["access"]


@pytest.fixture
def two() -> list[tuple[Any, str]]:
    """Two fresh users (each a budget of their own) and their access tokens."""
    return [person(), person()]


@contextlib.asynccontextmanager
async def native(server: LiveServer, token: str) -> AsyncIterator[WS]:
    async with await WS.connect(f"{server.ws_url}/ws/", token=token) as ws:
        await ws.recv_until("authenticated")
        yield ws


def room_name() -> str:
    return f"lobby-{uuid.uuid4().hex[:8]}"


# ----------------------------------------------------------------- socket.io-client


@needs_node
@pytest.mark.asyncio
async def test_socketio_client_joins_by_name_and_talks_with_a_native_client(chat_server, two):
    (alice, alice_token), (bob, bob_token) = two
    name = room_name()
    async with Node.running() as node:
        connected = await node.connect("a", chat_server.url, auth={"token": alice_token})
        assert connected["kind"] == "connect", connected
        authenticated = await node.event("a", "authenticated")
        assert (authenticated["user_id"], authenticated["username"]) == (alice.pk, alice.username)
        assert (await node.expect("a", "upgrade"))["transport"] == "websocket"

        joined = await node.emit("a", "join", {"room_id": name})  # a new name: a new room
        room_id = joined["room"]
        assert joined == {"room": room_id, "pos": 0}
        users = await node.event("a", "room_users")
        assert users["room_id"] == room_id and users["users"] == [alice.pk]

        async with native(chat_server, bob_token) as ws:
            assert (await ws.request({"type": "join", "room": room_id}))["type"] == "ack"
            arrived = await node.event("a", "user_joined", lambda d: d["user_id"] == bob.pk)
            assert {k: arrived[k] for k in ("room_id", "user_id", "username")} == {
                "room_id": room_id,
                "user_id": bob.pk,
                "username": bob.username,
            }
            # Native to Socket.IO: the seed's full message object.
            await ws.request({"type": "message", "room": room_id, "content": "from native"})
            message = await node.event("a", "message", lambda d: d["content"] == "from native")
            assert message["room_id"] == room_id and message["user_id"] == bob.pk
            assert message["username"] == bob.username and message["type"] == "text"
            assert message["timestamp"] and message["id"] and message["pos"] >= 1
            # Socket.IO to native, acknowledged with what the native ack carries.
            ack = await node.emit(
                "a",
                "message",
                {"room_id": name, "content": "from socket.io", "title": "T", "payload": {"k": 1}},
            )
            assert ack["room"] == room_id and ack["message"]["content"] == "from socket.io"
            seen = await ws.recv_until("message", room=room_id, pos=ack["message"]["pos"])
            assert seen["message"]["content"] == "from socket.io"
            assert (seen["message"]["title"], seen["message"]["payload"]) == ("T", {"k": 1})

            left = await node.emit("a", "leave", {"room_id": room_id})
            assert left == {"room": room_id}
            gone = await ws.recv_until("user_left", room=room_id)
            assert gone["user"]["id"] == alice.pk


@needs_node
@pytest.mark.asyncio
async def test_authenticate_event_status_subscription_and_presence(chat_server, two):
    (alice, alice_token), (bob, bob_token) = two
    async with Node.running() as node:
        assert (await node.connect("a", chat_server.url))["kind"] == "connect"
        answer = await node.emit("a", "authenticate", {"token": alice_token})
        authenticated = await node.event("a", "authenticated")
        assert answer == authenticated  # the callback gets it too
        assert authenticated["user_id"] == alice.pk and authenticated["is_guest"] is False

        status = await node.emit("a", "subscribe_status", {"target_user_id": str(bob.pk)})
        assert (status["user_id"], status["is_online"]) == (bob.pk, False)
        async with native(chat_server, bob_token):
            online = await node.event("a", "user_online", lambda d: d["user_id"] == bob.pk)
            assert online == {
                "type": "user_online",
                "user_id": bob.pk,
                "username": bob.username,
                "is_online": True,
                "last_seen": online["last_seen"],
            }
        offline = await node.event("a", "user_offline", lambda d: d["user_id"] == bob.pk)
        assert offline["is_online"] is False and offline["last_seen"]
        assert await node.emit("a", "unsubscribe_status", {"target_user_id": bob.pk}) == {
            "user_id": bob.pk
        }


@needs_node
@pytest.mark.asyncio
async def test_errors_answer_the_callback_or_arrive_as_error_events(chat_server, two):
    _, token = two[0]
    async with Node.running() as node:
        assert (await node.connect("a", chat_server.url))["kind"] == "connect"
        refused = await node.emit("a", "join", {"room_id": "anything"})
        assert refused["error"]["code"] == "unauthenticated"
        await node.command(op="emit", id="a", event="authenticate", data={"token": token})
        await node.event("a", "authenticated")
        unknown = await node.emit("a", "dance", {})
        assert unknown == {"error": {"code": "unknown_type", "message": "Unknown event 'dance'."}}
        missing = await node.emit("a", "join", {"room_id": 999_999_999})
        assert missing["error"]["code"] == "not_found"
        blank = await node.emit("a", "message", {"room_id": 999_999_999, "content": " "})
        assert blank["error"]["code"] in ("not_found", "validation_error")
        # Without a callback, the error is an `error` event.
        await node.command(op="emit", id="a", event="join", data={"room_id": ["x"]})
        error = await node.event("a", "error")
        assert error["code"] == "validation_error"

        bad = await node.connect("b", chat_server.url, auth={"token": "not-a-token"})
        assert bad["kind"] == "connect_error"
        assert bad["data"]["code"] == "unauthenticated"


@needs_node
@pytest.mark.asyncio
async def test_the_seeds_authenticate_without_a_token_is_refused_when_guests_are_off(
    chat_server,
):
    async with Node.running() as node:
        assert (await node.connect("a", chat_server.url))["kind"] == "connect"
        await node.command(
            op="emit", id="a", event="authenticate", data={"user_id": "u-1", "username": "John"}
        )
        error = await node.event("a", "error")
        assert error["code"] == "unauthenticated" and error["message"]
        assert (await node.expect("a", "disconnect"))["reason"] == "io server disconnect"


@needs_node
@pytest.mark.asyncio
async def test_a_reconnecting_client_recovers_what_it_missed_with_after(chat_server, two):
    (_, token), (_, native_token) = two
    name = room_name()
    async with Node.running() as node:
        await node.connect("a", chat_server.url, auth={"token": token})
        joined = await node.emit("a", "join", {"room_id": name})
        pos, room_id = joined["pos"], joined["room"]
        await node.command(op="close", id="a")
        await node.expect("a", "disconnect")
        async with native(chat_server, native_token) as ws:
            await ws.request({"type": "join", "room": room_id})
            for n in range(3):
                await ws.request({"type": "message", "room": room_id, "content": f"missed {n}"})
        await node.connect("a2", chat_server.url, auth={"token": token})
        joined = await node.emit("a2", "join", {"room_id": room_id, "after": pos})
        assert joined["pos"] > pos
        for n in range(3):
            replayed = await node.event(
                "a2", "message", lambda d, n=n: d["content"] == f"missed {n}"
            )
            assert replayed["room_id"] == room_id


@needs_node
@pytest.mark.asyncio
async def test_a_polling_only_client_works_and_the_upgrade_is_optional(chat_server, two):
    _, token = two[0]
    name = room_name()
    async with Node.running() as node:
        connected = await node.connect(
            "p", chat_server.url, auth={"token": token}, transports=["polling"]
        )
        assert connected["transport"] == "polling"
        room_id = (await node.emit("p", "join", {"room_id": name}))["room"]
        ack = await node.emit("p", "message", {"room_id": room_id, "content": "polled"})
        assert ack["message"]["content"] == "polled"
        await node.event("p", "message", lambda d: d["content"] == "polled")


# --------------------------------------------------------- python-socketio's client


class PythonClient:
    """python-socketio's `AsyncClient`: every event it receives, kept in arrival order."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.unread: list[tuple[str, Any]] = []
        self.disconnected = asyncio.Event()
        self.sio.on("*", self._on_event)
        self.sio.on("disconnect", self._on_disconnect)

    async def _on_event(self, event: str, data: Any = None) -> None:
        await self.queue.put((event, data))

    async def _on_disconnect(self, *reason: Any) -> None:
        self.disconnected.set()

    @classmethod
    @contextlib.asynccontextmanager
    async def connected(
        cls, url: str, token: str | None, transports: tuple[str, ...] = ("websocket",)
    ) -> AsyncIterator["PythonClient"]:
        client = cls()
        await client.sio.connect(
            url,
            auth={"token": token} if token is not None else None,
            transports=list(transports),
            wait_timeout=WAIT,
        )
        try:
            yield client
        finally:
            await client.sio.disconnect()

    async def call(self, event: str, data: Any) -> Any:
        """Emit with an acknowledgement and wait for it (`AsyncClient.call`)."""
        return await self.sio.call(event, data, timeout=WAIT)

    async def emit_with_callback(self, event: str, data: Any) -> Any:
        """Emit with a `callback=` (the seed README's form); what the callback received."""
        answered: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def callback(*args: Any) -> None:
            answered.set_result(args[0] if len(args) == 1 else args)

        await self.sio.emit(event, data, callback=callback)
        return await asyncio.wait_for(answered, WAIT)

    async def event(self, name: str, where: Callable[[Any], bool] = lambda d: True) -> Any:
        """The first event `name` (whose data satisfies `where`), skipping and keeping others."""
        for found in self.unread:
            if found[0] == name and where(found[1]):
                self.unread.remove(found)
                return found[1]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while (left := deadline - loop.time()) > 0:
            try:
                event, data = await asyncio.wait_for(self.queue.get(), left)
            except TimeoutError:
                break
            if event == name and where(data):
                return data
            self.unread.append((event, data))
        raise TimeoutError(f"no {name} event within {WAIT}s; unread: {self.unread}")


@pytest.mark.asyncio
async def test_python_asyncclient_joins_by_name_and_talks_with_a_native_client(chat_server, two):
    (me, token), (bob, bob_token) = two
    name = room_name()
    async with PythonClient.connected(chat_server.url, token) as client:
        assert client.sio.transport() == "websocket"
        authenticated = await client.event("authenticated")
        assert (authenticated["user_id"], authenticated["username"]) == (me.pk, me.username)

        joined = await client.call("join", {"room_id": name})  # a new name: a new room
        room_id = joined["room"]
        assert joined == {"room": room_id, "pos": 0}
        users = await client.event("room_users")
        assert users["room_id"] == room_id and users["users"] == [me.pk]
        again = await client.call("join", {"room_id": name})  # the name finds that room
        assert again["room"] == room_id

        async with native(chat_server, bob_token) as ws:
            assert (await ws.request({"type": "join", "room": room_id}))["type"] == "ack"
            arrived = await client.event("user_joined", lambda d: d["user_id"] == bob.pk)
            assert {k: arrived[k] for k in ("room_id", "user_id", "username")} == {
                "room_id": room_id,
                "user_id": bob.pk,
                "username": bob.username,
            }
            # Native to Socket.IO: the seed's full message object.
            await ws.request({"type": "message", "room": room_id, "content": "to python"})
            seen = await client.event("message", lambda d: d["content"] == "to python")
            assert seen["room_id"] == room_id and seen["user_id"] == bob.pk
            assert seen["username"] == bob.username and seen["type"] == "text"
            assert seen["timestamp"] and seen["id"] and seen["pos"] >= 1
            # Socket.IO to native, acknowledged (`call`) with what the native ack carries.
            ack = await client.call(
                "message",
                {"room_id": name, "content": "from python", "title": "T", "payload": {"k": 1}},
            )
            assert ack["room"] == room_id and ack["message"]["content"] == "from python"
            assert ack["message"]["sender"]["id"] == me.pk
            got = await ws.recv_until("message", room=room_id, pos=ack["message"]["pos"])
            assert got["message"]["content"] == "from python"
            assert (got["message"]["title"], got["message"]["payload"]) == ("T", {"k": 1})
            # The same with an acknowledgement callback.
            ack = await client.emit_with_callback(
                "message", {"room_id": room_id, "content": "with a callback"}
            )
            assert ack["room"] == room_id and ack["message"]["content"] == "with a callback"
            got = await ws.recv_until("message", room=room_id, pos=ack["message"]["pos"])
            assert got["message"]["content"] == "with a callback"
            # Errors answer the acknowledgement too.
            unknown = await client.call("dance", {})
            assert unknown == {
                "error": {"code": "unknown_type", "message": "Unknown event 'dance'."}
            }

            assert await client.emit_with_callback("leave", {"room_id": room_id}) == {
                "room": room_id
            }
            gone = await ws.recv_until("user_left", room=room_id)
            assert gone["user"]["id"] == me.pk


@pytest.mark.asyncio
async def test_python_asyncclient_over_polling_only(chat_server, two):
    (me, token), (bob, bob_token) = two
    async with PythonClient.connected(chat_server.url, token, ("polling",)) as client:
        assert client.sio.transport() == "polling"
        assert (await client.event("authenticated"))["user_id"] == me.pk
        room_id = (await client.call("join", {"room_id": room_name()}))["room"]
        ack = await client.call("message", {"room_id": room_id, "content": "polled"})
        assert ack["message"]["content"] == "polled"
        echo = await client.event("message", lambda d: d["content"] == "polled")
        assert echo["id"] == ack["message"]["id"] and echo["user_id"] == me.pk
        async with native(chat_server, bob_token) as ws:
            await ws.request({"type": "join", "room": room_id})
            await ws.request({"type": "message", "room": room_id, "content": "to a poller"})
            seen = await client.event("message", lambda d: d["content"] == "to a poller")
            assert seen["room_id"] == room_id and seen["user_id"] == bob.pk
            ack = await client.emit_with_callback(
                "message", {"room_id": room_id, "content": "from a poller"}
            )
            got = await ws.recv_until("message", room=room_id, pos=ack["message"]["pos"])
            assert got["message"]["content"] == "from a poller"
        assert client.sio.transport() == "polling"  # never upgraded


@pytest.mark.asyncio
async def test_python_asyncclient_authenticate_event_status_subscription_and_presence(
    chat_server, two
):
    (me, token), (bob, bob_token) = two
    async with PythonClient.connected(chat_server.url, None) as client:
        answer = await client.call("authenticate", {"token": token})
        authenticated = await client.event("authenticated")
        assert answer == authenticated  # the acknowledgement gets it too
        assert authenticated["user_id"] == me.pk and authenticated["is_guest"] is False

        status = await client.call("subscribe_status", {"target_user_id": str(bob.pk)})
        assert (status["user_id"], status["is_online"]) == (bob.pk, False)
        async with native(chat_server, bob_token):
            online = await client.event("user_online", lambda d: d["user_id"] == bob.pk)
            assert online == {
                "type": "user_online",
                "user_id": bob.pk,
                "username": bob.username,
                "is_online": True,
                "last_seen": online["last_seen"],
            }
        offline = await client.event("user_offline", lambda d: d["user_id"] == bob.pk)
        assert offline["type"] == "user_offline" and offline["username"] == bob.username
        assert offline["is_online"] is False and offline["last_seen"]
        assert await client.call("unsubscribe_status", {"target_user_id": bob.pk}) == {
            "user_id": bob.pk
        }


@pytest.mark.asyncio
async def test_python_asyncclient_reconnects_and_recovers_what_it_missed_with_after(
    chat_server, two
):
    (_, token), (_, native_token) = two
    async with PythonClient.connected(chat_server.url, token) as first:
        joined = await first.call("join", {"room_id": room_name()})
        pos, room_id = joined["pos"], joined["room"]
    assert first.disconnected.is_set()
    async with native(chat_server, native_token) as ws:
        await ws.request({"type": "join", "room": room_id})
        for n in range(3):
            await ws.request({"type": "message", "room": room_id, "content": f"missed {n}"})
    async with PythonClient.connected(chat_server.url, token) as again:
        joined = await again.call("join", {"room_id": room_id, "after": pos})
        assert joined["room"] == room_id and joined["pos"] > pos
        replayed = [
            await again.event("message", lambda d: d["content"].startswith("missed"))
            for _ in range(3)
        ]
        assert [m["content"] for m in replayed] == ["missed 0", "missed 1", "missed 2"]
        assert all(m["room_id"] == room_id for m in replayed)
        assert [m["pos"] for m in replayed] == sorted(m["pos"] for m in replayed)


# ---------------------------------------------------------------------- bad input


@pytest.mark.asyncio
async def test_an_engine_io_v3_client_gets_a_400_naming_the_supported_version(chat_server):
    async with httpx.AsyncClient(base_url=chat_server.url, timeout=10) as http:
        response = await http.get("/socket.io/", params={"EIO": "3", "transport": "polling"})
    assert response.status_code == 400
    assert response.json()["code"] == "unsupported_version"
    assert "Engine.IO 4" in response.json()["detail"]
    url = f"{chat_server.ws_url}/socket.io/?EIO=3&transport=websocket"
    async with websockets.connect(url, open_timeout=WAIT) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), WAIT)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4400


async def engine_socket(server: LiveServer, token: str) -> websockets.ClientConnection:
    """A raw Engine.IO v4 WebSocket, connected to the Socket.IO namespace."""
    ws = await websockets.connect(
        f"{server.ws_url}/socket.io/?EIO=4&transport=websocket", open_timeout=WAIT
    )
    assert (await asyncio.wait_for(ws.recv(), WAIT)).startswith("0{")
    await ws.send("40" + json.dumps({"token": token}))
    assert (await asyncio.wait_for(ws.recv(), WAIT)).startswith("40{")
    assert "authenticated" in await asyncio.wait_for(ws.recv(), WAIT)
    return ws


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "packet",
    [
        "x",  # no Engine.IO packet type
        "",  # empty
        "4{",  # a message that is no Socket.IO packet
        '42["message", {"room_id": 1',  # broken JSON
        "49",  # an unknown Socket.IO packet type
        '451-["message",{"_placeholder":true,"num":0}]',  # binary attachments
        "4" + "2" + json.dumps(["message", {"content": "x" * 70_000}]),  # over 64 KiB
        b"\x00\x01",  # a binary frame
    ],
    ids=[
        "no-type",
        "empty",
        "not-socketio",
        "broken-json",
        "unknown",
        "binary-event",
        "huge",
        "bytes",
    ],
)
async def test_a_malformed_packet_ends_the_connection_cleanly(chat_server, two, packet):
    _, token = two[0]
    since = len(chat_server.log_text())
    ws = await engine_socket(chat_server, token)
    await ws.send(packet)
    with pytest.raises(websockets.ConnectionClosed):
        while True:  # anything queued before the close (pings) may come first
            await asyncio.wait_for(ws.recv(), WAIT)
    async with httpx.AsyncClient(base_url=chat_server.url, timeout=10) as http:
        assert (await http.get("/healthz")).status_code == 200
    log = chat_server.log_text(since)
    assert "Traceback" not in log and " 500 " not in log and "status=500" not in log, log


@pytest.mark.asyncio
async def test_a_malformed_polling_body_is_a_400_and_ends_the_session(chat_server):
    since = len(chat_server.log_text())
    async with httpx.AsyncClient(base_url=chat_server.url, timeout=10) as http:
        opened = await http.get("/socket.io/", params={"EIO": "4", "transport": "polling"})
        sid = json.loads(opened.text[1:])["sid"]
        params = {"EIO": "4", "transport": "polling", "sid": sid}
        bad = await http.post("/socket.io/", params=params, content=b"x\x1e4{")
        assert bad.status_code == 400 and bad.json()["code"] == "bad_packet"
        closed = await http.get("/socket.io/", params=params)
        assert closed.status_code in (200, 400)  # the close packet, or the session is gone
        if closed.status_code == 200:
            assert closed.text == "1"
    log = chat_server.log_text(since)
    assert "Traceback" not in log and "status=500" not in log, log


@pytest.mark.asyncio
async def test_a_foreign_origin_is_refused(chat_server):
    async with httpx.AsyncClient(base_url=chat_server.url, timeout=10) as http:
        response = await http.get(
            "/socket.io/",
            params={"EIO": "4", "transport": "polling"},
            headers={"Origin": "https://evil.example"},
        )
    assert response.status_code == 403 and response.json()["code"] == "forbidden_origin"
    url = f"{chat_server.ws_url}/socket.io/?EIO=4&transport=websocket"
    async with websockets.connect(url, origin="https://evil.example", open_timeout=WAIT) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), WAIT)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403


# ------------------------------------------------------------------------- limits


@pytest.fixture(scope="module")
def limited(django_db_setup) -> Iterator[LiveServer]:
    server = LiveServer(server_environment(CHAT_RATE_LIMIT="5/60s", MAX_SOCKETS_PER_USER="2"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def in_general(general, two) -> tuple[Any, str]:
    add_member(general, two[0][0])
    return two[0]


@needs_node
@pytest.mark.asyncio
async def test_socketio_posts_share_the_native_chat_rate_limit(limited, general, in_general):
    _, token = in_general
    async with native(limited, token) as ws:
        for n in range(3):
            ack = await ws.request({"type": "message", "room": general.pk, "content": f"n{n}"})
            assert ack["type"] == "ack", ack
        async with Node.running() as node:
            await node.connect("a", limited.url, auth={"token": token})
            await node.emit("a", "join", {"room_id": general.pk})
            for n in range(2):
                ack = await node.emit("a", "message", {"room_id": general.pk, "content": f"s{n}"})
                assert "message" in ack, ack
            refused = await node.emit("a", "message", {"room_id": general.pk, "content": "six"})
            assert refused["error"]["code"] == "rate_limited"
            assert 0 < refused["error"]["retry_after"] <= 60
            # One who keeps flooding is disconnected, as a native socket is closed (4429).
            for _ in range(12):
                await node.command(
                    op="emit", id="a", event="message", data={"room_id": general.pk, "content": "f"}
                )
            assert (await node.expect("a", "disconnect"))["reason"] == "io server disconnect"
        refused = await ws.request({"type": "message", "room": general.pk, "content": "seven"})
        assert refused["code"] == "rate_limited"


@needs_node
@pytest.mark.asyncio
async def test_socketio_connections_count_toward_max_sockets_per_user(limited, two):
    _, token = two[0]
    async with native(limited, token), native(limited, token), Node.running() as node:
        connected = await node.connect("a", limited.url, auth={"token": token})
        assert connected["kind"] == "connect", (connected, limited.output())
        error = await node.event("a", "error")
        assert error["code"] == "rate_limited"
        assert (await node.expect("a", "disconnect"))["reason"] == "io server disconnect"


# ---------------------------------------------------------- two processes, Redis


@pytest.fixture
def second_server(django_db_setup) -> Iterator[LiveServer]:
    if not settings.REDIS_URL:
        pytest.skip("REDIS_URL is unset: two processes share events only through Redis")
    server = LiveServer(server_environment())
    server.start()
    yield server
    server.stop()


@needs_node
@pytest.mark.asyncio
async def test_socketio_and_native_clients_on_two_processes_see_each_other(
    chat_server, second_server, two
):
    (_, token), (other, other_token) = two
    async with Node.running() as node:
        await node.connect("a", chat_server.url, auth={"token": token})
        room_id = (await node.emit("a", "join", {"room_id": room_name()}))["room"]
        async with native(second_server, other_token) as ws:
            await ws.request({"type": "join", "room": room_id})
            await node.event("a", "user_joined", lambda d: d["user_id"] == other.pk)
            await ws.request({"type": "message", "room": room_id, "content": "across"})
            await node.event("a", "message", lambda d: d["content"] == "across")
            back = await node.emit("a", "message", {"room_id": room_id, "content": "back"})
            seen = await ws.recv_until("message", room=room_id, pos=back["message"]["pos"])
            assert seen["message"]["content"] == "back"
            await ws.no_frame(0.5)  # once: no second copy of the event


@pytest.mark.asyncio
async def test_python_asyncclient_and_a_native_client_on_two_processes_see_each_other(
    chat_server, second_server, two
):
    (_, token), (other, other_token) = two
    async with PythonClient.connected(chat_server.url, token) as client:
        room_id = (await client.call("join", {"room_id": room_name()}))["room"]
        async with native(second_server, other_token) as ws:
            await ws.request({"type": "join", "room": room_id})
            await client.event("user_joined", lambda d: d["user_id"] == other.pk)
            await ws.request({"type": "message", "room": room_id, "content": "across"})
            seen = await client.event("message", lambda d: d["content"] == "across")
            assert seen["room_id"] == room_id and seen["user_id"] == other.pk
            back = await client.call("message", {"room_id": room_id, "content": "back"})
            got = await ws.recv_until("message", room=room_id, pos=back["message"]["pos"])
            assert got["message"]["content"] == "back"
            await ws.no_frame(0.5)  # once: no second copy of the event
        with pytest.raises(TimeoutError):  # nor a second copy of "across" here
            await asyncio.wait_for(client.event("message", lambda d: d["content"] == "across"), 0.5)


# ------------------------------------------- a polling client that never polls, drain


@pytest.fixture(scope="module")
def small_buffer(django_db_setup) -> Iterator[LiveServer]:
    server = LiveServer(server_environment(WEBSOCKET_SEND_BUFFER="20000", LOG_LEVEL="info"))
    server.start()
    yield server
    server.stop()


@pytest.mark.asyncio
async def test_a_polling_client_that_never_polls_is_dropped(small_buffer, two):
    (_, token), (_, native_token) = two
    since = len(small_buffer.log_text())
    async with httpx.AsyncClient(base_url=small_buffer.url, timeout=10) as http:
        opened = await http.get("/socket.io/", params={"EIO": "4", "transport": "polling"})
        params = {"EIO": "4", "transport": "polling", "sid": json.loads(opened.text[1:])["sid"]}
        assert (
            await http.post(
                "/socket.io/", params=params, content="40" + json.dumps({"token": token})
            )
        ).status_code == 200
        assert (await http.get("/socket.io/", params=params)).text.startswith("40")
        join = "420" + json.dumps(["join", {"room_id": room_name()}])
        assert (await http.post("/socket.io/", params=params, content=join)).status_code == 200
        answers = (await http.get("/socket.io/", params=params)).text
        room_id = json.loads(answers[answers.index("430") + 3 :].split("\x1e")[0])[0]["room"]
        async with native(small_buffer, native_token) as ws:  # writes; the client never polls
            await ws.request({"type": "join", "room": room_id})
            for n in range(40):
                await ws.request(
                    {"type": "message", "room": room_id, "content": f"{n} " + "x" * 900}
                )
        gone = await http.get("/socket.io/", params=params)
        assert gone.status_code == 400 or gone.text == "1", gone.text[:200]
    log = small_buffer.log_text(since)
    assert "sio_slow_client_closed" in log and "Traceback" not in log, log


@needs_node
@pytest.mark.asyncio
async def test_sigterm_ends_polling_clients_cleanly_and_they_may_reconnect(two):
    server = LiveServer(server_environment(LOG_LEVEL="info"))
    server.start()
    try:
        (_, token), _ = two
        async with Node.running() as node:
            await node.connect("p", server.url, auth={"token": token}, transports=["polling"])
            await node.emit("p", "join", {"room_id": room_name()})
            loop = asyncio.get_running_loop()
            started = loop.time()
            code = await asyncio.to_thread(server.stop)
            ended = await node.expect("p", "disconnect")
            assert ended["reason"] == "transport close"  # socket.io-client retries these
            assert code == 0 and loop.time() - started < 8
        log = server.log_text()
        assert "ws_disconnected" in log and "Traceback" not in log, log
    finally:
        server.stop()


@needs_node
@pytest.mark.asyncio
async def test_plain_daphne_serves_socketio_too(two):
    (_, token), _ = two
    port = free_port()
    env = server_environment()
    daphne = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "chatproject.asgi:application",
        ],
        cwd=Path(__file__).resolve().parent.parent.parent,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(timeout=2) as http:
            for _ in range(100):
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"{url}/healthz")).status_code == 200:
                        break
                await asyncio.sleep(0.2)
        async with Node.running() as node:
            assert (await node.connect("a", url, auth={"token": token}))["kind"] == "connect"
            room_id = (await node.emit("a", "join", {"room_id": room_name()}))["room"]
            ack = await node.emit("a", "message", {"room_id": room_id, "content": "on daphne"})
            assert ack["message"]["content"] == "on daphne"
            assert (await node.expect("a", "upgrade"))["transport"] == "websocket"
    finally:
        daphne.terminate()
        daphne.wait(timeout=20)


@pytest.fixture(scope="module")
def with_guests(django_db_setup) -> Iterator[LiveServer]:
    server = LiveServer(server_environment(CHAT_ALLOW_GUESTS="true"))
    server.start()
    yield server
    server.stop()


@needs_node
@pytest.mark.asyncio
async def test_the_seeds_authenticate_is_a_guest_when_guests_are_on(with_guests, general):
    nickname = f"Nick{uuid.uuid4().hex[:6]}"
    async with Node.running() as node:
        assert (await node.connect("g", with_guests.url))["kind"] == "connect"
        answer = await node.emit("g", "authenticate", {"user_id": "u-9", "username": nickname})
        assert answer["is_guest"] is True and answer["display_name"] == nickname
        assert (await node.event("g", "authenticated"))["user_id"] == answer["user_id"]
        joined = await node.emit("g", "join", {"room_id": general.pk})
        assert joined["room"] == general.pk
        ack = await node.emit("g", "message", {"room_id": general.pk, "content": "hi, guest here"})
        assert ack["message"]["sender"]["id"] == answer["user_id"]
        refused = await node.emit("g", "join", {"room_id": room_name()})  # no new rooms
        assert refused["error"]["code"] == "forbidden"
