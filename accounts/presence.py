"""Who is online, and who is in which room, across every server process.

A user is online while they hold at least one open socket on any process; a user is
"in" a room while at least one of their sockets is subscribed to it. Both are the same
structure: a set of socket entries per key (`user:7`, `room:3:user:7`), each with a
deadline `PRESENCE_TTL` seconds (a setting, 45 by default) ahead that the socket's process
renews. A process that dies without running `disconnect` stops counting within
`PRESENCE_TTL`, and the sweep
(`sweep`) reports those users as gone, once, whichever process runs it.

Each key also belongs to an index (`online`, `room:3`) so that "who is online" and "who
is in room 3" are answered without scanning. Transitions are atomic: several tabs of one
user produce one `user_online` and one `user_offline`.

With `REDIS_URL` the entries live in Redis and every process sees the same state; without
it they live in this process's memory (one process, by definition).

What others are told of these transitions is rate-limited per user (`ANNOUNCEMENTS`): a
client that opens and closes sockets, or joins and leaves a room, as fast as it can must
not make every watcher receive a frame per socket. `messaging.sockets` holds back an
announcement beyond the rate and, once the window opens, announces the state as it is
then (so the last word is always right).
"""

import threading
import time
from collections.abc import Iterable
from functools import cache

from django.conf import settings

from chatproject.redis_client import connect

ONLINE = "online"
# Announcements of one user's presence (`user_online` / `user_offline`), and of one user's
# presence in one room (`user_joined` / `user_left`): at most (count, per seconds).
ANNOUNCEMENTS = (2, 1.0)


def announcement_key(user_id: int, room_id: int | None = None) -> str:
    """The rate-limit key (`chatproject.throttle`) of a user's announcements, or of
    their announcements in one room."""
    return f"presence:{user_id}" if room_id is None else f"presence:{room_id}:{user_id}"


def user_key(user_id: int) -> tuple[str, str, int]:
    """(entry key, index, member) of a user's presence."""
    return f"user:{user_id}", ONLINE, user_id


def room_key(room_id: int, user_id: int) -> tuple[str, str, int]:
    """(entry key, index, member) of a user's presence in a room."""
    return f"room:{room_id}:user:{user_id}", f"room:{room_id}", user_id


class LocalPresence:
    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: dict[str, dict[str, float]] = {}
        self._indexes: dict[str, set[int]] = {}
        self._lock = threading.Lock()

    def _live(self, key: str, now: float) -> dict[str, float]:
        entries = self._entries.get(key, {})
        for socket_id in [s for s, deadline in entries.items() if deadline <= now]:
            del entries[socket_id]
        return entries

    def enter(self, key: tuple[str, str, int], socket_id: str) -> int:
        """Add a socket under `key`; answers how many live sockets the key now has
        (1: this socket is the first)."""
        name, index, member = key
        now = time.monotonic()
        with self._lock:
            entries = self._live(name, now)
            entries[socket_id] = now + self.ttl
            self._entries[name] = entries
            self._indexes.setdefault(index, set()).add(member)
            return len(entries)

    def exit(self, key: tuple[str, str, int], socket_id: str) -> bool:
        """Remove a socket; True when it was the key's last live socket."""
        name, index, member = key
        with self._lock:
            entries = self._live(name, time.monotonic())
            removed = entries.pop(socket_id, None) is not None
            if entries:
                return False
            self._entries.pop(name, None)
            members = self._indexes.get(index)
            if members is not None:
                members.discard(member)
            return removed

    def renew(self, entries: Iterable[tuple[str, str]]) -> None:
        """Push the deadline of each (entry key, socket id) forward."""
        deadline = time.monotonic() + self.ttl
        with self._lock:
            for name, socket_id in entries:
                sockets = self._entries.get(name)
                if sockets is not None and socket_id in sockets:
                    sockets[socket_id] = deadline

    def members(self, index: str, key_of) -> set[int]:
        """The live members of an index; `key_of(member)` names a member's entry key."""
        now = time.monotonic()
        with self._lock:
            return {m for m in self._indexes.get(index, ()) if self._live(key_of(m), now)}

    def live(self, names: list[str]) -> list[bool]:
        now = time.monotonic()
        with self._lock:
            return [bool(self._live(name, now)) for name in names]

    def sweep(self, index: str, key_of) -> list[int]:
        """Members of `index` with no live socket left: removed and returned (once)."""
        now = time.monotonic()
        with self._lock:
            members = self._indexes.get(index, set())
            gone = [m for m in members if not self._live(key_of(m), now)]
            members.difference_update(gone)
            return gone

    def claim_sweep(self, period: float) -> bool:
        """One process sweeps per period; in one process, that is this one."""
        return True

    def indexes(self, prefix: str) -> list[str]:
        with self._lock:
            return [name for name, members in self._indexes.items() if name.startswith(prefix)]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._indexes.clear()


class RedisPresence:
    """Entries: a sorted set per key (socket id -> deadline). Indexes: a set per index."""

    def __init__(self, url: str, prefix: str, ttl: float) -> None:
        self.ttl = ttl
        self._redis = connect(url)
        self._prefix = f"{prefix}:presence"

    def _k(self, name: str) -> str:
        return f"{self._prefix}:{name}"

    def enter(self, key: tuple[str, str, int], socket_id: str) -> int:
        name, index, member = key
        now = time.time()
        pipe = self._redis.pipeline(transaction=True)
        pipe.zremrangebyscore(self._k(name), "-inf", now)
        pipe.zadd(self._k(name), {socket_id: now + self.ttl})
        pipe.zcard(self._k(name))
        pipe.expire(self._k(name), int(self.ttl) + 5)
        pipe.sadd(self._k(f"index:{index}"), member)
        _, _, count, _, _ = pipe.execute()
        return count

    def exit(self, key: tuple[str, str, int], socket_id: str) -> bool:
        name, index, member = key
        pipe = self._redis.pipeline(transaction=True)
        pipe.zrem(self._k(name), socket_id)
        pipe.zremrangebyscore(self._k(name), "-inf", time.time())
        pipe.zcard(self._k(name))
        removed, _, left = pipe.execute()
        if left:
            return False
        # Only the process whose SREM removed the member reports the transition.
        return bool(self._redis.srem(self._k(f"index:{index}"), member)) and bool(removed)

    def renew(self, entries: Iterable[tuple[str, str]]) -> None:
        deadline = time.time() + self.ttl
        pipe = self._redis.pipeline(transaction=False)
        for name, socket_id in entries:
            pipe.zadd(self._k(name), {socket_id: deadline}, xx=True)
            pipe.expire(self._k(name), int(self.ttl) + 5)
        pipe.execute()

    def live(self, names: list[str]) -> list[bool]:
        if not names:
            return []
        now = time.time()
        pipe = self._redis.pipeline(transaction=False)
        for name in names:
            pipe.zcount(self._k(name), f"({now}", "+inf")
        return [bool(count) for count in pipe.execute()]

    def members(self, index: str, key_of) -> set[int]:
        candidates = [int(m) for m in self._redis.smembers(self._k(f"index:{index}"))]
        alive = self.live([key_of(m) for m in candidates])
        return {m for m, ok in zip(candidates, alive, strict=True) if ok}

    def sweep(self, index: str, key_of) -> list[int]:
        candidates = [int(m) for m in self._redis.smembers(self._k(f"index:{index}"))]
        alive = self.live([key_of(m) for m in candidates])
        gone = []
        for member, ok in zip(candidates, alive, strict=True):
            if not ok and self._redis.srem(self._k(f"index:{index}"), member):
                gone.append(member)
        return gone

    def claim_sweep(self, period: float) -> bool:
        """True for the one process that sweeps in this period: a sweep reads every
        index, so N processes sweeping would cost Redis N times for nothing."""
        return bool(self._redis.set(self._k("sweeper"), "1", nx=True, px=int(period * 1000)))

    def indexes(self, prefix: str) -> list[str]:
        start = len(self._k("index:"))
        return [
            key.decode()[start:]
            for key in self._redis.scan_iter(self._k(f"index:{prefix}*"), count=500)
        ]

    def clear(self) -> None:
        keys = list(self._redis.scan_iter(f"{self._prefix}:*"))
        if keys:
            self._redis.delete(*keys)


@cache
def presence() -> LocalPresence | RedisPresence:
    if settings.REDIS_URL:
        prefix = settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"]
        return RedisPresence(settings.REDIS_URL, prefix, settings.PRESENCE_TTL)
    return LocalPresence(settings.PRESENCE_TTL)


def online_user_ids(user_ids: Iterable[int] | None = None) -> set[int]:
    """The online users among `user_ids` (all online users when None)."""
    store = presence()
    if user_ids is None:
        return store.members(ONLINE, lambda uid: user_key(uid)[0])
    user_ids = list(dict.fromkeys(user_ids))
    alive = store.live([user_key(uid)[0] for uid in user_ids])
    return {uid for uid, ok in zip(user_ids, alive, strict=True) if ok}


def room_user_ids(room_id: int) -> set[int]:
    """Users with at least one socket subscribed to the room, on any process."""
    return presence().members(f"room:{room_id}", lambda uid: room_key(room_id, uid)[0])
