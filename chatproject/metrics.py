"""Prometheus metrics of this process, served at `GET /metrics` (prometheus-client).

Each process counts its own; with several processes, scrape each one (not the load
balancer). In production the endpoint answers only to METRICS_ALLOWED_NETWORKS.
"""

import gc
import ipaddress
import time

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

CONNECTIONS = Gauge("chat_connections", "Open authenticated WebSocket connections.")
FRAMES_IN = Counter("chat_frames_in_total", "Frames received from clients.", ["type"])
FRAMES_OUT = Counter("chat_frames_out_total", "Event frames written to sockets by the fan-out.")
FANOUT_SECONDS = Histogram(
    "chat_fanout_seconds",
    "From an event's publication in this process to its last local socket written.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
FANOUT_DROPPED = Counter(
    "chat_fanout_dropped_total", "Events dropped because the local fan-out backlog was full."
)
LAYER_ERRORS = Counter(
    "chat_layer_errors_total", "Channel layer (Redis) calls that failed in the fan-out."
)
MESSAGES_STORED = Counter("chat_messages_stored_total", "Messages stored (not retries).")
WRITE_BATCH = Histogram(
    "chat_write_batch_posts",
    "Socket posts stored together by one group commit (one transaction).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 100),
)
RECOVERIES = Counter("chat_recoveries_total", "`join` frames with `after` that replayed changes.")
RECOVERED_FRAMES = Counter("chat_recovered_frames_total", "Frames sent by `join … after` replays.")
SLOW_CLIENT_CLOSES = Counter(
    "chat_slow_client_closes_total", "Sockets closed with 4408 because the client did not read."
)
RATE_LIMITED = Counter(
    "chat_rate_limited_total", "Requests and frames refused by a rate limit.", ["limit"]
)

GC_PAUSE_SECONDS = Histogram(
    "chat_gc_full_pause_seconds",
    "Full (generation 2) garbage collections: every task of the process waits meanwhile.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)


GC_FROZEN = Gauge(
    "chat_gc_frozen_objects", "Objects built at startup that the collector no longer walks."
)
GC_FROZEN.set_function(gc.get_freeze_count)


class _FullCollections:
    """Times the collector's full passes (a `gc.callbacks` entry)."""

    def __init__(self) -> None:
        self._began = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._began = time.perf_counter()
        elif self._began:
            GC_PAUSE_SECONDS.observe(time.perf_counter() - self._began)
            self._began = 0.0


def time_full_collections() -> None:
    if not any(isinstance(callback, _FullCollections) for callback in gc.callbacks):
        gc.callbacks.append(_FullCollections())


# Type labels are bounded: anything a client invents counts as `other`.
FRAME_TYPES = frozenset(
    {
        "authenticate",
        "join",
        "leave",
        "message",
        "typing",
        "read",
        "subscribe_status",
        "unsubscribe_status",
        "ping",
    }
)


def count_frame(kind: object) -> None:
    known = isinstance(kind, str) and kind in FRAME_TYPES
    FRAMES_IN.labels(type=kind if known else "other").inc()


def _allowed(address: str) -> bool:
    if not settings.IS_PRODUCTION:
        return True
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in settings.METRICS_ALLOWED_NETWORKS)


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not _allowed(request.META.get("REMOTE_ADDR", "")):
        return HttpResponse("Forbidden\n", status=403, content_type="text/plain")
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)
