"""The presence store on its own: the sweep is claimed by one process per period, and it
reads only what expired."""

import time
import uuid
from collections.abc import Iterator

import pytest
from django.conf import settings
from redis.client import Pipeline

from accounts.presence import LocalPresence, RedisPresence, room_key, user_key

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
    assert left == {store._k("user:1"), store._k("index:online"), store._k("deadlines")}
    assert redis.zrange(store._k("deadlines"), 0, -1) == [b"user:1\nlive-1"]
