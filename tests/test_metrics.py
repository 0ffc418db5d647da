"""GET /metrics: Prometheus text, open in development, closed to outsiders in production."""

import pytest
from prometheus_client import REGISTRY

from chatproject import metrics


def test_metrics_are_prometheus_text_with_the_chat_series(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    body = response.content.decode()
    for name in (
        "chat_connections",
        "chat_frames_in_total",
        "chat_frames_out_total",
        "chat_fanout_seconds_bucket",
        "chat_messages_stored_total",
        "chat_recoveries_total",
        "chat_slow_client_closes_total",
        "chat_rate_limited_total",
        "process_resident_memory_bytes",
    ):
        assert name in body, name


@pytest.mark.parametrize(
    ("address", "status"),
    [("127.0.0.1", 200), ("10.1.2.3", 200), ("192.168.1.9", 200), ("203.0.113.7", 403)],
)
def test_in_production_only_allowed_networks_may_read_them(client, settings, address, status):
    settings.IS_PRODUCTION = True
    response = client.get("/metrics", REMOTE_ADDR=address)
    assert response.status_code == status


def test_invented_frame_types_share_one_label():
    before = metrics.FRAMES_IN.labels(type="other")._value.get()
    metrics.count_frame("made-up")
    metrics.count_frame(["not", "a", "string"])
    metrics.count_frame("ping")
    assert metrics.FRAMES_IN.labels(type="other")._value.get() - before == 2


def test_a_stored_message_and_a_refused_one_are_counted(alice_api, general, settings):
    stored = metrics.MESSAGES_STORED._value.get()
    limited = metrics.RATE_LIMITED.labels(limit="chat")._value.get()
    assert alice_api.post(f"/api/rooms/{general.pk}/join/").status_code in (200, 201)
    answer = alice_api.post(f"/api/rooms/{general.pk}/messages/", {"content": "hi"}, "json")
    assert answer.status_code == 201
    settings.CHAT_RATE_LIMIT = (1, 60)
    alice_api.post(f"/api/rooms/{general.pk}/messages/", {"content": "1"}, "json")
    refused = alice_api.post(f"/api/rooms/{general.pk}/messages/", {"content": "2"}, "json")
    assert refused.status_code == 429
    assert metrics.MESSAGES_STORED._value.get() - stored >= 1
    assert metrics.RATE_LIMITED.labels(limit="chat")._value.get() - limited >= 1


def test_full_collections_are_timed_and_the_others_are_not():
    import gc

    metrics.time_full_collections()
    metrics.time_full_collections()  # once is enough: no second callback
    assert sum(isinstance(cb, metrics._FullCollections) for cb in gc.callbacks) == 1
    before = full_collections()

    gc.collect(0)
    gc.collect(1)
    assert full_collections() == before
    gc.collect()
    assert full_collections() == before + 1


def full_collections() -> float:
    return REGISTRY.get_sample_value("chat_gc_full_pause_seconds_count") or 0.0
