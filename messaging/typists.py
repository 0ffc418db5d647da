"""Typing indicators: what one socket's `typing` frames make the room's other sockets see.

At most one `typing` frame per user and room goes out per TYPING_EVERY seconds, over all
of the user's sockets and every process (a counter in `chatproject.throttle`, in Redis
when there is one). A frame that comes sooner is not dropped but held, the latest state
replacing an older one, and relayed when the window opens: a client that alternates
"typing" and "stopped" as fast as it can makes the others receive one frame a second,
and the last state it sent always arrives.
"""

import asyncio
from collections.abc import Callable

from asgiref.sync import sync_to_async

from accounts.models import User
from chatproject import events, throttle
from chatproject.broadcast import publish, room_group
from chatproject.logs import get_logger

log = get_logger(__name__)

# Seconds between two `typing` frames of one user in one room, true or false.
TYPING_EVERY = 1.0

# A Redis call; not in the one database thread.
_allowed = sync_to_async(
    lambda key: throttle.hit(key, limit=1, window=TYPING_EVERY), thread_sensitive=False
)


class TypingRelay:
    """One socket's typing, per room: the state not relayed yet, and its timer."""

    def __init__(self, user: User, *, subscribed: Callable[[int], bool]) -> None:
        self._user = user
        self._subscribed = subscribed  # whether the socket is (still) in a room
        self._wanted: dict[int, bool] = {}  # room -> the latest state not relayed yet
        self._busy: set[int] = set()  # rooms with a relay under way or scheduled
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task] = set()

    async def typed(self, room_id: int, is_typing: bool) -> None:
        """The user started (or stopped) typing in a room the socket is subscribed to."""
        self._wanted[room_id] = is_typing
        if room_id in self._busy:
            return  # the relay under way (or the one scheduled) sends the latest state
        self._busy.add(room_id)
        await self._relay(room_id)

    async def _relay(self, room_id: int) -> None:
        self._timers.pop(room_id, None)
        try:
            allowed, retry_after = await _allowed(f"typing:{room_id}:{self._user.pk}")
        except Exception:
            self._busy.discard(room_id)
            raise  # Redis failed: the socket answers `unavailable`; typing is not kept
        if not allowed:
            loop = asyncio.get_running_loop()
            self._timers[room_id] = loop.call_later(retry_after, self._later, room_id)
            return
        self._busy.discard(room_id)
        is_typing = self._wanted.pop(room_id, None)
        if is_typing is None or not self._subscribed(room_id):
            return
        frame = events.typing(room=room_id, user=events.user_brief(self._user), is_typing=is_typing)
        publish(room_group(room_id), frame)

    def _later(self, room_id: int) -> None:
        task = asyncio.get_running_loop().create_task(self._relay_logged(room_id))
        self._tasks.add(task)  # the loop keeps only a weak reference
        task.add_done_callback(self._tasks.discard)

    async def _relay_logged(self, room_id: int) -> None:
        try:
            await self._relay(room_id)
        except Exception:
            log.warning("typing_not_relayed", room_id=room_id, user_id=self._user.pk)

    def close(self) -> None:
        """The socket closed: what was held is dropped."""
        for timer in self._timers.values():
            timer.cancel()
        for task in self._tasks:
            task.cancel()
        self._timers.clear()
        self._wanted.clear()
