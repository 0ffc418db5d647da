"""Fixed-window counters shared by every process (Redis) or kept in this process.

`hit("typing:3:7", limit=1, window=2)` counts one event against the key and answers
whether it is within `limit` per `window` seconds, and if not, how many seconds remain.
`cost` counts one event as several (a room made with members in it spends one per member).
"""

import math
import threading
import time
from functools import cache
from typing import Any

from django.conf import settings

from chatproject import metrics
from chatproject.errors import RateLimited
from chatproject.redis_client import connect


class LocalCounters:
    def __init__(self) -> None:
        self._windows: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, *, limit: int, window: float, cost: int = 1) -> tuple[bool, int]:
        now = time.monotonic()
        with self._lock:
            if len(self._windows) > 100_000:  # forget expired windows now and then
                self._windows = {k: v for k, v in self._windows.items() if v[0] > now}
            ends, count = self._windows.get(key, (0.0, 0))
            if ends <= now:
                ends, count = now + window, 0
            count += cost
            self._windows[key] = (ends, count)
            return count <= limit, max(1, math.ceil(ends - now))

    def reset(self, key: str) -> None:
        with self._lock:
            self._windows.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._windows.clear()


class RedisCounters:
    def __init__(self, url: str, prefix: str) -> None:
        self._redis = connect(url)
        self._prefix = f"{prefix}:throttle"

    def hit(self, key: str, *, limit: int, window: float, cost: int = 1) -> tuple[bool, int]:
        name = f"{self._prefix}:{key}"
        pipe = self._redis.pipeline(transaction=True)
        pipe.incrby(name, cost)
        pipe.pexpire(name, int(window * 1000), nx=True)
        pipe.pttl(name)
        count, _, ttl_ms = pipe.execute()
        return count <= limit, max(1, math.ceil(max(ttl_ms, 0) / 1000))

    def reset(self, key: str) -> None:
        self._redis.delete(f"{self._prefix}:{key}")

    def clear(self) -> None:
        keys = list(self._redis.scan_iter(f"{self._prefix}:*"))
        if keys:
            self._redis.delete(*keys)


@cache
def counters() -> LocalCounters | RedisCounters:
    if settings.REDIS_URL:
        return RedisCounters(
            settings.REDIS_URL, settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"]
        )
    return LocalCounters()


def hit(key: str, *, limit: int, window: float, cost: int = 1) -> tuple[bool, int]:
    return counters().hit(key, limit=limit, window=window, cost=cost)


def reset(key: str) -> None:
    """Start the key's window afresh (e.g. typing stopped: the next start is news)."""
    counters().reset(key)


def spend(key: str, *, rate: tuple[int, float], budget: str, refusal: str, cost: int = 1) -> None:
    """Take `cost` (one by default) from the budget `rate` (count, window in seconds) under
    `key`; beyond it, count the refusal in the metrics under `budget` and raise RateLimited
    with `refusal`, a message that may name `{count}`, `{window}` and `{retry_after}`."""
    count, window = rate
    allowed, retry_after = hit(key, limit=count, window=window, cost=cost)
    if not allowed:
        metrics.RATE_LIMITED.labels(limit=budget).inc()
        raise RateLimited(
            refusal.format(count=count, window=window, retry_after=retry_after),
            retry_after=retry_after,
        )


def spend_writes(user: Any, *, cost: int = 1) -> None:
    """Spend `cost` of the user's WRITE_RATE_LIMIT, one key over REST, sockets and every
    process (edits, deletes, reactions, joins and leaves, rooms made, invitations, role
    changes, removals, renames, pictures); raises RateLimited beyond it. Staff are not
    counted: they are the operators, whose admin actions go through the same services.
    `user` is an `accounts.models.User` (the shared base imports no app), or None."""
    if user is None or user.is_staff:
        return
    spend(
        f"write:{user.pk}",
        rate=settings.WRITE_RATE_LIMIT,
        budget="write",
        refusal="At most {count} changes per {window} s; try again in {retry_after} s.",
        cost=cost,
    )
