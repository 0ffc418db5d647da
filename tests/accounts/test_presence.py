"""The presence store on its own: the sweep is claimed by one process per period."""

import time

import pytest
from django.conf import settings

from accounts.presence import LocalPresence, RedisPresence

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
