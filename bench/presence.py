"""Presence at scale: the cost of one dead-process sweep against the number online.

    python bench/presence.py                     # 1,000 / 10,000 / 100,000 entries
    python bench/presence.py --sizes 1000 10000 --repeat 9 --dead 100

Fills Redis (REDIS_URL, default redis://127.0.0.1:6379/0) under a private prefix
`bench-presence-<random>`, removed at the end, with N simulated presence entries as
`accounts.presence.RedisPresence.enter` writes them: N/2 online users and, for each, one
room entry (100 members per room), spread over 8 live processes whose deadlines are a
minute ahead. Then, per repetition, a dead process's `--dead` users (each online and in a
room) are written with deadlines already past, and one sweep is timed; its result is
checked (exactly the dead process's users and room entries). Two sweeps are compared on
the same data:

- `old`: the sweep as it was before issue #15 (copied below as `old_sweep`): SMEMBERS of
  every index found by SCAN, a pipelined ZCOUNT per member, SREM of the dead;
- `new`: `RedisPresence.sweep`: ZRANGEBYSCORE of the one sorted set of deadlines, then one
  Lua script per batch of expired entries.

Prints the median and the spread (min-max) of each, in milliseconds.
"""

import argparse
import os
import secrets
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from accounts.presence import (  # after the path
    ONLINE,
    RedisPresence,
    _token,
    room_key,
    user_key,
)

LIVE_PROCESSES = 8
ROOM_SIZE = 100
DEAD_BASE = 10_000_000  # user ids of the dead process: apart from the live ones


def old_sweep(store: RedisPresence) -> list[tuple[str, int]]:
    """The sweep before issue #15: `messaging.sockets.sweep` over the old
    `RedisPresence.sweep(index, key_of)` and `RedisPresence.indexes("room:")`."""
    redis = store._redis

    def live(names: list[str]) -> list[bool]:
        if not names:
            return []
        now = time.time()
        pipe = redis.pipeline(transaction=False)
        for name in names:
            pipe.zcount(store._k(name), f"({now}", "+inf")
        return [bool(count) for count in pipe.execute()]

    def sweep(index: str, key_of) -> list[int]:
        candidates = [int(m) for m in redis.smembers(store._k(f"index:{index}"))]
        alive = live([key_of(m) for m in candidates])
        gone = []
        for member, ok in zip(candidates, alive, strict=True):
            if not ok and redis.srem(store._k(f"index:{index}"), member):
                gone.append(member)
        return gone

    def indexes(prefix: str) -> list[str]:
        start = len(store._k("index:"))
        return [
            key.decode()[start:] for key in redis.scan_iter(store._k(f"index:{prefix}*"), count=500)
        ]

    swept = [(ONLINE, uid) for uid in sweep(ONLINE, lambda uid: user_key(uid)[0])]
    for index in indexes("room:"):
        room_id = int(index.split(":")[1])
        swept.extend(
            (index, uid) for uid in sweep(index, lambda uid, r=room_id: room_key(r, uid)[0])
        )
    return swept


def write(store: RedisPresence, entries: list[tuple[tuple[str, str, int], str, float]]) -> None:
    """Entries as `enter` writes them (entry, index, deadline), pipelined."""
    redis = store._redis
    for start in range(0, len(entries), 5000):
        pipe = redis.pipeline(transaction=False)
        for (name, index, member), socket_id, deadline in entries[start : start + 5000]:
            pipe.zadd(store._k(name), {socket_id: deadline})
            pipe.sadd(store._k(f"index:{index}"), member)
            pipe.zadd(store._deadlines, {_token(name, socket_id): deadline})
        pipe.execute()


def fill(store: RedisPresence, size: int) -> None:
    deadline = time.time() + 600
    entries = []
    for uid in range(size // 2):
        socket_id = f"p{uid % LIVE_PROCESSES}-{uid}"
        entries.append((user_key(uid), socket_id, deadline))
        entries.append((room_key(uid // ROOM_SIZE, uid), socket_id, deadline))
    write(store, entries)


def kill(store: RedisPresence, dead: int) -> set[tuple[str, int]]:
    """A dead process's users: written with deadlines past; what a sweep must report."""
    past = time.time() - 1
    entries, expected = [], set()
    for n in range(dead):
        uid = DEAD_BASE + n
        socket_id = f"dead-{uid}"
        for key in (user_key(uid), room_key(n % 10, uid)):
            entries.append((key, socket_id, past))
            expected.add((key[1], uid))
    write(store, entries)
    return expected


def timed(store: RedisPresence, sweep, dead: int, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        expected = kill(store, dead)
        start = time.perf_counter()
        swept = sweep(store)
        times.append((time.perf_counter() - start) * 1000)
        assert set(swept) == expected and len(swept) == len(expected), "wrong sweep"
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--dead", type=int, default=50, help="users of the dead process")
    options = parser.parse_args()
    url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"

    print(f"dead process: {options.dead} users (online + one room each); median (min-max) ms")
    print("| entries online | old sweep | new sweep |")
    print("|---:|---:|---:|")
    for size in options.sizes:
        store = RedisPresence(url, f"bench-presence-{secrets.token_hex(4)}", ttl=45)
        try:
            fill(store, size)
            row = [f"{size:,}"]
            for sweep in (old_sweep, RedisPresence.sweep):
                times = timed(store, sweep, options.dead, options.repeat)
                row.append(f"{statistics.median(times):.2f} ({min(times):.2f}-{max(times):.2f})")
            print(f"| {' | '.join(row)} |", flush=True)
        finally:
            store.clear()


if __name__ == "__main__":
    main()
