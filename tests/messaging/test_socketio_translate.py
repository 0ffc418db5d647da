"""The Socket.IO adapter's translation of a client event into the native frame."""

import pytest
from asgiref.sync import sync_to_async

from chatproject.errors import ValidationFailed
from messaging.protocols.socketio_translate import native_frame
from tests.factories import make_room

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


async def test_the_seeds_text_type_is_not_taken_for_the_frames_type(user):
    room = await make_room_async(user)

    frame = await native_frame(
        "message", {"room_id": room.pk, "content": "hi", "type": "text"}, user=user, names={}
    )

    assert frame == {"type": "message", "room": room.pk, "content": "hi"}


async def test_a_message_type_other_than_text_is_refused(user):
    room = await make_room_async(user)

    with pytest.raises(ValidationFailed) as refused:
        await native_frame(
            "message",
            {"room_id": room.pk, "content": "hi", "type": "announcement"},
            user=user,
            names={},
        )

    assert refused.value.fields == {"type": ["Only `text`."]}


async def make_room_async(user):
    return await sync_to_async(make_room)(owner=user, name="Translated")
