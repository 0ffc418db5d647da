"""One synchronous Redis client per URL for this process (presence, throttles, stats), so
they share a connection pool and the same timeouts."""

from functools import cache

import redis


@cache
def connect(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
