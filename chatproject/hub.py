"""This process's fan-out: one subscription per group, one encoding per event.

The usual Channels design gives every socket a channel of its own in the channel layer,
so an event for a room of N sockets becomes N layer messages, N consumer dispatches (each
with a hop to the database thread since Channels 4.2) and N JSON encodings. Here:

- sockets subscribe to groups (`room.7`, `user.3`, `status.3`) in this registry, in memory;
- an event is encoded once (JSON, and the WebSocket frame's bytes) and written to each
  local socket of its group in one loop, by one task, in the order it was published;
  under `manage.py serve` the frame goes straight to the connection's transport;
- with Redis, the process has one layer channel, in the layer groups its sockets need; an
  event published here also goes to the layer (by a second task, so local sockets do not
  wait for Redis) and events from other processes arrive on that channel. A process skips
  its own events coming back. With the in-memory layer there is one process: no layer.

Publishing never blocks the caller: `publish` runs in the event loop and `publish_soon`
from any thread (a service's on-commit callback in the database thread), so a write does
not wait for its delivery. Delivery is best effort (SPEC section 5): clients that see a
gap in `pos` recover with `join … after`.

If the layer fails or its Redis restarts, sockets stay open and keep receiving this
process's events, and /readyz says 503; when Redis answers again, the hub subscribes its
groups anew and closes its sockets with 1012 (restart: reconnect and recover with
`after`), since what other processes published meanwhile is lost.
"""

import asyncio
import contextlib
import contextvars
import json
import time
import uuid
from collections import defaultdict
from collections.abc import Mapping
from typing import Any, Protocol

from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.conf import settings

from chatproject import metrics
from chatproject.logs import get_logger
from chatproject.redis_client import connect
from chatproject.transport.state import CLOSE_RESTARTING

log = get_logger(__name__)

# An event of the catalogue (`chatproject.events`), as the fan-out carries it.
Event = Mapping[str, Any]

RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0)  # seconds between attempts to reach the layer
# Events waiting for local delivery. Only a process that has had more work than CPU for a
# long while gets here; past it, events are dropped (counted, logged), not memory grown.
MAX_BACKLOG = 100_000
WATCH_EVERY = 1.0  # seconds between checks that the layer's Redis is up and the same
REFRESH_EVERY = 30.0  # seconds between refreshes of the layer's group memberships


def _cancelled() -> bool:
    """Whether this task was asked to stop. Loops test it, since a library call may
    swallow the CancelledError meant for the task (channels-redis does, in places)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _redis_run_id() -> str:
    return connect(settings.REDIS_URL).info("server")["run_id"]


class Frame:
    """One event encoded once for all its sockets: the JSON text, and (when first asked
    for) the bytes of the WebSocket text frame a server sends (RFC 6455 section 5.2:
    FIN, opcode 1, unmasked)."""

    __slots__ = ("_wire", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._wire: bytes | None = None

    @property
    def wire(self) -> bytes:
        if self._wire is None:
            payload = self.text.encode()
            size = len(payload)
            if size < 126:
                header = bytes((0x81, size))
            elif size < 1 << 16:
                header = bytes((0x81, 126)) + size.to_bytes(2, "big")
            else:
                header = bytes((0x81, 127)) + size.to_bytes(8, "big")
            self._wire = header + payload
        return self._wire


class Socket(Protocol):
    async def deliver(self, event: Event, frame: Frame) -> None: ...

    async def close(self, code: int) -> None: ...


def encode(frame: Event) -> str:
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


def _abandon(tasks: list[asyncio.Task[None]]) -> None:
    """End the tasks of an event loop that is closed (a test's, when the next test's loop
    binds the hub), here and quietly. Left alone, each would be destroyed at some later
    garbage collection, anywhere, logging "Task was destroyed but it is pending" from a
    finalizer; on Python 3.11.7 one such finalizer running inside `ast.parse` made it
    fail ("AST constructor recursion depth mismatch") in an unrelated test."""
    for task in tasks:
        if task.done():
            continue
        task._log_destroy_pending = False  # type: ignore[attr-defined]  # asyncio's own flag
        with contextlib.suppress(RuntimeError):  # its cleanup needs the closed loop
            task.get_coro().close()


class Hub:
    layer_lost = False  # the layer failed and has not been caught up with yet

    def __init__(self) -> None:
        self.origin = uuid.uuid4().hex
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # ------------------------------------------------------------ subscriptions

    async def subscribe(self, group: str, socket: Socket) -> None:
        """Deliver the group's events to `socket`. When this returns, every event
        published afterwards on any process reaches it (the layer subscription is done)."""
        self._bind()
        self._groups[group].add(socket)
        try:
            await self._sync_layer_membership(group)
        except BaseException:
            await self.unsubscribe(group, socket)
            raise

    async def unsubscribe(self, group: str, socket: Socket) -> None:
        sockets = self._groups.get(group)
        if sockets is None or socket not in sockets:
            return
        sockets.discard(socket)
        if not sockets:
            del self._groups[group]
        await self._sync_layer_membership(group)

    async def stop(self) -> None:
        """Stop this loop's fan-out tasks (a test's end; a server process just exits)."""
        loop = asyncio.get_running_loop()
        tasks = [task for task in self._tasks if task.get_loop() is loop]
        _abandon([task for task in self._tasks if task.get_loop().is_closed()])
        self._tasks, self._loop = [], None
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2)

    def subscribers(self, group: str) -> int:
        return len(self._groups.get(group, ())) if self._loop else 0

    async def _sync_layer_membership(self, group: str) -> None:
        """Make the layer's membership of this process's channel match the local one.
        Serialised per group, so an add and a discard never overtake each other."""
        if self._layer is None:
            return
        lock = self._locks[group]
        async with lock:
            wanted = group in self._groups
            if wanted and group not in self._layer_groups:
                if self._run_id is None:
                    # Learn which Redis holds the memberships before the first one: a
                    # restart right after it is then noticed, even before the watcher's
                    # first look (a restarted Redis has forgotten every membership).
                    await self.catch_up()
                await self._layer.group_add(group, await self._channel())
                self._layer_groups.add(group)
            elif not wanted and group in self._layer_groups:
                self._layer_groups.discard(group)
                try:
                    await self._layer.group_discard(group, await self._channel())
                except Exception:
                    # The membership lapses in the layer (group_expiry); events that
                    # still arrive for the group find no local socket.
                    log.warning("hub_group_discard_failed", group=group)
        if not lock.locked() and group not in self._groups and group not in self._layer_groups:
            self._locks.pop(group, None)

    # --------------------------------------------------------------- publishing

    def publish(self, group: str, event: Event) -> None:
        """Deliver `event` to the group's sockets on every process (from the event loop)."""
        self._bind()
        self._enqueue(group, event)
        if self._layer is not None:
            self._outbox.put_nowait((group, event))
            self._queued += 1

    async def forwarded(self, timeout: float = 2.0) -> None:
        """Until every event published so far in this process has been handed to the
        layer (or failed to be), for at most `timeout` seconds: an `ack` then usually
        means the other processes were told too, even if this process dies right after.
        A slow or failing Redis does not hold acks back longer; an event it loses is
        recovered by clients with `after` (live delivery is best effort, SPEC section 5)."""
        if self._loop is not asyncio.get_running_loop() or self._layer is None:
            return
        target = self._queued
        if self._sent >= target:
            return
        async with self._progress:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._progress.wait_for(lambda: self._sent >= target), timeout
                )

    def _enqueue(self, group: str, event: Event) -> None:
        if self._local.qsize() >= MAX_BACKLOG:
            metrics.FANOUT_DROPPED.inc()
            log.error("hub_backlog_full", group=group, event_type=event["type"])
            return
        self._local.put_nowait((group, event, time.perf_counter()))

    def publish_soon(self, group: str, event: Event) -> bool:
        """`publish` from another thread. False when this process runs no event loop (a
        management command, a synchronous test): then only the layer can carry it."""
        loop = self._loop
        if loop is None or loop.is_closed() or not loop.is_running():
            return False
        loop.call_soon_threadsafe(self.publish, group, event)
        return True

    # ------------------------------------------------------------------- tasks

    def _bind(self) -> None:
        """Attach to the running event loop (again, when tests start a new one)."""
        loop = asyncio.get_running_loop()
        if loop is self._loop:
            return
        if self._loop is not None and not self._loop.is_closed():
            for task in self._tasks:  # the old loop's tasks end with it, or now
                self._loop.call_soon_threadsafe(task.cancel)
        elif self._loop is not None:
            _abandon(self._tasks)
        self._loop = loop
        self._groups: defaultdict[str, set[Socket]] = defaultdict(set)
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._local: asyncio.Queue[tuple[str, Event, float]] = asyncio.Queue()
        self._outbox: asyncio.Queue[tuple[str, Event]] = asyncio.Queue()
        self._layer_groups: set[str] = set()
        self._channel_task: asyncio.Future[str] | None = None
        self.layer_lost = False
        self._run_id: str | None = None
        self._queued = self._sent = 0  # events put in the outbox, and handed to the layer
        self._progress = asyncio.Condition()
        self._refreshed = time.monotonic()
        self._catching_up = asyncio.Lock()
        layer = get_channel_layer()
        self._layer = None if isinstance(layer, InMemoryChannelLayer) else layer
        tasks = [self._deliver_local]
        if self._layer is not None:
            tasks += [self._forward, self._receive, self._watch]
        # A context of their own, not the log context of the socket that started them.
        self._tasks = [
            loop.create_task(task(), name=f"hub{task.__name__}", context=contextvars.Context())
            for task in tasks
        ]

    def _layer_in_use(self) -> Any:
        """The channel layer; only the tasks and calls that run with one ask for it."""
        assert self._layer is not None
        return self._layer

    async def _channel(self) -> str:
        """This process's one layer channel, made once even when asked for concurrently
        (a layer's `new_channel` may await, e.g. a SUBSCRIBE)."""
        if self._channel_task is None:
            self._channel_task = asyncio.ensure_future(self._layer_in_use().new_channel())
        try:
            return await asyncio.shield(self._channel_task)
        except Exception:
            self._channel_task = None  # Redis failed: the next caller tries again
            raise

    async def _deliver_local(self) -> None:
        while not _cancelled():
            group, event, published = await self._local.get()
            sockets = self._groups.get(group)
            if not sockets:
                continue
            try:
                frame = Frame(encode(event))
            except (TypeError, ValueError):
                log.exception("hub_unencodable_event", group=group, event_type=event.get("type"))
                continue
            for socket in list(sockets):
                try:
                    await socket.deliver(event, frame)
                except Exception:
                    log.exception("hub_delivery_failed", group=group, event_type=event["type"])
            metrics.FANOUT_SECONDS.observe(time.perf_counter() - published)
            metrics.FRAMES_OUT.inc(len(sockets))

    async def _forward(self) -> None:
        """Send this process's events to the others, in order; a failure loses the event
        for them (best effort) and is logged, never retried out of order."""
        while not _cancelled():
            group, event = await self._outbox.get()
            try:
                await self._layer_in_use().group_send(
                    group,
                    {"type": "hub.event", "origin": self.origin, "group": group, "event": event},
                )
            except Exception:
                metrics.LAYER_ERRORS.inc()
                log.warning("hub_forward_failed", group=group, event_type=event["type"])
            async with self._progress:
                self._sent += 1
                self._progress.notify_all()

    async def _receive(self) -> None:
        """Events from other processes, until the loop stops; survives layer outages."""
        failures = 0
        while not _cancelled():
            try:
                channel = await self._channel()
                while not _cancelled():
                    message = await self._layer_in_use().receive(channel)
                    failures = 0
                    if message.get("origin") != self.origin:
                        self._enqueue(message["group"], message["event"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                metrics.LAYER_ERRORS.inc()
                self._lost_layer(exc)
                await asyncio.sleep(RETRY_DELAYS[min(failures, len(RETRY_DELAYS) - 1)])
                failures += 1

    async def _watch(self) -> None:
        while not _cancelled():
            await self.catch_up()  # at once: the Redis run id to compare with from now on
            await asyncio.sleep(WATCH_EVERY)

    async def catch_up(self) -> bool:
        """Notice whether the layer's Redis failed or restarted (a restarted Redis forgot
        every subscription, even if no call of ours failed); if so, subscribe anew and
        close the local sockets with 1012: whatever other processes published meanwhile
        is lost, and the clients recover it with `after`. True when the layer is fine.
        Run every WATCH_EVERY seconds, and by /readyz so that it never says ready early."""
        self._bind()
        if self._layer is None:
            return True
        async with self._catching_up:
            try:
                current = await asyncio.to_thread(_redis_run_id)
                if self._run_id is not None and current != self._run_id:
                    self._lost_layer(RuntimeError("Redis restarted"))
                if self.layer_lost:
                    await self._resubscribe()
                    await self._close_all(CLOSE_RESTARTING)
                    self.layer_lost = False
                    log.info("hub_layer_recovered")
                elif time.monotonic() - self._refreshed > REFRESH_EVERY:
                    # Renew this process's memberships: a killed process's lapse
                    # (channels-redis `group_expiry`), a live one's never do.
                    channel = await self._channel()
                    for group in list(self._layer_groups):
                        await self._layer.group_add(group, channel)
                    self._refreshed = time.monotonic()
                self._run_id = current
            except Exception as exc:
                metrics.LAYER_ERRORS.inc()
                self._lost_layer(exc)
        return not self.layer_lost

    async def catch_up_here(self) -> bool:
        """`catch_up` if this event loop runs the fan-out; else what is known (a probe
        must not start the fan-out's tasks in a loop that serves no socket)."""
        try:
            bound_here = self._loop is asyncio.get_running_loop()
        except RuntimeError:
            bound_here = False
        return await self.catch_up() if bound_here else not self.layer_lost

    def _lost_layer(self, exc: Exception) -> None:
        if not self.layer_lost:
            log.error("hub_layer_lost", error=f"{type(exc).__name__}: {exc}")
        self.layer_lost = True

    async def _resubscribe(self) -> None:
        """Leave and join every group again: fresh SUBSCRIBEs on a fresh connection."""
        channel = await self._channel()
        layer = self._layer_in_use()
        for group in list(self._groups):
            await layer.group_discard(group, channel)
            await layer.group_add(group, channel)
        self._layer_groups = set(self._groups)

    async def _close_all(self, code: int) -> None:
        sockets = {socket for members in self._groups.values() for socket in members}
        for socket in sockets:
            await socket.close(code=code)


hub = Hub()
