"""This process's open sockets: presence transitions and their heartbeat.

The consumer tells this registry when a socket authenticates, subscribes to a room,
unsubscribes and closes; the registry records it in the shared presence store
(`accounts.presence`) and announces the transitions that store reports:

- `user_online` / `user_offline` when a user's first socket opens / last socket closes,
  to the rooms the user belongs to and to the user's status subscribers;
- `user_joined` / `user_left` when a user's first socket subscribes to a room / last
  socket leaves it.

Big rooms (more than ROOM_USERS_MAX users present) are told differently, or every join
would send a frame to every member and joining N sockets would cost N² deliveries: their
joins and leaves are gathered per process and go out as one `room_presence` frame
(`PresenceBatches`), and `user_online` / `user_offline` are not sent to them (status
subscribers still get them). The size of a room is one O(1) call to the presence store.

One task per process renews the presence entries of every local socket and sweeps the
entries of processes that died, instead of one timer per socket.

Announcements are rate-limited per user (and per user and room), over every process
(`accounts.presence.ANNOUNCEMENTS`): one beyond the rate is held, and when the window
opens the state as it is then is announced instead (sockets show each online change once,
so a watcher sees at most a few frames a second, the last one right). While the process
drains, everything held goes out at once.
"""

import asyncio
import contextvars
import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings
from django.utils import timezone

from accounts.models import User
from accounts.presence import (
    ANNOUNCEMENTS,
    ONLINE,
    announcement_key,
    presence,
    room_key,
    user_key,
)
from accounts.selectors import user_briefs
from accounts.services import mark_seen
from chatproject import events, metrics, throttle
from chatproject.broadcast import publish, room_group, status_group
from chatproject.logs import get_logger
from chatproject.transport import is_draining
from messaging import stats
from messaging.roompresence import PresenceBatches, is_big
from messaging.roompresence import room_sizes_now as _room_sizes
from rooms.selectors import user_room_ids

if TYPE_CHECKING:  # the consumer registers itself here: a runtime import would be a cycle
    from messaging.consumers import ChatConsumer

log = get_logger(__name__)


# Redis calls are short and must not queue behind database work in the one
# thread that `database_sync_to_async` uses, hence their own threads.
_store = sync_to_async(
    lambda method, *args: getattr(presence(), method)(*args), thread_sensitive=False
)


_publish_stats = sync_to_async(
    lambda connections: stats.publish(connections=connections), thread_sensitive=False
)

_announcement_allowed = sync_to_async(
    lambda key: throttle.hit(key, limit=ANNOUNCEMENTS[0], window=ANNOUNCEMENTS[1]),
    thread_sensitive=False,
)

Announce = Callable[[], Awaitable[None]]

STATS_EVERY = 0.5  # seconds: how stale /api/stats/ may be about this process


class LocalSockets:
    def __init__(self) -> None:
        self._sockets: set[ChatConsumer] = set()
        self._leaving = 0
        self._stats_due: asyncio.TimerHandle | None = None
        self._stats_loop: asyncio.AbstractEventLoop | None = None
        self._heartbeat: asyncio.Task | None = None
        # Announcements held back (`_gated`): key -> (timer, announce the state then).
        self._held: dict[str, tuple[asyncio.TimerHandle, Announce]] = {}
        self._held_in: asyncio.AbstractEventLoop | None = None  # the loop of those timers
        self._settling: set[asyncio.Task] = set()
        self.batches = PresenceBatches()

    def __len__(self) -> int:
        """Sockets open, and sockets still leaving (the drain waits for both, so that
        `user_offline` and `last_seen` are written before the process stops)."""
        return len(self._sockets) + self._leaving

    async def add(self, consumer: "ChatConsumer") -> bool:
        """Register an authenticated socket. False (and nothing recorded) when the user
        already holds MAX_SOCKETS_PER_USER sockets over all processes."""
        key = user_key(consumer.me.pk)
        count = await _store("enter", key, consumer.socket_id)
        if count > settings.MAX_SOCKETS_PER_USER:
            await _store("exit", key, consumer.socket_id)
            return False
        self._sockets.add(consumer)
        metrics.CONNECTIONS.set(len(self._sockets))
        if self._heartbeat is None or self._heartbeat.done():
            # A context of its own: not the log context of the socket that started it.
            self._heartbeat = asyncio.get_running_loop().create_task(
                self._beat(), context=contextvars.Context()
            )
        self._publish_stats_soon()
        if count == 1:
            user = consumer.me
            await self._gated(
                announcement_key(user.pk), lambda: announce_online(user), lambda: _status(user)
            )
        return True

    async def remove(self, consumer: "ChatConsumer") -> None:
        if consumer not in self._sockets:
            return  # refused at `add`: nothing was recorded
        self._sockets.discard(consumer)
        self._leaving += 1
        try:
            metrics.CONNECTIONS.set(len(self._sockets))
            self._publish_stats_soon()
            if is_draining() and settings.REDIS_URL:
                # A drain hands its sockets to the other processes (1012: come back at
                # once). Their presence entries stay, so the user's new socket is not a
                # first one: a restart announces nothing to anyone. Entries not renewed
                # expire within PRESENCE_TTL, and the sweep announces a user who did not
                # come back as offline then (with last_seen).
                return
            for room_id in list(consumer.rooms):
                await self.leave_room(consumer, room_id)
            if await _store("exit", user_key(consumer.me.pk), consumer.socket_id):
                user = consumer.me
                await self._gated(
                    announcement_key(user.pk),
                    lambda: announce_offline(user.pk, user.username),
                    lambda: _status(user),
                )
        finally:
            self._leaving -= 1

    def _publish_stats_soon(self) -> None:
        """Publish this process's connection count within STATS_EVERY seconds: one Redis
        write per period, not one per socket opened or closed (a reconnect storm opens
        thousands a second)."""
        loop = asyncio.get_running_loop()
        if self._stats_due is not None and self._stats_loop is loop:
            return  # one is due (a timer of an ended loop, in tests, never runs)
        self._stats_loop = loop

        def publish() -> None:
            self._stats_due = None
            task = loop.create_task(
                _publish_stats(len(self._sockets)), context=contextvars.Context()
            )
            self._settling.add(task)  # the loop keeps only a weak reference
            task.add_done_callback(self._settling.discard)

        self._stats_due = loop.call_later(STATS_EVERY, publish)

    async def close_all(self, *, code: int) -> None:
        """Ask every local socket to close (the drain on SIGTERM), and announce what was
        held back: no timer of this process will run."""
        for key, (timer, settle) in list(self._held.items()):
            timer.cancel()
            del self._held[key]
            await self._settle(key, settle)
        await self.batches.flush_all()
        for consumer in list(self._sockets):
            await consumer.close(code=code)

    async def enter_room(self, consumer: "ChatConsumer", room_id: int) -> None:
        await self.enter_rooms(consumer, [room_id])

    async def enter_rooms(self, consumer: "ChatConsumer", room_ids: list[int]) -> None:
        """The socket subscribed to these rooms: one presence round trip for all, and one
        more for the sizes of those where the user is new."""
        user = consumer.me
        keys = [room_key(room_id, user.pk) for room_id in room_ids]
        counts = await _store("enter_many", keys, consumer.socket_id)
        firsts = [r for r, count in zip(room_ids, counts, strict=True) if count == 1]
        if not firsts:
            return
        sizes = await _room_sizes(firsts)
        for room_id in firsts:
            if is_big(sizes[room_id]):
                # Batched: a room's frames are bounded per period, whoever comes and goes.
                self.batches.joined(room_id, events.user_brief(user), present=sizes[room_id])
                continue
            await self._gated(
                announcement_key(user.pk, room_id),
                functools.partial(_in_room, room_id, user, present=True),
                functools.partial(_in_room, room_id, user),
            )

    async def leave_room(self, consumer: "ChatConsumer", room_id: int) -> None:
        if await _store("exit", room_key(room_id, consumer.me.pk), consumer.socket_id):
            user = consumer.me
            present = (await _room_sizes([room_id]))[room_id]
            if is_big(present + 1):  # with the user
                self.batches.left(room_id, user.pk, present=present)
                return
            await self._gated(
                announcement_key(user.pk, room_id),
                lambda: _in_room(room_id, user, present=False),
                lambda: _in_room(room_id, user),
            )

    async def _gated(self, key: str, now: Announce, settle: Announce) -> None:
        """Announce a transition with `now()`; beyond the rate (ANNOUNCEMENTS), hold it
        and run `settle()`, which announces the state as it is then, when the window
        opens. While one is held for the key, the held one speaks for this one too."""
        loop = asyncio.get_running_loop()
        if loop is not self._held_in:  # a new event loop (tests): old timers never run
            self._held_in, self._held = loop, {}
        if key in self._held:
            return
        if not is_draining():
            allowed, retry_after = await _announcement_allowed(key)
            if not allowed:
                self._hold(key, retry_after, settle)
                return
        await now()

    def _hold(self, key: str, delay: float, settle: Announce) -> None:
        loop = asyncio.get_running_loop()

        def start() -> None:
            del self._held[key]
            # A context of its own: not the log context of the socket that caused it.
            task = loop.create_task(self._settle(key, settle), context=contextvars.Context())
            self._settling.add(task)  # the loop keeps only a weak reference
            task.add_done_callback(self._settling.discard)

        self._held[key] = (loop.call_later(delay, start), settle)

    async def _settle(self, key: str, settle: Announce) -> None:
        try:
            if not is_draining():
                allowed, retry_after = await _announcement_allowed(key)
                if not allowed:  # other processes announced meanwhile: wait again
                    self._hold(key, retry_after, settle)
                    return
            await settle()
        except Exception:
            log.exception("presence_announcement_failed", key=key)

    async def _beat(self) -> None:
        while self._sockets:
            await asyncio.sleep(settings.PRESENCE_TTL / 3)
            entries = []
            for socket in list(self._sockets):
                entries.append((user_key(socket.me.pk)[0], socket.socket_id))
                entries.extend(
                    (room_key(r, socket.me.pk)[0], socket.socket_id) for r in socket.rooms
                )
            try:
                await _store("renew", entries)
                await _publish_stats(len(self._sockets))
                await sweep()
            except Exception:
                log.exception("presence_heartbeat_failed", sockets=len(self._sockets))


async def announce_online(user: User) -> None:
    await _announce(
        user.pk,
        events.user_status(
            user_id=user.pk,
            username=user.username,
            is_online=True,
            last_seen=_iso(user.last_seen),
        ),
    )


async def announce_offline(user_id: int, username: str) -> None:
    seen = timezone.now()
    await database_sync_to_async(mark_seen)(user_id=user_id, at=seen)
    await _announce(
        user_id,
        events.user_status(
            user_id=user_id, username=username, is_online=False, last_seen=_iso(seen)
        ),
    )


async def _status(user: User) -> None:
    """Announce whether the user is online now (a held announcement, settled)."""
    (online,) = await _store("live", [user_key(user.pk)[0]])
    if online:
        await announce_online(user)
    else:
        await announce_offline(user.pk, user.username)


async def _in_room(room_id: int, user: User, *, present: bool | None = None) -> None:
    """`user_joined` / `user_left` for a user's presence in a room; None: as it is now."""
    if present is None:
        (present,) = await _store("live", [room_key(room_id, user.pk)[0]])
    brief = events.user_brief(user)
    event = events.user_joined if present else events.user_left
    publish(room_group(room_id), event(room=room_id, user=brief))


async def _announce(user_id: int, event: events.UserStatus) -> None:
    """To the user's status subscribers and to every room the user belongs to, but big
    rooms: there each socket coming online would reach every member (their
    `room_presence` says who is in the room; `subscribe_status` follows anyone)."""
    publish(status_group(user_id), event)
    room_ids = await database_sync_to_async(user_room_ids)(user_id=user_id)
    sizes = await _room_sizes(room_ids) if room_ids else {}
    for room_id in room_ids:
        if not is_big(sizes[room_id]):
            publish(room_group(room_id), event)


async def sweep() -> None:
    """Report the users whose sockets vanished with a dead process (entries expired);
    one process per heartbeat period does it."""
    if not await _store("claim_sweep", settings.PRESENCE_TTL / 3 * 0.9):
        return
    swept = await _store("sweep")  # (index, user id): only what expired is read
    gone = [user_id for index, user_id in swept if index == ONLINE]
    left = [(int(index.split(":")[1]), user_id) for index, user_id in swept if index != ONLINE]
    if not gone and not left:
        return
    briefs = await database_sync_to_async(user_briefs)({*gone, *(u for _, u in left)})
    sizes = await _room_sizes(sorted({room_id for room_id, _ in left})) if left else {}
    for room_id, user_id in left:
        if is_big(sizes[room_id] + 1):
            local_sockets.batches.left(room_id, user_id, present=sizes[room_id])
            continue
        # A user deleted meanwhile is still named by id.
        user = briefs.get(user_id) or events.UserBrief(id=user_id, username="", display_name="")
        publish(room_group(room_id), events.user_left(room=room_id, user=user))
    for user_id in gone:
        await announce_offline(user_id, briefs.get(user_id, {}).get("username", ""))


def _iso(moment) -> str | None:
    if moment is None:
        return None
    return moment.isoformat().replace("+00:00", "Z")


local_sockets = LocalSockets()
