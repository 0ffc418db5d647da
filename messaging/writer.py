"""Group commit for posts over sockets.

All database work of a process runs in one thread (Channels' `database_sync_to_async`),
and each stored message used to cost a transaction of its own: the room lock, the retry
lookup, the position update, the insert and the commit, one round trip each. Here the
posts to a room that arrive while the room's previous batch is being stored wait for the
next one, and a batch is one call of `posting.post_batch`: one transaction for up to
MAX_BATCH messages. Under light load a batch holds one post and nothing waits longer than
it did before; under heavy load the cost per message falls with the batch size.
"""

import asyncio
from typing import Any

from channels.db import database_sync_to_async

from accounts.models import User
from chatproject import metrics
from chatproject.errors import ChatError
from messaging import posting

MAX_BATCH = 100

_post_batch = database_sync_to_async(posting.post_batch)


class GroupCommit:
    def __init__(self) -> None:
        self._queues: dict[int, list[tuple[User, Any, asyncio.Future]]] = {}
        self._tasks: set[asyncio.Task] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def submit(self, room_id: int, author: User, data: Any) -> asyncio.Future:
        """Queue one post (a socket's `message` frame without `type`, `ref` and `room`);
        the future answers the message as the API shows it, or the post's ChatError.
        Posts to one room are stored in the order they were submitted."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop (tests): nothing carries over
            self._loop, self._queues, self._tasks = loop, {}, set()
        future = loop.create_future()
        queue = self._queues.get(room_id)
        if queue is None:
            self._queues[room_id] = queue = []
            task = loop.create_task(self._write(room_id, queue))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        queue.append((author, data, future))
        return future

    async def post(self, room_id: int, author: User, data: Any) -> dict[str, Any]:
        """`submit` and wait: the stored message, or raise the post's ChatError."""
        outcome = await self.submit(room_id, author, data)
        if isinstance(outcome, ChatError):
            raise outcome
        return outcome

    async def _write(self, room_id: int, queue: list[tuple[User, Any, asyncio.Future]]) -> None:
        """Store the room's queue, batch after batch, until it is empty."""
        batch: list[tuple[User, Any, asyncio.Future]] = []
        try:
            while queue:
                batch = queue[:MAX_BATCH]
                del queue[:MAX_BATCH]
                metrics.WRITE_BATCH.observe(len(batch))
                try:
                    outcomes = await _post_batch(
                        room_id=room_id, posts=[(author, data) for author, data, _ in batch]
                    )
                except Exception as exc:  # the database failed: nothing of the batch stored
                    for _, _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, _, future), outcome in zip(batch, outcomes, strict=True):
                    if not future.done():  # its socket may have gone meanwhile
                        future.set_result(outcome)
                batch = []
        finally:
            # No await since `while queue` found it empty: nothing was added meanwhile.
            if self._queues.get(room_id) is queue:
                del self._queues[room_id]
            for _, _, future in batch + queue:  # cancelled (the loop is closing)
                future.cancel()


group_commit = GroupCommit()
