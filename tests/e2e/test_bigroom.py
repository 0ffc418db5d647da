"""Big rooms end to end: two `manage.py serve` processes over Redis, a room with more users
present than ROOM_USERS_MAX (5 here, set in the servers' environment).

- every joiner's `room_users` lists at most ROOM_USERS_MAX users, the lowest ids present,
  with the `count` of all present, whichever process each joined on;
- joins and leaves of the big room reach its members as `room_presence` batches (far
  fewer frames than joins), from both processes, and `user_online` of the room's members
  no longer reaches the room;
- `GET /api/rooms/{id}/members/?online=true` pages the users present on both processes,
  in id order, with `next`.

The servers' presence and layer are in Redis: without it each process would only know
its own sockets, so the tests are skipped (saying so) when REDIS_URL is unset.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from django.conf import settings

from accounts.models import User
from accounts.services import issue_tokens
from rooms.models import Room
from tests.factories import UserFactory, add_member, make_room
from tests.live import WAIT, WS, LiveServer, collect, server_environment

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

Frame = dict[str, Any]
MAX = 5  # ROOM_USERS_MAX of the servers
# PRESENCE_BATCH_MS of the servers: per MAX present (420 ms at 7, 1.2 s at 20), long
# enough that a loaded machine still joins the crowd within a few periods.
BATCH_MS = 300
PEOPLE = 20
LONGEST_BATCH = BATCH_MS / 1000 * PEOPLE / MAX
START = 60.0


@pytest.fixture(scope="module")
def servers(django_db_setup, django_db_blocker) -> Iterator[tuple[LiveServer, LiveServer]]:
    if not settings.REDIS_URL:
        pytest.skip(
            "needs REDIS_URL: a big room on two processes is seen whole only through the "
            "shared presence store and channel layer in Redis"
        )
    env = server_environment(ROOM_USERS_MAX=str(MAX), PRESENCE_BATCH_MS=str(BATCH_MS))
    a, b = LiveServer(env), LiveServer(env)
    a.start(timeout=START)
    try:
        b.start(timeout=START)
    except BaseException:
        a.stop()
        raise
    yield a, b
    a.stop()
    b.stop()


@pytest.fixture
def crowd(db) -> tuple[Room, list[User], list[str]]:
    """A public room whose PEOPLE members are there already (no notices on joining), and
    their tokens, in id order."""
    room = make_room(name="Big")
    people = [UserFactory(username=f"p{i:02d}", display_name=f"P {i}") for i in range(PEOPLE)]
    for person in people:
        add_member(room, person)
    tokens = [issue_tokens(user=person)["access"] for person in people]
    return room, people, tokens


@contextlib.asynccontextmanager
async def sockets() -> AsyncIterator[list[WS]]:
    opened: list[WS] = []
    try:
        yield opened
    finally:
        for ws in opened:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 5)


async def join(opened: list[WS], server: LiveServer, token: str, room_id: int) -> tuple[WS, Frame]:
    """A socket on `server` that authenticated and joined the room, and its `room_users`."""
    ws = await WS.connect(f"{server.ws_url}/ws/", token=token)
    opened.append(ws)
    await ws.recv_until("authenticated")
    answer = await ws.request({"type": "join", "room": room_id})
    assert answer["type"] == "ack", answer
    return ws, await ws.recv_until("room_users", room=room_id)


def rest(server: LiveServer, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


async def nobody_present(server: LiveServer, token: str, room_id: int) -> None:
    """Until the room shows nobody present (an earlier test's sockets are gone)."""
    async with rest(server, token) as api:
        for _ in range(100):
            page = (await api.get(f"/api/rooms/{room_id}/members/?online=true")).json()
            if not page["results"]:
                return
            await asyncio.sleep(0.1)
    raise AssertionError(f"still present: {page}")


def brief_ids(frame: Frame) -> list[int]:
    return [user["id"] for user in frame["users"]]


async def frames_until(
    ws: WS, done: Callable[[list[Frame]], bool], timeout: float = WAIT
) -> list[Frame]:
    """Frames up to the one that makes `done(seen)` true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    seen: list[Frame] = []
    while not done(seen):
        left = deadline - loop.time()
        if left <= 0:
            raise AssertionError(f"not done within {timeout}s; saw {seen}")
        seen.append(await ws.recv(left))
    return seen


def present_after(frames: list[Frame], start: set[int]) -> set[int]:
    """Who is present, from `start`, after these presence frames."""
    present = set(start)
    for f in frames:
        if f["type"] == "user_joined":
            present.add(f["user"]["id"])
        elif f["type"] == "user_left":
            present.discard(f["user"]["id"])
        elif f["type"] == "room_presence":
            present -= set(f["left"])
            present |= {u["id"] for u in f["joined"]}
    return present


async def test_a_big_room_on_two_processes_is_joined_in_batches_and_paged(servers, crowd):
    a, b = servers
    room, people, tokens = crowd
    ids = [p.pk for p in people]
    await nobody_present(a, tokens[0], room.pk)
    async with sockets() as opened:
        # One by one up to the threshold, alternating processes: each `room_users` is
        # the whole room, counted exactly, and the room hears a frame per join.
        watcher, users = await join(opened, a, tokens[0], room.pk)
        assert brief_ids(users) == ids[:1] and users["count"] == 1
        by_person = {0: watcher}
        for i in range(1, MAX + 1):
            by_person[i], users = await join(opened, (a, b)[i % 2], tokens[i], room.pk)
            assert users["count"] == i + 1
            assert brief_ids(users) == ids[: min(i + 1, MAX)]
        early = await frames_until(
            watcher, lambda seen: present_after(seen, set()) == set(ids[: MAX + 1])
        )
        # Its own join and the next four one by one; the sixth made the room big.
        assert [f["type"] for f in early if f["type"] in ("user_joined", "room_presence")] == [
            "user_joined"
        ] * MAX + ["room_presence"]

        # The rest at once, half on each process: a big room's joiners each get
        # ROOM_USERS_MAX users (the lowest ids) and the count at their join.
        crowd_at_once = range(MAX + 1, PEOPLE)
        joined = await asyncio.gather(
            *(join(opened, (a, b)[i % 2], tokens[i], room.pk) for i in crowd_at_once)
        )
        for i, (ws, users) in zip(crowd_at_once, joined, strict=True):
            by_person[i] = ws
            assert brief_ids(users) == ids[:MAX]
            assert MAX + 2 <= users["count"] <= PEOPLE
        assert max(users["count"] for _, users in joined) == PEOPLE

        later = await frames_until(
            watcher, lambda seen: present_after(seen, set(ids[: MAX + 1])) == set(ids)
        )
        later += await collect(watcher, 2 * LONGEST_BATCH)  # anything still due
        batches = [f for f in later if f["type"] == "room_presence"]
        assert [f for f in later if f["type"] in ("user_joined", "user_left")] == []
        # Each process sends at most one batch per room and period (longer in a bigger
        # room): 14 joins on two processes within a few periods make a few frames, not 14.
        assert 2 <= len(batches) <= len(crowd_at_once) // 2, batches
        assert max(f["count"] for f in batches) == PEOPLE
        assert sorted(u["id"] for f in batches for u in f["joined"]) == ids[MAX + 1 :]
        # The room is big: members coming online are no longer announced to it.
        online = {f["user_id"] for f in later if f["type"] == "user_online"}
        assert not online & set(ids[MAX + 1 :]), later

        # Who is present, over both processes, a page at a time in id order.
        async with rest(b, tokens[0]) as api:
            url: str | None = f"/api/rooms/{room.pk}/members/?online=true&limit=7"
            pages: list[list[Frame]] = []
            while url:
                page = (await api.get(url)).json()
                pages.append(page["results"])
                url = page["next"]
            assert [len(p) for p in pages] == [7, 7, 6]
            assert [m["user"]["id"] for p in pages for m in p] == ids
            assert all(m["is_online"] for p in pages for m in p)
            bad = await api.get(f"/api/rooms/{room.pk}/members/?online=true&cursor=%25%25")
            assert bad.status_code == 404

        # Half of them go, all on process B: the room hears them leave in a batch or two.
        odd = range(1, PEOPLE, 2)
        gone = {ids[i] for i in odd}
        await asyncio.gather(*(by_person[i].close() for i in odd))
        leaving = await frames_until(
            watcher, lambda seen: present_after(seen, set(ids)) == set(ids) - gone
        )
        leaving += await collect(watcher, 2 * LONGEST_BATCH)
        kinds = [f["type"] for f in leaving]
        assert kinds.count("room_presence") <= 3 and "user_left" not in kinds, leaving
        assert [f for f in leaving if f["type"] == "room_presence"][-1]["count"] == PEOPLE // 2

        async with rest(a, tokens[0]) as api:
            page = (await api.get(f"/api/rooms/{room.pk}/members/?online=true")).json()
            assert [m["user"]["id"] for m in page["results"]] == sorted(set(ids) - gone)
            assert page["next"] is None


async def test_a_small_room_keeps_user_joined_and_full_room_users(servers, crowd):
    """At ROOM_USERS_MAX present or fewer, nothing changes for clients."""
    a, b = servers
    room, people, tokens = crowd
    await nobody_present(a, tokens[0], room.pk)
    async with sockets() as opened:
        watcher, _ = await join(opened, a, tokens[0], room.pk)
        for i in range(1, MAX):
            ws, users = await join(opened, (a, b)[i % 2], tokens[i], room.pk)
            assert brief_ids(users) == [p.pk for p in people[: i + 1]]
            assert users["count"] == i + 1
            frame = await watcher.recv_until("user_joined", room=room.pk, user=users["users"][-1])
            assert frame["user"]["id"] == people[i].pk
        await ws.close()
        left = await watcher.recv_until("user_left", room=room.pk)
        assert left["user"]["id"] == people[MAX - 1].pk
