"""The presence store on its own: the sweep is claimed by one process per period, and it
reads only what expired; a room is counted in O(1) and paged in id order. And the
batching of big rooms' joins and leaves into `room_presence` frames (`messaging.sockets`)."""

import asyncio
import time
import uuid
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from django.conf import settings
from redis.client import Pipeline

from accounts.models import User
from accounts.presence import (
    LocalPresence,
    RedisPresence,
    presence,
    room_key,
    room_user_page,
    room_users_sample,
    user_key,
)
from chatproject import events
from messaging import roompresence, sockets

PERIOD = 2.0  # seconds


def test_in_one_process_the_sweep_is_always_ours():
    store = LocalPresence(ttl=45)
    assert store.claim_sweep(15) and store.claim_sweep(15)


def test_with_redis_one_process_sweeps_per_period():
    if not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL: several processes share a presence store only in Redis")
    prefix = f"{settings.CHANNEL_LAYERS['default']['CONFIG']['prefix']}-sweep-{time.time_ns()}"
    one, other = (RedisPresence(settings.REDIS_URL, prefix, ttl=3) for _ in range(2))
    try:
        # A period long enough that a busy machine does not see it end between the calls.
        assert one.claim_sweep(PERIOD) is True
        assert other.claim_sweep(PERIOD) is False  # another process swept this period
        assert one.claim_sweep(PERIOD) is False
        time.sleep(PERIOD + 0.1)
        assert other.claim_sweep(PERIOD) is True  # the next period is anyone's
    finally:
        one.clear()


# ------------------------------------------------------------------- the sweep

TTL = 0.3  # seconds: the deadline of a socket whose process "dies" (stops renewing)


@pytest.fixture
def redis_store() -> Iterator[RedisPresence]:
    """A store under a private prefix: what other tests (and their servers) do on the
    same Redis never meets it."""
    if not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL")
    prefix = f"{settings.CHANNEL_LAYERS['default']['CONFIG']['prefix']}-sweep-{uuid.uuid4().hex}"
    store = RedisPresence(settings.REDIS_URL, prefix, ttl=60)
    yield store
    store.clear()


@pytest.fixture(params=["local", "redis"])
def store(request) -> LocalPresence | RedisPresence:
    if request.param == "local":
        return LocalPresence(ttl=60)
    return request.getfixturevalue("redis_store")


def enter_dying(store, key: tuple[str, str, int], socket_id: str, ttl: float = TTL) -> None:
    """A socket of a process that will never renew it: its deadline is `ttl` away."""
    store.ttl, live_ttl = ttl, store.ttl
    try:
        store.enter(key, socket_id)
    finally:
        store.ttl = live_ttl


def wait_expired(store, *names: str) -> None:
    """Until every one of `names` has no live socket left (bounded)."""
    deadline = time.monotonic() + 10
    while any(store.live(list(names))):
        assert time.monotonic() < deadline, f"{names} still live"
        time.sleep(0.05)


def test_the_sweep_reports_the_users_and_rooms_of_dead_sockets_once(store):
    store.enter(user_key(1), "live-1")  # a user on a live process only
    store.enter(room_key(9, 1), "live-1")
    enter_dying(store, user_key(2), "dead-2")  # a user on the dead process only
    enter_dying(store, room_key(9, 2), "dead-2")
    store.enter(user_key(3), "live-3")  # a user with a socket on each
    enter_dying(store, user_key(3), "dead-3")
    enter_dying(store, room_key(9, 3), "dead-3")
    wait_expired(store, user_key(2)[0], room_key(9, 3)[0])

    assert sorted(store.sweep()) == [("online", 2), ("room:9", 2), ("room:9", 3)]
    assert store.sweep() == []  # once
    assert store.exit(user_key(2), "dead-2") is False  # already reported by the sweep
    assert store.members("online", lambda uid: user_key(uid)[0]) == {1, 3}
    assert store.members("room:9", lambda uid: room_key(9, uid)[0]) == {1}


def test_a_socket_that_exited_is_not_swept(store):
    enter_dying(store, user_key(4), "gone-4")
    assert store.exit(user_key(4), "gone-4") is True  # announced by its own process
    time.sleep(TTL + 0.1)  # past the deadline it had: nothing must remain to sweep
    assert store.sweep() == []


def test_a_renewed_socket_is_swept_only_once_its_process_stops_renewing(store):
    enter_dying(store, user_key(5), "renewed-5")
    store.ttl, live_ttl = 3 * TTL, store.ttl
    try:
        store.renew([(user_key(5)[0], "renewed-5")])  # its last renewal: the process dies
    finally:
        store.ttl = live_ttl
    time.sleep(TTL + 0.1)  # past the first deadline, not the renewed one
    assert store.sweep() == []
    wait_expired(store, user_key(5)[0])
    assert store.sweep() == [("online", 5)]


def test_with_redis_a_sweep_reads_only_the_expired_entries(redis_store, monkeypatch):
    """The sweep's Redis work does not grow with the number of users online."""
    store = redis_store
    client = store._redis
    sent = []
    send = client.execute_command
    monkeypatch.setattr(client, "execute_command", lambda *a, **k: sent.append(a) or send(*a, **k))
    execute = Pipeline.execute

    def counted(pipe, *a, **k):
        sent.extend(pipe.command_stack)
        return execute(pipe, *a, **k)

    monkeypatch.setattr(Pipeline, "execute", counted)

    def commands_of_a_sweep(online: int, dead: list[int]) -> int:
        for uid in range(online):
            store.enter(user_key(1000 + uid), f"live-{uid}")
        for uid in dead:
            enter_dying(store, user_key(uid), f"dead-{uid}")
        wait_expired(store, *(user_key(uid)[0] for uid in dead))
        sent.clear()
        assert sorted(store.sweep()) == [("online", uid) for uid in dead]
        return len(sent)

    # Before: SMEMBERS of every index and a ZCOUNT per member, 2 + online commands.
    assert commands_of_a_sweep(10, [1, 2]) == commands_of_a_sweep(500, [3, 4])


def test_with_redis_nothing_of_a_swept_socket_stays_in_redis(redis_store):
    """Entry keys carry no EXPIRE: the sweep itself must free what a dead process left."""
    store = redis_store
    store.enter(user_key(1), "live-1")
    enter_dying(store, user_key(2), "dead-2")
    enter_dying(store, room_key(9, 2), "dead-2")
    wait_expired(store, user_key(2)[0], room_key(9, 2)[0])

    assert sorted(store.sweep()) == [("online", 2), ("room:9", 2)]

    redis = store._redis
    left = {key.decode() for key in redis.scan_iter(store._k("*"))}
    assert left == {store._k("user:1"), store._k("zindex:online"), store._k("deadlines")}
    assert redis.zrange(store._k("deadlines"), 0, -1) == [b"user:1\nlive-1"]


# ------------------------------------------------------- a room's size and its pages


def room_page(store, room_id: int, **kwargs: Any) -> list[int]:
    return store.page(f"room:{room_id}", lambda uid: room_key(room_id, uid)[0], **kwargs)


def test_a_room_is_counted_and_paged_in_user_id_order(store):
    for uid in (50, 7, 31, 9, 12):
        store.enter(room_key(4, uid), f"s-{uid}")
    store.enter(room_key(4, 7), "s-7b")  # a second tab counts once
    store.enter(room_key(5, 1), "s-1")  # another room
    assert store.size("room:4") == 5
    assert store.sizes(["room:4", "room:5", "room:6"]) == [5, 1, 0]
    assert room_page(store, 4, limit=2) == [7, 9]
    assert room_page(store, 4, after=9, limit=2) == [12, 31]
    assert room_page(store, 4, after=31, limit=2) == [50]
    assert room_page(store, 4, after=50, limit=2) == []
    assert store.exit(room_key(4, 9), "s-9") is True
    assert store.size("room:4") == 4
    assert room_page(store, 4, limit=10) == [7, 12, 31, 50]


def test_entering_many_rooms_at_once_counts_each_as_entering_one(store):
    store.enter(room_key(2, 7), "tab-1")  # the user is in room 2 already, on another tab
    counts = store.enter_many([room_key(r, 7) for r in (1, 2, 3)], "tab-2")
    assert counts == [1, 2, 1]  # first in rooms 1 and 3, second in room 2
    assert store.sizes(["room:1", "room:2", "room:3"]) == [1, 1, 1]
    assert store.exit(room_key(2, 7), "tab-2") is False  # tab-1 is still there
    assert store.enter_many([], "tab-2") == []


def test_a_page_skips_users_whose_sockets_expired(store):
    """Until the sweep runs, the size still counts them; a page never shows them."""
    store.enter(room_key(4, 1), "live-1")
    for uid in range(2, 40):  # more dead ones than a page's slack
        enter_dying(store, room_key(4, uid), f"dead-{uid}")
    store.enter(room_key(4, 40), "live-40")
    store.enter(room_key(4, 41), "live-41")
    wait_expired(store, *(room_key(4, uid)[0] for uid in range(2, 40)))
    assert store.size("room:4") == 41
    assert room_page(store, 4, limit=2) == [1, 40]
    assert room_page(store, 4, after=1, limit=5) == [40, 41]
    assert len(store.sweep()) == 38
    assert store.size("room:4") == 3


def test_room_users_of_a_big_room_are_the_lowest_ids_with_the_count(settings):
    for uid in range(1, 13):
        presence().enter(room_key(3, uid), f"s-{uid}")
    assert room_users_sample(3, 20) == (list(range(1, 13)), 12)  # small: read whole
    assert room_users_sample(3, 5) == ([1, 2, 3, 4, 5], 12)  # big: 5 of them, and the count
    assert room_user_page(3, after=5, limit=4) == [6, 7, 8, 9]


# ------------------------------------------ big rooms: joins and leaves in batches


@pytest.fixture
def published(monkeypatch) -> list[tuple[str, dict]]:
    sent: list[tuple[str, dict]] = []
    for module in (sockets, roompresence):
        monkeypatch.setattr(module, "publish", lambda group, event: sent.append((group, event)))
    return sent


@pytest.fixture
def big_at_3(settings):
    settings.ROOM_USERS_MAX = 3
    settings.PRESENCE_BATCH_MS = 10  # per 3 present: 80 ms at 24


def person(uid: int) -> User:
    return User(pk=uid, username=f"u{uid}", display_name=f"U {uid}")


def socket_of(uid: int, n: int = 0) -> Any:
    """What the registry reads of a consumer: its user and its id."""
    return SimpleNamespace(me=person(uid), socket_id=f"sock-{uid}-{n}")


def kinds(sent: list[tuple[str, dict]]) -> list[str]:
    return [event["type"] for _, event in sent]


async def until_published(sent: list[tuple[str, dict]], count: int = 1) -> None:
    """Until `count` events were published (bounded)."""
    deadline = time.monotonic() + 10
    while len(sent) < count:
        assert time.monotonic() < deadline, sent
        await asyncio.sleep(0.01)


@pytest.mark.asyncio
async def test_a_small_room_hears_each_join_and_a_big_one_one_batch_per_period(
    big_at_3, published, settings
):
    settings.PRESENCE_BATCH_MS = 200  # 20 joins fit in the first period (267 ms)
    registry = sockets.LocalSockets()
    for uid in (1, 2, 3):  # up to ROOM_USERS_MAX present: a frame per join, as before
        await registry.enter_room(socket_of(uid), 8)
    assert kinds(published) == ["user_joined"] * 3
    published.clear()

    for uid in range(4, 24):  # 20 joins within one period
        await registry.enter_room(socket_of(uid), 8)
    assert published == []  # nothing until the period ends
    await until_published(published)
    ((group, batch),) = published
    assert group == "room.8"
    assert batch == events.room_presence(
        room=8, joined=[events.user_brief(person(u)) for u in range(4, 24)], left=[], count=23
    )
    published.clear()

    await registry.enter_room(socket_of(4, 1), 8)  # a second tab: no transition
    await registry.leave_room(socket_of(4, 1), 8)
    await registry.leave_room(socket_of(5), 8)
    await registry.leave_room(socket_of(6), 8)
    await until_published(published)
    assert [e for _, e in published] == [
        events.room_presence(room=8, joined=[], left=[5, 6], count=21)
    ]


@pytest.mark.asyncio
async def test_a_batch_holds_each_users_last_state_once(big_at_3, published, settings):
    settings.PRESENCE_BATCH_MS = 200  # a period (400 ms at 6) holds the five changes below
    registry = sockets.LocalSockets()
    for uid in range(1, 6):
        await registry.enter_room(socket_of(uid), 8)
    await until_published(published, 4)  # three `user_joined`, then a batch
    published.clear()

    await registry.enter_room(socket_of(10), 8)  # joins and leaves within the period
    await registry.leave_room(socket_of(10), 8)
    await registry.leave_room(socket_of(2), 8)  # leaves and comes back
    await registry.enter_room(socket_of(2, 1), 8)
    await registry.enter_room(socket_of(11), 8)
    await until_published(published)
    await asyncio.sleep(0.1)  # and no second one
    ((_, batch),) = published
    assert [u["id"] for u in batch["joined"]] == [2, 11]
    assert batch["left"] == [10]
    assert batch["count"] == 6


@pytest.mark.asyncio
async def test_the_bigger_the_room_the_longer_a_batch_gathers(big_at_3, published, settings):
    """A room's presence frames reach every member: their period grows with the room, so
    that a storm of joins costs each process a bounded number of deliveries a second."""
    settings.PRESENCE_BATCH_MS = 100
    assert roompresence.batch_period(2) == roompresence.batch_period(3) == 0.1
    assert roompresence.batch_period(30) == pytest.approx(1.0)  # 100 ms per 3 present
    registry = sockets.LocalSockets()
    for uid in range(1, 31):
        await registry.enter_room(socket_of(uid), 8)
    await registry.batches.flush_all()  # the joins' batch, now
    published.clear()
    began = time.monotonic()
    await registry.leave_room(socket_of(1), 8)  # 29 present: gathered for ~0.97 s
    while not published:
        assert time.monotonic() - began < 10
        await asyncio.sleep(0.02)
    assert time.monotonic() - began >= 0.9
    assert [e for _, e in published] == [
        events.room_presence(room=8, joined=[], left=[1], count=29)
    ]


@pytest.mark.asyncio
async def test_the_drain_publishes_what_a_batch_holds_at_once(big_at_3, published, settings):
    settings.PRESENCE_BATCH_MS = 60_000  # no timer would run before the process stops
    registry = sockets.LocalSockets()
    for uid in range(1, 6):
        await registry.enter_room(socket_of(uid), 8)
    assert kinds(published) == ["user_joined"] * 3
    await registry.close_all(code=1012)
    assert kinds(published) == ["user_joined"] * 3 + ["room_presence"]
    assert [u["id"] for u in published[-1][1]["joined"]] == [4, 5]
    assert len(registry.batches) == 0


@pytest.mark.asyncio
async def test_a_big_room_hears_no_user_online_of_its_members(big_at_3, published, monkeypatch):
    """Each member coming online would otherwise reach every socket of the room; their
    status subscribers still hear it."""
    monkeypatch.setattr(sockets, "user_room_ids", lambda user_id: [8, 9])
    for uid in range(1, 6):
        presence().enter(room_key(8, uid), f"s-{uid}")  # room 8 is big, room 9 empty
    await sockets.announce_online(person(1))
    assert sorted(group for group, _ in published) == ["room.9", "status.1"]
