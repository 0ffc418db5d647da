"""Faults (SPEC section 5): Redis restarted mid-conversation, Redis down at start, the
database taken away from a running server, a Daphne process killed with SIGKILL.

Every test runs its own servers; Redis is a private `redis-server` on a free port, so
killing and restarting it never touches the machine's shared Redis. Each test prints one
`FIGURE ...` line (`pytest tests/e2e/test_faults.py -s -q | grep FIGURE`), the figures of
docs/RELIABILITY.md.
"""

import asyncio
import contextlib
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets
from django.conf import settings

from chatproject import health
from tests.factories import add_member
from tests.live import WS, LiveServer, free_port, server_environment

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

Frame = dict[str, Any]


# ------------------------------------------------------------------ private Redis


class PrivateRedis:
    """A `redis-server` of this test alone, stopped and restarted by PID on one port."""

    def __init__(self) -> None:
        self.port = free_port()  # below the ephemeral range: stays ours across a restart
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def start(self, timeout: float = 10.0) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            if self._ping():
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port} within {timeout}s")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("the `redis-server` binary is not installed: no private Redis to kill")
    redis = PrivateRedis()
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()


# ------------------------------------------------------------------------ helpers


@pytest.fixture
def room_of_two(general, user, other_user):
    """General with alice and bob already members: joins store no notices, so every
    position in the room is one message of the test."""
    add_member(general, user)
    add_member(general, other_user)
    general.refresh_from_db()
    return general


async def start(env: dict[str, str]) -> LiveServer:
    server = LiveServer(env)
    await asyncio.to_thread(server.start)
    return server


async def stop(server: LiveServer, sig: int = signal.SIGTERM) -> int | None:
    return await asyncio.to_thread(server.stop, sig)


async def ready(server: LiveServer, timeout: float = 10) -> httpx.Response:
    async with httpx.AsyncClient(timeout=timeout) as http:
        return await http.get(f"{server.url}/readyz")


async def until_ready(server: LiveServer, within: float, what: str) -> None:
    """Poll /readyz until 200. A probe that times out on a loaded machine is one more
    "not yet"; only the deadline fails the test."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        with contextlib.suppress(httpx.TimeoutException):
            if (await ready(server)).status_code == 200:
                return
        assert loop.time() < deadline, f"/readyz not 200 within {within:g} s of {what}"
        await asyncio.sleep(0.2)


class Client:
    """One user's socket in one room, remembering every message frame it was shown."""

    def __init__(self, name: str, token: str, room: int) -> None:
        self.name, self.token, self.room = name, token, room
        self.ws: WS | None = None
        self.shown: list[Frame] = []  # every message frame (live or replayed)
        self.last_acked = 0

    @property
    def open(self) -> bool:
        return self.ws is not None

    async def connect(self, server: LiveServer, after: int | None = None) -> Frame:
        """Connect and join the room; with `after`, read the replay up to the join's pos."""
        await self.close()
        self.forget_after(after)
        self.ws = await WS.connect(f"{server.ws_url}/ws/", token=self.token)
        await self.ws.recv_until("authenticated", timeout=10)
        return await self.join(after)

    def forget_after(self, after: int | None) -> None:
        """A client that asks for what came `after` keeps only its view up to there."""
        if after is not None:
            self.shown = [m for m in self.shown if m["pos"] <= after]

    async def join(self, after: int | None = None) -> Frame:
        self.forget_after(after)
        ref = uuid.uuid4().hex[:12]
        frame: Frame = {"type": "join", "room": self.room, "ref": ref}
        if after is not None:
            frame["after"] = after
        await self.ws.send(frame)
        ack = await self.read_until(lambda f: f.get("ref") == ref, timeout=15)
        assert ack["type"] == "ack", ack
        # Live frames above `after` that were already on their way when the server took
        # the join (a late one from another process) come again in the replay, which is
        # the answer this client asked for: its view is `after`, then the replay.
        self.forget_after(after)
        if after is not None and after < ack["pos"]:
            await self.read_until(lambda f: self.is_message(f) and f["pos"] >= ack["pos"])
        return ack

    def is_message(self, frame: Frame) -> bool:
        return frame.get("type") == "message" and frame.get("room") == self.room

    async def read_until(self, wanted, timeout: float = 10.0) -> Frame:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                frame = await self.ws.recv(max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise AssertionError(f"{self.name}: wanted frame not seen in {timeout}s") from None
            if self.is_message(frame):
                self.shown.append(frame["message"])
            if wanted(frame):
                return frame

    async def say(self, content: str, client_id: str | None = None, timeout=15.0) -> Frame:
        """The answer (`ack` or `error`) to one message frame."""
        ref = uuid.uuid4().hex[:12]
        frame = {"type": "message", "room": self.room, "content": content, "ref": ref}
        if client_id:
            frame["client_id"] = client_id
        await self.ws.send(frame)
        answer = await self.read_until(lambda f: f.get("ref") == ref, timeout=timeout)
        if answer["type"] == "ack":
            self.last_acked = answer["message"]["pos"]
        return answer

    async def shown_all(self, positions: set[int], timeout: float = 20.0) -> None:
        """Read until every message at `positions` was shown."""

        def done(_frame: Frame | None = None) -> bool:
            return positions <= {m["pos"] for m in self.shown}

        if not done():
            await self.read_until(done, timeout=timeout)

    async def drain(self, within: float) -> None:
        """Read (and remember) whatever arrives within `within` seconds."""
        with contextlib.suppress(AssertionError):
            await self.read_until(lambda f: False, timeout=within)

    def contiguous_pos(self, start: int) -> int:
        """The highest pos up to which this client was shown every message, in order and
        without a gap, as a client that watches `pos` sees it (each message of the test
        takes the room's next position). Messages from two processes may arrive out of
        pos order: the first jump is a gap, even if the message arrives later."""
        pos = start
        for message in self.shown:
            if message["pos"] == pos + 1:
                pos += 1
            elif message["pos"] > pos:
                break
        return pos

    def drop(self) -> None:
        self.ws = None

    async def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 5)
            self.ws = None


def duplicates(messages: list[Frame]) -> int:
    return len(messages) - len({m["id"] for m in messages})


def check_recovery(client: Client, acked: dict[int, Frame]) -> int:
    """Every acked message was shown to `client` exactly once, in pos order."""
    shown = client.shown
    assert duplicates(shown) == 0, f"{client.name} was shown a message twice"
    ids = [m["id"] for m in shown]
    missing = set(acked) - set(ids)
    assert not missing, f"{client.name} never recovered acked messages {sorted(missing)}"
    poses = [m["pos"] for m in shown]
    assert poses == sorted(poses), f"{client.name} was shown messages out of pos order"
    return len(set(acked) & set(ids))


# --------------------------------------------------------------------------- tests


async def test_redis_restarted_mid_conversation_recovers_every_acked_message(
    private_redis, room_of_two, alice_token, bob_token, worker_connections_closed
):
    room = room_of_two.pk
    server = await start(server_environment(REDIS_URL=private_redis.url))
    alice, bob = Client("alice", alice_token, room), Client("bob", bob_token, room)
    acked: dict[int, Frame] = {}
    errors = closed = rest_acked = 0
    reconnects = {"accepted": 0, "refused": 0}
    refusals: set[str] = set()
    slowest = 0.0
    close_codes: list[int | None] = []
    loop = asyncio.get_running_loop()
    try:
        start_pos = (await alice.connect(server))["pos"]
        await bob.connect(server)

        async def exchange(tag: str, rounds: int) -> None:
            nonlocal errors, closed, slowest
            for n in range(rounds):
                for client in (alice, bob):
                    if not client.open:
                        if tag != "during":
                            continue
                        began = time.monotonic()
                        try:  # a client reconnects as soon as its socket is closed
                            await asyncio.wait_for(client.connect(server), 5)
                            reconnects["accepted"] += 1
                        except Exception as exc:
                            reconnects["refused"] += 1
                            refusals.add(type(exc).__name__)
                            client.drop()
                            continue
                        finally:
                            slowest = max(slowest, time.monotonic() - began)
                    try:
                        answer = await client.say(f"{tag}-{client.name}-{n}")
                    except websockets.ConnectionClosed as exc:
                        closed += 1
                        close_codes.append(exc.rcvd.code if exc.rcvd else None)
                        client.drop()
                        continue
                    if answer["type"] == "ack":
                        acked[answer["message"]["id"]] = answer["message"]
                    else:
                        assert answer["code"] == "unavailable", answer
                        errors += 1

        await exchange("before", 10)
        assert len(acked) == 20
        # Live delivery works before the fault: each client is shown all 20 (one process,
        # no layer in between), then knows where it has seen everything.
        before = {m["pos"] for m in acked.values()}
        for client in (alice, bob):
            await client.shown_all(before)
        after = {c.name: c.contiguous_pos(start_pos) for c in (alice, bob)}
        assert after == {"alice": max(before), "bob": max(before)}, after

        await asyncio.to_thread(private_redis.stop)
        await exchange("during", 3)  # the database still stores: `ack` or `error`
        # REST needs no channel layer to store: a 201 is an ack like any other.
        async with httpx.AsyncClient(
            base_url=server.url, headers={"Authorization": f"Bearer {alice_token}"}, timeout=10
        ) as http:
            for n in range(5):
                response = await http.post(
                    f"/api/rooms/{room}/messages/",
                    json={"content": f"during-rest-{n}", "client_id": f"during-rest-{n}"},
                )
                if response.status_code == 201:
                    acked[response.json()["id"]] = response.json()
                    rest_acked += 1
                else:
                    assert response.status_code == 503, response.text
                    errors += 1
        await asyncio.to_thread(private_redis.start)

        await until_ready(server, 30, "Redis restarting")
        assert server.process.poll() is None  # recovered without a restart of its own

        # Rejoin: on the same socket if the server kept it, else on a new one.
        for client in (alice, bob):
            rejoined = False
            if client.open:
                try:
                    await client.join(after=after[client.name])
                    rejoined = True
                except websockets.ConnectionClosed as exc:
                    closed += 1
                    close_codes.append(exc.rcvd.code if exc.rcvd else None)
            # As a client does after 1013 ("try again later"): each pooled Redis
            # connection that died with the restart may refuse one socket, so how many
            # tries that takes depends on timing; a deadline bounds it, not a count.
            deadline = loop.time() + 20
            while not rejoined:
                try:
                    await client.connect(server, after=after[client.name])
                    rejoined = True
                except websockets.ConnectionClosed as exc:
                    close_codes.append(exc.rcvd.code if exc.rcvd else None)
                    assert close_codes[-1] == 1013, close_codes
                    assert loop.time() < deadline, f"{client.name} refused for 20 s: {close_codes}"
                    await asyncio.sleep(0.5)

        await exchange("after", 5)
        assert all(c.open for c in (alice, bob))
        # Live delivery works again: each sees the other's last message.
        newest = max(alice.last_acked, bob.last_acked)
        for client in (alice, bob):
            if client.contiguous_pos(start_pos) < newest:
                await client.read_until(lambda f: f.get("type") == "message" and f["pos"] >= newest)

        recovered = min(check_recovery(c, acked) for c in (alice, bob))
        dups = sum(duplicates(c.shown) for c in (alice, bob))
        print(
            f"\nFIGURE redis_restart acked={len(acked)} recovered={recovered} "
            f"duplicates={dups} refused={errors} rest_acked_during_outage={rest_acked} "
            f"sockets_closed={closed} close_codes={','.join(map(str, close_codes)) or '-'} "
            f"reconnects_during_outage={reconnects['accepted']} "
            f"reconnects_refused={reconnects['refused']} "
            f"refused_as={','.join(sorted(refusals)) or '-'} slowest_reconnect={slowest:.1f}s"
        )
        assert recovered == len(acked)
        # Sockets survive the outage; once caught up, the server closes them with 1012
        # (restart: reconnect and recover), or refuses a new one with 1013 (try again),
        # never 1011 (an internal error).
        assert set(close_codes) <= {1012, 1013}, close_codes
    finally:
        await alice.close()
        await bob.close()
        await stop(server)


async def test_after_a_redis_restart_two_processes_hear_each_other_again(
    private_redis, room_of_two, alice_token, bob_token, worker_connections_closed
):
    room = room_of_two.pk
    env = server_environment(REDIS_URL=private_redis.url)
    first, second = await asyncio.gather(start(env), start(env))
    alice, bob = Client("alice", alice_token, room), Client("bob", bob_token, room)
    try:
        await alice.connect(first)
        await bob.connect(second)
        # Each process has noted its Redis's run id (/readyz runs hub.catch_up): a restart
        # before a process's first check goes unnoticed (its memberships then lapse until
        # the 30 s refresh), and this test is about a restart while both are running.
        for server in (first, second):
            await until_ready(server, 30, "the sockets opening")
        await asyncio.to_thread(private_redis.stop)
        await asyncio.to_thread(private_redis.start)
        for server in (first, second):
            await until_ready(server, 30, "the restart")
        for client, server in ((alice, first), (bob, second)):
            # Closed with 1012 once its process caught up; or still open if the restart
            # went unseen between two checks.
            try:
                await client.ws.request({"type": "ping"})
            except websockets.ConnectionClosed as exc:
                assert exc.rcvd is not None and exc.rcvd.code == 1012, exc
                await client.connect(server)
        sent = await alice.say("heard across processes again")
        assert sent["type"] == "ack", sent
        got = await bob.read_until(
            lambda f: f.get("type") == "message" and f["pos"] == sent["message"]["pos"],
            timeout=20,
        )
        assert got["message"]["content"] == "heard across processes again"
    finally:
        await alice.close()
        await bob.close()
        await asyncio.gather(stop(first), stop(second))


async def test_redis_down_at_start_is_not_ready_and_does_not_crash(user, worker_connections_closed):
    # Nothing listens there: a port this test holds bound without listening (connections
    # are refused), so no other process (a server, a parallel test's Redis) can take it.
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        nowhere = f"redis://127.0.0.1:{placeholder.getsockname()[1]}/0"
        server = await start(server_environment(REDIS_URL=nowhere))
        try:
            response = await ready(server)
            assert response.status_code == 503, response.text
            channel_layer = response.json()["checks"]["channel_layer"]
            assert channel_layer.startswith("error"), channel_layer
            async with httpx.AsyncClient(timeout=10) as http:
                assert (await http.get(f"{server.url}/healthz")).status_code == 200
            await asyncio.sleep(3)  # the window in which it must not crash, not a wait
            assert server.process.poll() is None, server.output()
            assert (await ready(server)).status_code == 503
            tracebacks = server.output().count("Traceback")
            assert tracebacks <= 3, server.output()
            print(
                f"\nFIGURE redis_down_at_start readyz=503 healthz=200 alive_after_3s=yes "
                f"tracebacks={tracebacks} channel_layer={channel_layer.split(':')[1].strip()}"
            )
        finally:
            await stop(server)


async def test_sigkilled_process_users_recover_every_acked_message_on_another(
    private_redis, room_of_two, alice_token, bob_token, worker_connections_closed
):
    room, sent = room_of_two.pk, 40
    env = server_environment(REDIS_URL=private_redis.url)
    first, doomed = await asyncio.gather(start(env), start(env))
    alice, bob = Client("alice", alice_token, room), Client("bob", bob_token, room)
    acked: dict[int, Frame] = {}
    try:
        start_pos = (await alice.connect(first))["pos"]
        await bob.connect(doomed)

        # A burst of frames; the process dies with some of them still unanswered.
        refs = {}
        for n in range(sent):
            refs[f"r{n}"] = n
            await bob.ws.send(
                {
                    "type": "message",
                    "room": room,
                    "content": f"burst-{n}",
                    "client_id": f"burst-{n}",
                    "ref": f"r{n}",
                }
            )
        while len(acked) < sent // 2:
            answer = await bob.read_until(lambda f: f.get("ref") in refs)
            assert answer["type"] == "ack", answer
            acked[answer["message"]["id"]] = answer["message"]
        assert await stop(doomed, signal.SIGKILL) == -signal.SIGKILL
        with contextlib.suppress(websockets.ConnectionClosed, AssertionError):
            while True:  # acks already on the wire still count
                answer = await bob.read_until(lambda f: f.get("ref") in refs, timeout=2)
                if answer["type"] == "ack":
                    acked[answer["message"]["id"]] = answer["message"]
        bob.drop()
        acked_before_kill = len(acked)

        # bob moves to the surviving process and recovers from where he had seen all.
        after = bob.contiguous_pos(start_pos)
        floor = (await bob.connect(first, after=after))["pos"]
        check_recovery(bob, acked)
        # Then retries what was never acked, with the same client_ids: no second copy.
        acked_contents = {m["content"] for m in acked.values()}
        created: set[int] = set()  # positions of what `first` itself stored on a retry
        for n in range(sent):
            if f"burst-{n}" not in acked_contents:
                answer = await bob.say(f"burst-{n}", client_id=f"burst-{n}")
                assert answer["type"] == "ack", answer
                acked[answer["message"]["id"]] = answer["message"]
                if answer["message"]["pos"] > floor:  # not found stored: new, published here
                    created.add(answer["message"]["pos"])
        assert len(acked) == sent

        newest = max(m["pos"] for m in acked.values())
        # Live delivery: what `first` stored, it publishes to its own sockets: both are
        # shown it. What the killed process stored may never have been published (committed
        # just before the kill; or acked once hub.forwarded gave up waiting for Redis), and
        # reaches alice through Redis, possibly after `first`'s own messages: neither the
        # newest position nor a count of frames is sure to come, hence no wait for them.
        for client in (alice, bob):
            await client.shown_all(created)
        # For the figure only (a late frame is not counted as a gap); the checks below hold
        # whenever a frame arrives: a gap is filled with `after`, which supersedes it.
        await alice.drain(0.5)
        # A message the killed process committed just before it died was never broadcast
        # (bob's retry finds it stored and sends no second event). A client sees the gap
        # in `pos` and fetches it with `after`, as SPEC section 5 says and the page does.
        gaps_filled = 0
        for client in (alice, bob):
            seen_all_to = client.contiguous_pos(start_pos)
            if seen_all_to < newest:
                await client.join(after=seen_all_to)
                gaps_filled += 1
        recovered = min(check_recovery(c, acked) for c in (alice, bob))
        dups = sum(duplicates(c.shown) for c in (alice, bob))
        async with httpx.AsyncClient(
            base_url=first.url, headers={"Authorization": f"Bearer {alice_token}"}, timeout=10
        ) as http:
            history = await http.get(
                f"/api/rooms/{room}/messages/", params={"after": 0, "limit": 200}
            )
        assert history.status_code == 200, history.text
        stored = [m["content"] for m in history.json()["results"]]
        assert sorted(stored) == sorted(f"burst-{n}" for n in range(sent))
        before_kill = {k: acked[k] for k in list(acked)[:acked_before_kill]}
        print(
            f"\nFIGURE sigkill sent={sent} acked_before_kill={acked_before_kill} "
            f"recovered={check_recovery(bob, before_kill)} "
            f"stored_after_retry={len(stored)} duplicates={dups} recovered_all={recovered} "
            f"gaps_filled_with_after={gaps_filled}"
        )
    finally:
        await alice.close()
        await bob.close()
        await asyncio.gather(stop(first), stop(doomed))


def _admin_connection():
    """Autocommit connection to the server's `postgres` database (not the test one)."""
    import psycopg

    db = settings.DATABASES["default"]
    return psycopg.connect(
        dbname="postgres",
        user=db.get("USER") or "postgres",
        password=db.get("PASSWORD") or None,
        host=db.get("HOST") or "127.0.0.1",
        port=db.get("PORT") or 5432,
        autocommit=True,
    )


def take_database_away(name: str, application: str) -> int:
    """Refuse new connections to the test database and end the server's open ones."""
    with _admin_connection() as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND application_name = %s AND pid <> pg_backend_pid()",
            (name, application),
        ).fetchall()
    return len(rows)


def give_database_back(name: str) -> None:
    with _admin_connection() as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


async def test_database_unavailable_refuses_sends_and_acks_only_what_is_stored(
    room_of_two, alice_token, worker_connections_closed
):
    db = settings.DATABASES["default"]
    if not db["ENGINE"].endswith("postgresql"):
        pytest.skip("needs PostgreSQL to take the database away from a running server")
    room, name = room_of_two.pk, db["NAME"]
    application = f"fault-{uuid.uuid4().hex[:8]}"
    env = server_environment()
    env["DATABASE_URL"] += f"?application_name={application}"
    server = await start(env)
    alice = Client("alice", alice_token, room)
    taken = False
    try:
        await alice.connect(server)
        assert (await alice.say("while the database is up"))["type"] == "ack"

        terminated = await asyncio.to_thread(take_database_away, name, application)
        taken = True
        began = time.monotonic()
        refused = await alice.say("never stored", client_id="refused-1", timeout=30)
        refused_after = time.monotonic() - began
        assert refused["type"] == "error", refused
        assert refused["code"] == "unavailable", refused
        assert (await alice.ws.request({"type": "ping"}, timeout=15))["type"] == "pong"
        began = time.monotonic()
        async with httpx.AsyncClient(
            base_url=server.url, headers={"Authorization": f"Bearer {alice_token}"}, timeout=30
        ) as http:
            response = await http.post(
                f"/api/rooms/{room}/messages/",
                json={"content": "never stored", "client_id": "refused-2"},
            )
        assert response.status_code == 503, response.text[:300]
        assert response.json()["code"] == "unavailable"
        rest_refused_in = time.monotonic() - began
        began = time.monotonic()
        ready_while_down = (await ready(server, timeout=30)).status_code
        ready_in = time.monotonic() - began
        assert ready_while_down == 503
        # A load balancer's probe gets its answer within the check's own deadline (plus
        # slack for a loaded machine), not after the connection pool's timeout (10 s).
        pool_timeout = db.get("OPTIONS", {}).get("pool", {}).get("timeout", 10)
        assert ready_in < min(health.CHECK_TIMEOUT + 5, pool_timeout - 1), ready_in

        await asyncio.to_thread(give_database_back, name)
        taken = False
        answer = await alice.say("stored after", client_id="stored-1", timeout=30)
        assert answer["type"] == "ack", answer

        async with httpx.AsyncClient(
            base_url=server.url, headers={"Authorization": f"Bearer {alice_token}"}, timeout=10
        ) as http:
            history = await http.get(
                f"/api/rooms/{room}/messages/", params={"after": 0, "limit": 200}
            )
        assert history.status_code == 200, history.text
        stored = [m["content"] for m in history.json()["results"]]
        assert "never stored" not in stored
        assert stored.count("stored after") == 1
        print(
            f"\nFIGURE database_down backends_terminated={terminated} ws_refused=1 rest_refused=1 "
            f"ws_refused_in={refused_after:.1f}s rest_refused_in={rest_refused_in:.1f}s "
            f"readyz_while_down={ready_while_down} readyz_in={ready_in:.1f}s "
            f"acked_after_restore=1 refused_stored=0"
        )
    finally:
        if taken:
            await asyncio.to_thread(give_database_back, name)
        await alice.close()
        await stop(server)


async def test_an_idle_socket_outlives_the_channel_layers_blocking_read(
    private_redis, room_of_two, alice_token, worker_connections_closed
):
    """channels_redis waits for events with a 5 s BZPOPMIN; with redis-py's default 5 s
    read timeout an idle socket's receive timed out and Daphne closed it with 1011."""
    server = await start(server_environment(REDIS_URL=private_redis.url))
    alice = Client("alice", alice_token, room_of_two.pk)
    try:
        await alice.connect(server)
        idle = 7.0
        await alice.drain(idle)  # nothing arrives: the consumer waits on Redis all along
        assert (await alice.ws.request({"type": "ping"}))["type"] == "pong"
        assert (await alice.say("still here"))["type"] == "ack"
        print(f"\nFIGURE idle_socket idle_seconds={idle:.0f} still_open=yes")
    finally:
        await alice.close()
        await stop(server)
