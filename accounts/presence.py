"""Who is online, and who is in which room, across every server process.

A user is online while they hold at least one open socket on any process; a user is
"in" a room while at least one of their sockets is subscribed to it. Both are the same
structure: a set of socket entries per key (`user:7`, `room:3:user:7`), each with a
deadline `PRESENCE_TTL` seconds (a setting, 45 by default) ahead that the socket's process
renews. A process that dies without running `disconnect` stops counting within
`PRESENCE_TTL`, and the sweep (`sweep`) reports those users as gone, once, whichever
process runs it. Every socket entry's deadline is also kept in one sorted set of
deadlines, so the sweep reads only the entries that expired (`ZRANGEBYSCORE -inf now`):
its cost follows the number of dead sockets, not the number online.

Each key also belongs to an index (`online`, `room:3`) so that "who is online" and "who
is in room 3" are answered without scanning, kept in user id order: how many are in a room
is one O(1) call (`size`), and the first N of them, or the next N after an id, are read
without reading the rest (`page`), which a room of thousands needs (`room_users`, the
members endpoint). Transitions are atomic: several tabs of one user produce one
`user_online` and one `user_offline`.

With `REDIS_URL` the entries live in Redis and every process sees the same state; without
it they live in this process's memory (one process, by definition).

What others are told of these transitions is rate-limited per user (`ANNOUNCEMENTS`): a
client that opens and closes sockets, or joins and leaves a room, as fast as it can must
not make every watcher receive a frame per socket. `messaging.sockets` holds back an
announcement beyond the rate and, once the window opens, announces the state as it is
then (so the last word is always right).
"""

import bisect
import threading
import time
from collections.abc import Callable, Iterable
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


def key_named(name: str) -> tuple[str, str, int]:
    """The (entry key, index, member) whose entry key is `name`: the inverse of
    `user_key` and `room_key`."""
    parts = name.split(":")
    if len(parts) == 2 and parts[0] == "user":
        return user_key(int(parts[1]))
    if len(parts) == 4 and parts[0] == "room" and parts[2] == "user":
        return room_key(int(parts[1]), int(parts[3]))
    raise ValueError(f"not a presence entry key: {name!r}")


KeyOf = Callable[[int], str]  # an index's member -> its entry key


class LocalPresence:
    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: dict[str, dict[str, float]] = {}
        self._indexes: dict[str, set[int]] = {}
        self._ordered: dict[str, list[int]] = {}  # each index's members, ascending
        self._keys: dict[str, tuple[str, int]] = {}  # entry key -> (index, member)
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
            self._keys[name] = (index, member)
            self._index_add(index, member)
            return len(entries)

    def enter_many(self, keys: list[tuple[str, str, int]], socket_id: str) -> list[int]:
        """`enter` of each key (a socket joining many rooms at once)."""
        return [self.enter(key, socket_id) for key in keys]

    def _index_add(self, index: str, member: int) -> None:
        members = self._indexes.setdefault(index, set())
        if member not in members:
            members.add(member)
            bisect.insort(self._ordered.setdefault(index, []), member)

    def _index_remove(self, index: str, member: int) -> bool:
        members = self._indexes.get(index)
        if members is None or member not in members:
            return False
        members.discard(member)
        ordered = self._ordered[index]
        del ordered[bisect.bisect_left(ordered, member)]
        return True

    def exit(self, key: tuple[str, str, int], socket_id: str) -> bool:
        """Remove a socket; True when it was the key's last live socket."""
        name, index, member = key
        with self._lock:
            entries = self._live(name, time.monotonic())
            removed = entries.pop(socket_id, None) is not None
            if entries:
                return False
            self._entries.pop(name, None)
            self._keys.pop(name, None)
            self._index_remove(index, member)
            return removed

    def renew(self, entries: Iterable[tuple[str, str]]) -> None:
        """Push the deadline of each (entry key, socket id) forward."""
        deadline = time.monotonic() + self.ttl
        with self._lock:
            for name, socket_id in entries:
                sockets = self._entries.get(name)
                if sockets is not None and socket_id in sockets:
                    sockets[socket_id] = deadline

    def members(self, index: str, key_of: KeyOf) -> set[int]:
        """The live members of an index; `key_of(member)` names a member's entry key."""
        now = time.monotonic()
        with self._lock:
            return {m for m in self._indexes.get(index, ()) if self._live(key_of(m), now)}

    def size(self, index: str) -> int:
        """How many members the index holds: O(1). Members whose sockets expired count
        until the sweep removes them (within PRESENCE_TTL)."""
        return len(self._indexes.get(index, ()))

    def sizes(self, indexes: list[str]) -> list[int]:
        return [self.size(index) for index in indexes]

    def page(self, index: str, key_of: KeyOf, *, after: int = 0, limit: int) -> list[int]:
        """Up to `limit` live members greater than `after`, ascending."""
        now = time.monotonic()
        with self._lock:
            ordered = self._ordered.get(index, [])
            found: list[int] = []
            for member in ordered[bisect.bisect_right(ordered, after) :]:
                if len(found) == limit:
                    break
                if self._live(key_of(member), now):
                    found.append(member)
            return found

    def live(self, names: list[str]) -> list[bool]:
        now = time.monotonic()
        with self._lock:
            return [bool(self._live(name, now)) for name in names]

    def sweep(self) -> list[tuple[str, int]]:
        """(index, member) of every key whose last socket expired: removed and returned
        (once). In one process no other process can die, so this walk is rare work."""
        now = time.monotonic()
        gone = []
        with self._lock:
            for name, (index, member) in list(self._keys.items()):
                if self._live(name, now):
                    continue
                del self._keys[name]
                self._entries.pop(name, None)
                if self._index_remove(index, member):
                    gone.append((index, member))
            return gone

    def claim_sweep(self, period: float) -> bool:
        """One process sweeps per period; in one process, that is this one."""
        return True

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._indexes.clear()
            self._ordered.clear()
            self._keys.clear()


# Sweep a batch of expired (entry, socket) pairs, atomically. KEYS: the deadlines, then per
# pair its entry key and its index; ARGV: now, then per pair its token and its member. A
# pair renewed since it was read (score now ahead) is left alone; a key is reported when
# its last socket went and this ZREM removed the member: once, whoever else sweeps or exits.
SWEEP = """
local now = tonumber(ARGV[1])
local gone = {}
for i = 1, (#KEYS - 1) / 2 do
  local entry, index = KEYS[2 * i], KEYS[2 * i + 1]
  local token, member = ARGV[2 * i], ARGV[2 * i + 1]
  local score = redis.call('ZSCORE', KEYS[1], token)
  if score and tonumber(score) <= now then
    redis.call('ZREM', KEYS[1], token)
    redis.call('ZREMRANGEBYSCORE', entry, '-inf', now)
    if redis.call('ZCARD', entry) == 0 and redis.call('ZREM', index, member) == 1 then
      gone[#gone + 1] = i
    end
  end
end
return gone
"""


class RedisPresence:
    """Entries: a sorted set per key (socket id -> deadline). Indexes: a sorted set per
    index, each member scored by itself (a user id), so that ZCARD counts a room and
    ZRANGEBYSCORE pages it in id order. Deadlines: one sorted set of every socket entry
    (`_token`: key and socket id -> deadline), for the sweep. Entry keys carry no EXPIRE
    (a renewal is two commands per entry, as before the deadlines): the sweep removes a
    dead socket from its key, and Redis deletes a sorted set left empty."""

    PAGE_SLACK = 16  # candidates read beyond a page, for members expired but not swept

    SWEEP_BATCH = 1000  # expired entries per sweep script

    def __init__(self, url: str, prefix: str, ttl: float) -> None:
        self.ttl = ttl
        self._redis = connect(url)
        self._prefix = f"{prefix}:presence"
        self._deadlines = self._k("deadlines")
        self._sweep = self._redis.register_script(SWEEP)

    def _k(self, name: str) -> str:
        return f"{self._prefix}:{name}"

    def _index(self, index: str) -> str:
        # `zindex`, not the `index` of the earlier plain sets: during a rolling deploy the
        # two versions then never meet a key of the other's type (WRONGTYPE).
        return self._k(f"zindex:{index}")

    def enter(self, key: tuple[str, str, int], socket_id: str) -> int:
        name, index, member = key
        now = time.time()
        pipe = self._redis.pipeline(transaction=True)
        pipe.zremrangebyscore(self._k(name), "-inf", now)
        pipe.zadd(self._k(name), {socket_id: now + self.ttl})
        pipe.zcard(self._k(name))
        pipe.zadd(self._index(index), {str(member): member})
        pipe.zadd(self._deadlines, {_token(name, socket_id): now + self.ttl})
        _, _, count, _, _ = pipe.execute()
        return count

    def enter_many(self, keys: list[tuple[str, str, int]], socket_id: str) -> list[int]:
        """`enter` of each key in one round trip (a socket joining many rooms at once)."""
        if not keys:
            return []
        now = time.time()
        pipe = self._redis.pipeline(transaction=True)
        for name, index, member in keys:
            pipe.zremrangebyscore(self._k(name), "-inf", now)
            pipe.zadd(self._k(name), {socket_id: now + self.ttl})
            pipe.zcard(self._k(name))
            pipe.zadd(self._index(index), {str(member): member})
            pipe.zadd(self._deadlines, {_token(name, socket_id): now + self.ttl})
        return [int(count) for count in pipe.execute()[2::5]]

    def exit(self, key: tuple[str, str, int], socket_id: str) -> bool:
        name, index, member = key
        pipe = self._redis.pipeline(transaction=True)
        pipe.zrem(self._k(name), socket_id)
        pipe.zremrangebyscore(self._k(name), "-inf", time.time())
        pipe.zcard(self._k(name))
        pipe.zrem(self._deadlines, _token(name, socket_id))
        removed, _, left, _ = pipe.execute()
        if left:
            return False
        # Only the process whose ZREM removed the member reports the transition.
        return bool(self._redis.zrem(self._index(index), member)) and bool(removed)

    def renew(self, entries: Iterable[tuple[str, str]]) -> None:
        deadline = time.time() + self.ttl
        pipe = self._redis.pipeline(transaction=False)
        for name, socket_id in entries:
            # The deadline first: a sweep between the two commands then sees it renewed.
            # XX: an entry already swept (or exited) is not brought back.
            pipe.zadd(self._deadlines, {_token(name, socket_id): deadline}, xx=True)
            pipe.zadd(self._k(name), {socket_id: deadline}, xx=True)
        pipe.execute()

    def live(self, names: list[str]) -> list[bool]:
        if not names:
            return []
        now = time.time()
        pipe = self._redis.pipeline(transaction=False)
        for name in names:
            pipe.zcount(self._k(name), f"({now}", "+inf")
        return [bool(count) for count in pipe.execute()]

    def members(self, index: str, key_of: KeyOf) -> set[int]:
        raw: list[bytes] = self._redis.zrange(self._index(index), 0, -1)  # type: ignore[assignment]
        candidates = [int(m) for m in raw]
        alive = self.live([key_of(m) for m in candidates])
        return {m for m, ok in zip(candidates, alive, strict=True) if ok}

    def size(self, index: str) -> int:
        """How many members the index holds: ZCARD, O(1). Members whose sockets expired
        count until the sweep removes them (within PRESENCE_TTL)."""
        return int(self._redis.zcard(self._index(index)))

    def sizes(self, indexes: list[str]) -> list[int]:
        if not indexes:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for index in indexes:
            pipe.zcard(self._index(index))
        return [int(n) for n in pipe.execute()]

    def page(self, index: str, key_of: KeyOf, *, after: int = 0, limit: int) -> list[int]:
        """Up to `limit` live members greater than `after`, ascending: reads about
        `limit` candidates, not the whole index."""
        found: list[int] = []
        while len(found) < limit:
            want = limit - len(found) + self.PAGE_SLACK
            raw: list[bytes] = self._redis.zrangebyscore(  # type: ignore[assignment]
                self._index(index), f"({after}", "+inf", start=0, num=want
            )
            candidates = [int(m) for m in raw]
            if not candidates:
                break
            alive = self.live([key_of(m) for m in candidates])
            found.extend(m for m, ok in zip(candidates, alive, strict=True) if ok)
            if len(candidates) < want:
                break
            after = candidates[-1]
        return found[:limit]

    def sweep(self) -> list[tuple[str, int]]:
        """(index, member) of every key whose last socket expired: removed and returned
        (once). Reads only the expired deadlines, a batch at a time: the cost follows the
        sockets that died, not the sockets online."""
        now = time.time()
        gone: list[tuple[str, int]] = []
        while True:
            tokens: list[bytes] = self._redis.zrangebyscore(  # type: ignore[assignment]
                self._deadlines, "-inf", now, start=0, num=self.SWEEP_BATCH
            )
            if not tokens:
                return gone
            keys: list[str] = [self._deadlines]
            args: list[float | bytes | int] = [now]
            pairs: list[tuple[str, int]] = []
            for token in tokens:
                name = token.decode().split("\n", 1)[0]
                try:
                    _, index, member = key_named(name)
                except ValueError:  # not ours: drop it, or it would be read every sweep
                    self._redis.zrem(self._deadlines, token)
                    continue
                keys += [self._k(name), self._index(index)]
                args += [token, member]
                pairs.append((index, member))
            if pairs:
                gone.extend(pairs[i - 1] for i in self._sweep(keys=keys, args=args))
            if len(tokens) < self.SWEEP_BATCH:
                return gone

    def claim_sweep(self, period: float) -> bool:
        """True for the one process that sweeps in this period: N processes sweeping
        would cost Redis N times for nothing."""
        return bool(self._redis.set(self._k("sweeper"), "1", nx=True, px=int(period * 1000)))

    def clear(self) -> None:
        keys = list(self._redis.scan_iter(f"{self._prefix}:*"))
        if keys:
            self._redis.delete(*keys)


def _token(name: str, socket_id: str) -> str:
    """A socket entry's member in the sorted set of deadlines."""
    return f"{name}\n{socket_id}"


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


def room_index(room_id: int) -> str:
    """The index of the users present in a room."""
    return f"room:{room_id}"


def room_user_ids(room_id: int) -> set[int]:
    """Users with at least one socket subscribed to the room, on any process."""
    return presence().members(room_index(room_id), lambda uid: room_key(room_id, uid)[0])


def room_size(room_id: int) -> int:
    """How many users are present in the room: one O(1) call (users of a process that
    died count until the sweep, within PRESENCE_TTL)."""
    return presence().size(room_index(room_id))


def room_sizes(room_ids: list[int]) -> dict[int, int]:
    """`room_size` of each room, in one round trip."""
    sizes = presence().sizes([room_index(r) for r in room_ids])
    return dict(zip(room_ids, sizes, strict=True))


def room_user_page(room_id: int, *, after: int = 0, limit: int) -> list[int]:
    """Up to `limit` users present in the room with an id above `after`, ascending."""
    return presence().page(
        room_index(room_id), lambda uid: room_key(room_id, uid)[0], after=after, limit=limit
    )


def room_users_sample(room_id: int, limit: int) -> tuple[list[int], int]:
    """(the users present in the room with the `limit` lowest ids, how many are present).
    A small room is read whole and counted exactly; a big one is counted in O(1) and only
    `limit` of it are read."""
    size = room_size(room_id)
    if size <= limit:
        ids = sorted(room_user_ids(room_id))
        return ids, len(ids)
    return room_user_page(room_id, limit=limit), size
