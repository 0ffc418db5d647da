"""`message_data` builds a message's shape by hand (it is on every post's path); it must
give exactly what DRF's ModelSerializer gives for the declared fields."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from rest_framework import serializers

from chatproject.errors import ValidationFailed
from messaging.attachments import store_attachment
from messaging.changes import add_reaction, delete_message, edit_message
from messaging.models import Message
from messaging.posting import input_fields, post_message, validation_failed
from messaging.serializers import MessageSerializer, message_data
from messaging.stream import lock_room, post_notice
from tests.factories import add_member, make_room

pytestmark = pytest.mark.django_db


def drf_representation(message: Message, viewer_id: int | None) -> dict:
    """What DRF's own field-by-field path answers for MessageSerializer's fields."""
    serializer = MessageSerializer(message, context={"viewer_id": viewer_id})
    data = dict(serializers.ModelSerializer.to_representation(serializer, message))
    if message.deleted:
        data.update(
            content="", content_html="", mentions=[], mentions_room=False, title=None, payload={}
        )
    return data


def test_message_data_matches_drf_for_every_kind_of_message(user, other_user, staff_user):
    room = make_room(owner=user, name="Shapes")
    add_member(room, other_user)
    add_member(room, staff_user)
    plain, _ = post_message(room=room, author=user, content="héllo <b> @bob", client_id="c1")
    upload = SimpleUploadedFile("a.txt", b"some text", content_type="text/plain")
    attachment = store_attachment(uploader=user, upload=upload)
    rich, _ = post_message(
        room=room,
        author=staff_user,
        content="",
        type=Message.Type.ANNOUNCEMENT,
        title="Notice",
        payload={"k": [1, {"n": None}]},
        attachment_urls=["https://example.com/x.png"],
        attachments=[attachment],
        reply_to=plain,
    )
    add_reaction(message=plain, user=other_user, emoji="👍")
    add_reaction(message=plain, user=user, emoji="👍")
    add_reaction(message=plain, user=user, emoji="🎉")
    edited, _ = post_message(room=room, author=user, content="first")
    edit_message(message=edited, editor=user, content="second")
    gone, _ = post_message(room=room, author=other_user, content="secret @room", title="t")
    delete_message(message=gone, actor=other_user, can_moderate=False)
    with transaction.atomic():
        system = post_notice(room=lock_room(room.pk), content="Bob joined")

    messages = Message.objects.filter(pk__in=[m.pk for m in (plain, rich, edited, gone, system)])
    messages = messages.select_related("sender").prefetch_related("files", "reaction_set")
    assert len(messages) == 5
    for message in messages:
        for viewer_id in (None, user.pk, other_user.pk):
            assert message_data(message, viewer_id=viewer_id) == drf_representation(
                message, viewer_id
            ), message


def test_a_fresh_message_has_the_shape_of_a_stored_one(user):
    """The post path serializes the instance it just created (a `Type` member, an aware
    `created_at` from Python): the same frame as when it is read back."""
    room = make_room(owner=user, name="Fresh")
    message, _ = post_message(room=room, author=user, content="hi", client_id="fresh")
    stored = Message.objects.select_related("sender").get(pk=message.pk)
    assert message_data(message) == message_data(stored)
    assert type(message_data(message)["type"]) is str


PLAIN_AND_NOT = [
    {"content": "hello"},
    {"content": "hello", "client_id": "abc-1"},
    {"content": "", "client_id": None},
    {"content": "  spaced  "},
    {},
    {"client_id": "only-id"},
    {"content": "x", "client_id": ""},
    {"content": "x", "client_id": " padded "},
    {"content": "x", "client_id": "x" * 65},
    {"content": "x", "client_id": 7},
    {"content": 5},
    {"content": True},
    {"content": None},
    {"content": ["a"]},
    {"content": "nul\x00"},
    {"content": "lone \ud800"},
    {"content": "x", "type": "announcement"},
    {"content": "x", "title": "t"},
    {"content": "x", "extra": 1},
    ["not", "an", "object"],
]


@pytest.mark.parametrize("data", PLAIN_AND_NOT, ids=repr)
def test_the_plain_input_path_answers_as_drf_does(data):
    """`input_fields` skips DRF for the common post; for any input it must give DRF's
    validated data, or DRF's error."""
    from messaging.serializers import MessageCreateSerializer

    serializer = MessageCreateSerializer(data=data)
    try:
        ours = input_fields(data)
    except ValidationFailed as exc:
        assert not serializer.is_valid()
        expected = validation_failed(serializer.errors)
        assert (exc.message, exc.fields) == (expected.message, expected.fields)
    else:
        assert serializer.is_valid(), serializer.errors
        assert ours == dict(serializer.validated_data)
