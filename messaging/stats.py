"""Figures for `GET /api/stats/`: this process's, and every live process's via the store.

Each process publishes its own line (connections, start time) when a socket opens or
closes and on every presence heartbeat; a line older than the presence TTL belongs to a
dead process and is ignored.
"""

import json
import os
import socket
import time
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from accounts.presence import online_user_ids
from chatproject.redis_client import connect
from messaging.models import Message
from rooms.models import Room

STARTED = time.time()
PROCESS_ID = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
_local_line: dict[str, Any] = {}


def _redis():
    return connect(settings.REDIS_URL)


def _key() -> str:
    layer: dict[str, Any] = settings.CHANNEL_LAYERS["default"]
    return f"{layer['CONFIG']['prefix']}:stats:processes"


def publish(*, connections: int) -> None:
    """Record this process's line (called from the socket registry)."""
    line = {
        "process": PROCESS_ID,
        "connections": connections,
        "started": STARTED,
        "seen": time.time(),
    }
    _local_line.update(line)
    if settings.REDIS_URL:
        # Every live process refreshes the expiry with its heartbeat, so the hash outlives
        # its processes by a few TTLs only (a test run or a retired deployment leaves
        # nothing behind in a shared Redis).
        with _redis().pipeline(transaction=False) as pipe:
            pipe.hset(_key(), PROCESS_ID, json.dumps(line))
            pipe.expire(_key(), int(settings.PRESENCE_TTL * 4))
            pipe.execute()


def _process_lines() -> list[dict[str, Any]]:
    now = time.time()
    own = _local_line or {"process": PROCESS_ID, "connections": 0, "started": STARTED, "seen": now}
    if not settings.REDIS_URL:
        return [own]
    lines, stale = [], []
    for field, raw in _redis().hgetall(_key()).items():
        line = json.loads(raw)
        if now - line["seen"] < settings.PRESENCE_TTL:
            lines.append(line)
        else:
            stale.append(field)
    if stale:
        _redis().hdel(_key(), *stale)
    if not any(line["process"] == PROCESS_ID for line in lines):
        lines.append(own)
    return lines


def collect(*, per_process: bool = False) -> dict[str, Any]:
    lines = _process_lines()
    figures: dict[str, Any] = {
        "connections": sum(line["connections"] for line in lines),
        "online_users": len(online_user_ids()),
        "rooms": Room.objects.count(),
        "messages": Message.objects.exclude(type=Message.Type.SYSTEM).count(),
        "messages_last_minute": Message.objects.filter(
            created_at__gte=timezone.now() - timedelta(minutes=1)
        )
        .exclude(type=Message.Type.SYSTEM)
        .count(),
        "uptime_seconds": int(time.time() - min(line["started"] for line in lines)),
    }
    if per_process:
        figures["processes"] = [
            {
                "process": line["process"],
                "connections": line["connections"],
                "uptime_seconds": int(time.time() - line["started"]),
            }
            for line in lines
        ]
    return figures
