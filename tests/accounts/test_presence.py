"""The presence store on its own: the sweep is claimed by one process per period."""

import time

import pytest
from django.conf import settings

from accounts.presence import LocalPresence, RedisPresence


def test_in_one_process_the_sweep_is_always_ours():
    store = LocalPresence(ttl=45)
    assert store.claim_sweep(15) and store.claim_sweep(15)


def test_with_redis_one_process_sweeps_per_period():
    if not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL: several processes share a presence store only in Redis")
    prefix = f"{settings.CHANNEL_LAYERS['default']['CONFIG']['prefix']}-sweep-{time.time_ns()}"
    one, other = (RedisPresence(settings.REDIS_URL, prefix, ttl=3) for _ in range(2))
    try:
        assert one.claim_sweep(0.3) is True
        assert other.claim_sweep(0.3) is False  # another process swept this period
        assert one.claim_sweep(0.3) is False
        time.sleep(0.4)
        assert other.claim_sweep(0.3) is True  # the next period is anyone's
    finally:
        one.clear()
