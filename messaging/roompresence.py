"""Big rooms' presence: a room with more than ROOM_USERS_MAX users present gets its joins
and leaves gathered per process into one `room_presence` frame per period, instead of a
`user_joined` / `user_left` to every member for each (`messaging.sockets` decides which).
"""

import asyncio
import contextvars

from asgiref.sync import sync_to_async
from django.conf import settings

from accounts.presence import room_sizes
from chatproject import events
from chatproject.broadcast import publish, room_group
from chatproject.logs import get_logger

log = get_logger(__name__)

# Redis calls are short and must not queue behind database work (as in messaging.sockets).
room_sizes_now = sync_to_async(room_sizes, thread_sensitive=False)


def is_big(present: int) -> bool:
    """Whether a room with `present` users gets `room_presence` batches."""
    return present > settings.ROOM_USERS_MAX


def batch_period(present: int) -> float:
    """Seconds a big room's joins and leaves are gathered: PRESENCE_BATCH_MS per
    ROOM_USERS_MAX present (250 ms at 100, 12.5 s at 5,000). A frame reaches every member,
    so a fixed period would make a storm of N joins cost N²/period deliveries; this way a
    room's presence costs a process at most ROOM_USERS_MAX deliveries per PRESENCE_BATCH_MS,
    however big the room, and N joins cost O(N)."""
    scale = max(1.0, present / settings.ROOM_USERS_MAX)
    return settings.PRESENCE_BATCH_MS / 1000 * scale


class PresenceBatches:
    """The joins and leaves of big rooms, gathered per room for `batch_period` and
    published as one `room_presence` frame: at most one frame per room, process and
    period, however many sockets come and go. A user is in one list, the one of their
    last state: joined and left within a period, they are in `left` (a client that never
    saw them drops nothing), left and joined again, in `joined`."""

    def __init__(self) -> None:
        self._joined: dict[int, dict[int, events.UserBrief]] = {}
        self._left: dict[int, dict[int, None]] = {}  # ordered sets of user ids
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flushing: set[asyncio.Task] = set()

    def __len__(self) -> int:
        """Rooms with something not yet published."""
        return len(self._timers)

    def joined(self, room_id: int, user: events.UserBrief, *, present: int) -> None:
        """`user`'s first socket joined the room, which has `present` users now."""
        self._left.get(room_id, {}).pop(user["id"], None)
        self._joined.setdefault(room_id, {})[user["id"]] = user
        self._start(room_id, present)

    def left(self, room_id: int, user_id: int, *, present: int) -> None:
        """The user's last socket left the room, which has `present` users now."""
        self._joined.get(room_id, {}).pop(user_id, None)
        self._left.setdefault(room_id, {})[user_id] = None
        self._start(room_id, present)

    def _start(self, room_id: int, present: int) -> None:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop (tests): old timers never run
            self._loop, self._timers = loop, {}
        if room_id in self._timers:
            return

        def start() -> None:
            # A context of its own: not the log context of the socket that caused it.
            task = loop.create_task(self.flush(room_id), context=contextvars.Context())
            self._flushing.add(task)  # the loop keeps only a weak reference
            task.add_done_callback(self._flushing.discard)

        self._timers[room_id] = loop.call_later(batch_period(present), start)

    async def flush(self, room_id: int) -> None:
        """Publish what the room gathered (with the room's size now), if anything."""
        timer = self._timers.pop(room_id, None)
        if timer is not None:
            timer.cancel()
        joined = self._joined.pop(room_id, {})
        left = self._left.pop(room_id, {})
        if not joined and not left:
            return
        try:
            count = (await room_sizes_now([room_id]))[room_id]
        except Exception:
            log.exception("presence_batch_failed", room_id=room_id)
            return
        publish(
            room_group(room_id),
            events.room_presence(
                room=room_id, joined=list(joined.values()), left=list(left), count=count
            ),
        )

    async def flush_all(self) -> None:
        for room_id in list(self._timers):
            await self.flush(room_id)
