"""Liveness and readiness.

`/healthz` answers while the process runs. `/readyz` asks the database and the channel
layer, and turns 503 while the process drains on SIGTERM, so a load balancer stops
sending new work before the sockets are closed.
"""

import asyncio
import uuid

from channels.layers import get_channel_layer
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from chatproject.logs import get_logger
from chatproject.transport import is_draining

log = get_logger(__name__)


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


CHECK_TIMEOUT = 3.0  # seconds: a load balancer wants an answer, not a hanging probe


def _check_database() -> str:
    """Run in a thread of its own (not the database thread, which may be stuck on the
    same outage), so its connection is closed (or given back to the pool) at the end."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return "ok"
    except Exception as exc:
        return _error(exc)
    finally:
        connection.close()


def _error(exc: BaseException) -> str:
    return f"error: {type(exc).__name__}: {exc}".strip()[:300]


async def _check_channel_layer() -> str:
    """A publish to a group nobody listens to: Redis takes it, or the error says why.
    (Receiving is the fan-out's own check: `fanout` below.)"""
    layer = get_channel_layer()
    if layer is None:
        return "error: no channel layer configured"
    try:
        probe = {"type": "readyz.probe", "nonce": uuid.uuid4().hex}
        await asyncio.wait_for(layer.group_send("readyz", probe), CHECK_TIMEOUT)
        return "ok"
    except TimeoutError:
        return f"error: no answer within {CHECK_TIMEOUT:g} s"
    except Exception as exc:
        return _error(exc)


@never_cache
@require_GET
async def readyz(request: HttpRequest) -> JsonResponse:
    from asgiref.sync import sync_to_async

    if is_draining():  # no checks: the answer must be immediate while the process stops
        return JsonResponse({"status": "draining", "checks": {}}, status=503)
    from chatproject.hub import hub

    try:
        database = await asyncio.wait_for(
            sync_to_async(_check_database, thread_sensitive=False)(), CHECK_TIMEOUT
        )
    except TimeoutError:
        database = f"error: no answer within {CHECK_TIMEOUT:g} s"
    checks = {"database": database, "channel_layer": await _check_channel_layer()}
    if not await hub.catch_up_here():
        checks["fanout"] = "error: catching up after a channel layer outage"
    ok = all(value == "ok" for value in checks.values())
    if not ok:
        log.warning("not_ready", **checks)
    return JsonResponse(
        {"status": "ok" if ok else "unavailable", "checks": checks}, status=200 if ok else 503
    )
