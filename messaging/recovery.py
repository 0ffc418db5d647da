"""Joining rooms and catching up: the part of `ChatConsumer` that subscribes a socket to
rooms and replays what it missed, from each room's stream and from the user's own.

Each subscribed room keeps a floor: the room position up to which this socket has already
been shown the room's state (by the `join` answer and the replay of `after`). Live events
at or below the floor are dropped, so a join with `after` shows every change once. The
user's own stream (SPEC 12) works the same way with one floor, `user_floor`: the position
read when the socket subscribed to the user's events, or the last change replayed after
`after_user`.
"""

import asyncio
from typing import TYPE_CHECKING, Any, cast

from channels.db import database_sync_to_async
from django.conf import settings

from accounts.models import User
from accounts.presence import room_users_sample
from accounts.selectors import user_briefs
from chatproject import events, metrics
from chatproject.broadcast import room_group
from chatproject.errors import ChatError
from chatproject.hub import Frame, encode, hub
from messaging import selectors
from messaging.sockets import local_sockets
from messaging.stream import change_frame
from rooms import userstream
from rooms.models import Room
from rooms.services import enter_room, enter_rooms

if TYPE_CHECKING:  # the consumer is made of this part: a runtime import would be a cycle
    from messaging.consumers import ChatConsumer

REPLAY_BATCH = 200


@database_sync_to_async
def _enter_room(user: User, room_id: int) -> Room:
    return enter_room(room_id=room_id, user=user)


@database_sync_to_async
def _room_position(room_id: int) -> int:
    return selectors.room_position(room_id=room_id)


@database_sync_to_async
def _enter_rooms(user: User, room_ids: list[int]) -> tuple[list[Room], dict[int, ChatError]]:
    return enter_rooms(room_ids=room_ids, user=user)


@database_sync_to_async
def _room_positions(room_ids: list[int]) -> dict[int, int]:
    return dict(Room.objects.filter(pk__in=room_ids).values_list("pk", "pos"))


@database_sync_to_async
def _replay_batch(
    room: Room, after: int, viewer_id: int
) -> tuple[list[events.MessageFrame | events.MessageDeleted], bool]:
    changes, has_more = selectors.changes_after(room=room, after=after, limit=REPLAY_BATCH)
    return [change_frame(message, viewer_id=viewer_id) for message in changes], has_more


@database_sync_to_async
def _rooms_users(room_ids: list[int]) -> dict[int, tuple[list[events.UserBrief], int]]:
    """Who is in each room: (up to ROOM_USERS_MAX of the users present, by lowest id; how
    many are present), with one query for all their users' briefs. A big room costs the
    same per join as a room of ROOM_USERS_MAX."""
    samples = {r: room_users_sample(r, settings.ROOM_USERS_MAX) for r in room_ids}
    briefs = user_briefs({uid for user_ids, _ in samples.values() for uid in user_ids})
    return {
        r: ([briefs[u] for u in sorted(user_ids) if u in briefs], count)
        for r, (user_ids, count) in samples.items()
    }


@database_sync_to_async
def _user_changes_after(user_id: int, after: int) -> tuple[list[events.UserStreamFrame], bool]:
    return userstream.changes_after(user_id=user_id, after=after)


class Recovery:
    """Room subscriptions with recovery (`join`, `join` of many rooms, `after`) and the
    user's own stream (`after_user`), for `ChatConsumer`."""

    rooms: dict[int, int]  # room id -> floor position
    _held: dict[int, list[tuple[dict[str, Any], Frame]]]  # live events of rooms being joined
    user_floor: int
    _user_held: list[tuple[dict[str, Any], Frame]] | None

    @property
    def _socket(self) -> "ChatConsumer":
        """This socket as the hub and the presence registry know it."""
        return cast("ChatConsumer", self)

    if TYPE_CHECKING:  # the consumer's

        @property
        def me(self) -> User: ...

        async def send_frame(self, frame: events.ClientFrame) -> None: ...

        async def _send_frame(self, frame: Frame) -> None: ...

        async def _write(self, text: str) -> None: ...

        async def deliver(self, event: dict[str, Any], frame: Frame) -> None: ...

    async def _follow_user_stream(self, after: int | None) -> None:
        """Replay the user's changes after `after` (none: nothing), then let the live ones
        held meanwhile through, each once and in order."""
        self._user_held = self._user_held if self._user_held is not None else []
        try:
            while after is not None and after < self.user_floor:
                batch, has_more = await _user_changes_after(self.me.pk, after)
                for change in batch:
                    await self._user_change(change)
                    after = change["user_pos"]
                if not has_more:
                    break
        finally:
            held, self._user_held = self._user_held, None
        for event, frame in held:
            await self.deliver(event, frame)

    async def _user_change(self, event: dict[str, Any], frame: Frame | None = None) -> None:
        """A change of the user's own stream, live (`frame`) or replayed: act on it (stop
        receiving a room the user left), then show it, unless it was shown already."""
        pos = event["user_pos"]
        if pos <= self.user_floor and frame is not None:
            return  # already shown (the replay), or older than the position at connect
        self.user_floor = max(self.user_floor, pos)
        kind, room_id = event["type"], event["room"]
        if kind == "room_removed" and await self._unsubscribe(room_id):
            # Said as before the user's stream existed, for clients that only watch rooms.
            user = events.user_brief(self.me)
            await self.send_frame(events.user_left(room=room_id, user=user))
        elif kind == "room_deleted":
            await self._unsubscribe(room_id)
        if frame is None:
            await self._write(encode(event))
        else:
            await self._send_frame(frame)

    async def _join(self, room_id: int, *, after: int | None, ref) -> None:
        room = await _enter_room(self.me, room_id)
        # Live events of the room wait until the answer and the replay are out; then those
        # above the floor follow, so the socket sees each change once and in order.
        self._held.setdefault(room.pk, [])
        try:
            # Subscribe first, then read: a change committed meanwhile is either in what
            # we read (and its live event falls under the floor) or arrives live after it.
            await hub.subscribe(room_group(room.pk), self._socket)
            floor = await _room_position(room.pk)
            first_join = room.pk not in self.rooms
            self.rooms[room.pk] = max(self.rooms.get(room.pk, 0), floor)
            await self.send_frame(events.ack(ref, room=room.pk, pos=floor))
            if first_join:
                await local_sockets.enter_room(self._socket, room.pk)
            ((users, count),) = (await _rooms_users([room.pk])).values()
            await self.send_frame(events.room_users(room=room.pk, users=users, count=count))
            if after is not None and after < floor:
                await self._replay(room, after)
        finally:
            held = self._held.pop(room.pk)
        for event, frame in held:
            await self.deliver(event, frame)

    async def _join_many(self, wanted: dict[int, int | None], ref) -> None:
        """A batched `join` (a client coming back to its rooms): the same guarantees as
        `_join`, room by room, with one database round trip for the rooms, one for their
        positions and one for who is in them, however many rooms."""
        rooms, refused = await _enter_rooms(self.me, list(wanted))
        ids = [room.pk for room in rooms]
        for room_id in ids:
            self._held.setdefault(room_id, [])
        try:
            await asyncio.gather(*(hub.subscribe(room_group(r), self._socket) for r in ids))
            floors = await _room_positions(ids)
            fresh = [r for r in ids if r not in self.rooms]
            for room_id in ids:
                self.rooms[room_id] = max(self.rooms.get(room_id, 0), floors[room_id])
            joined: list[events.JoinedRoom] = [{"room": r, "pos": floors[r]} for r in ids]
            answer = events.ack(ref, rooms=joined)
            if refused:
                answer["refused"] = [
                    {"room": r, "code": exc.code, "message": exc.message}
                    for r, exc in refused.items()
                ]
            await self.send_frame(answer)
            await local_sockets.enter_rooms(self._socket, fresh)
            for room_id, (users, count) in (await _rooms_users(ids)).items():
                await self.send_frame(events.room_users(room=room_id, users=users, count=count))
            for room in rooms:
                after = wanted[room.pk]
                if after is not None and after < floors[room.pk]:
                    await self._replay(room, after)
        finally:
            held = [(r, self._held.pop(r)) for r in ids]
        for _, events_held in held:
            for event, frame in events_held:
                await self.deliver(event, frame)

    async def _replay(self, room: Room, after: int) -> None:
        metrics.RECOVERIES.inc()
        while True:
            batch, has_more = await _replay_batch(room, after, self.me.pk)
            metrics.RECOVERED_FRAMES.inc(len(batch))
            for event in batch:
                await self.send_frame(event)
                after = event["pos"]
            self.rooms[room.pk] = max(self.rooms[room.pk], after)
            if not has_more:
                return

    async def _unsubscribe(self, room_id: int) -> bool:
        if self.rooms.pop(room_id, None) is None:
            return False
        await hub.unsubscribe(room_group(room_id), self._socket)
        await local_sockets.leave_room(self._socket, room_id)
        return True
