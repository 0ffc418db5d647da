import json
from datetime import datetime
from typing import Any, cast

from django.core.validators import URLValidator
from django.urls import reverse
from django.utils import timezone
from rest_framework import serializers

from accounts.serializers import UserBriefSerializer
from chatproject.events import (
    FileData,
    LinkData,
    MessageData,
    MessageType,
    ReactionData,
    user_brief,
)
from chatproject.text import has_forbidden_chars
from messaging.models import Attachment, Message
from messaging.rendering import render

MAX_ATTACHMENT_URLS = 10
MAX_TITLE_LENGTH = 200
MAX_PAYLOAD_BYTES = 8 * 1024
# The largest id the databases store (a signed 64-bit integer); a larger one is refused as
# input (SQLite would fail the query with an OverflowError, a 500).
MAX_ID = 2**63 - 1


class MessageSerializer(serializers.ModelSerializer):
    """A message as REST answers and socket events show it (one shape for both)."""

    sender = UserBriefSerializer(read_only=True, allow_null=True)
    attachments = serializers.SerializerMethodField()
    reactions = serializers.SerializerMethodField()
    reply_to = serializers.PrimaryKeyRelatedField[Message](read_only=True, allow_null=True)
    content_html = serializers.CharField(
        read_only=True, help_text="`content` rendered from Markdown, sanitized; empty if deleted"
    )
    mentions = serializers.ListField(
        child=serializers.IntegerField(),
        read_only=True,
        help_text="ids of the users it mentions by @name, and of those online for @here",
    )
    mentions_room = serializers.BooleanField(read_only=True, help_text="it says @room")

    class Meta:
        model = Message
        fields = [
            "id",
            "room",
            "seq",
            "pos",
            "sender",
            "type",
            "content",
            "content_html",
            "mentions",
            "mentions_room",
            "title",
            "payload",
            "attachments",
            "reply_to",
            "client_id",
            "reactions",
            "created_at",
            "edited_at",
            "deleted",
        ]
        read_only_fields = fields

    # The two getters document the shape for OpenAPI; `to_representation` answers.
    def get_attachments(self, message: Message) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], _attachments(message))

    def get_reactions(self, message: Message) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], _reactions(message, self.context.get("viewer_id")))

    def to_representation(self, message: Message) -> dict[str, Any]:
        # The declared fields above document the shape (OpenAPI); `message_data` builds it
        # without DRF's per-field machinery, which is most of a post's CPU.
        data = message_data(message, viewer_id=self.context.get("viewer_id"))
        return cast(dict[str, Any], data)  # a TypedDict is a dict


def message_data(message: Message, *, viewer_id: int | None = None) -> MessageData:
    """A message as REST answers and socket events show it (`MessageSerializer`'s shape).

    Reads `message.sender`, `message.files` and `message.reaction_set`: select and
    prefetch them for many messages.
    """
    deleted = message.deleted
    sender = message.sender
    return {
        "id": message.pk,
        "room": message.room_id,
        "seq": message.seq,
        "pos": message.pos,
        "sender": None if sender is None else user_brief(sender),
        "type": _TYPES[message.type],
        "content": "" if deleted else message.content,
        "content_html": "" if deleted else _html(message),
        "mentions": [] if deleted else message.mentions,
        "mentions_room": False if deleted else message.mentions_room,
        "title": None if deleted else message.title,
        "payload": {} if deleted else message.payload,
        "attachments": _attachments(message),
        "reply_to": message.reply_to_id,
        "client_id": message.client_id,
        "reactions": _reactions(message, viewer_id),
        "created_at": _iso(message.created_at) or "",
        "edited_at": _iso(message.edited_at),
        "deleted": deleted,
    }


def _html(message: Message) -> str:
    """The stored rendering; a message stored before rendering existed is rendered now,
    without mentions (`manage.py rerender_messages` stores it, with them)."""
    if message.content_html or not message.content:
        return message.content_html
    return render(message.content).html


# The stored type as the catalogue's literal (a plain `str`, not the model's enum member).
_TYPES: dict[str, MessageType] = {
    "text": "text",
    "system": "system",
    "announcement": "announcement",
}


def _iso(value: datetime | None) -> str | None:
    """DRF's DateTimeField output: ISO 8601 in the current time zone, UTC as `Z`."""
    if value is None:
        return None
    text = timezone.localtime(value).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _attachments(message: Message) -> list[FileData | LinkData]:
    if message.deleted:
        return []
    files: list[FileData | LinkData] = [attachment_data(a) for a in message.files.all()]
    return files + [LinkData(url=url) for url in message.attachment_urls]


def _reactions(message: Message, viewer_id: int | None) -> list[ReactionData]:
    """`[{"emoji", "count", "user_ids"}]` in order of first use, plus `me` when the reader
    is known (`viewer_id`: REST answers and recovery)."""
    by_emoji: dict[str, list[int]] = {}
    for reaction in sorted(message.reaction_set.all(), key=lambda r: r.pk):
        by_emoji.setdefault(reaction.emoji, []).append(reaction.user_id)
    summary = []
    for emoji, user_ids in by_emoji.items():
        item = ReactionData(emoji=emoji, count=len(user_ids), user_ids=user_ids)
        if viewer_id is not None:
            item["me"] = viewer_id in user_ids
        summary.append(item)
    return summary


def attachment_data(attachment: Attachment) -> FileData:
    return {
        "id": attachment.pk,
        "url": reverse("attachment-file", args=[attachment.pk]),
        "name": attachment.name,
        "size": attachment.size,
        "content_type": attachment.content_type,
    }


class AttachmentSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()

    class Meta:
        model = Attachment
        fields = ["id", "url", "name", "size", "content_type"]
        read_only_fields = fields

    def get_url(self, attachment: Attachment) -> str:
        return attachment_data(attachment)["url"]


class _StrictJSONObject(serializers.JSONField):
    def to_internal_value(self, data: Any) -> Any:
        data = super().to_internal_value(data)
        if not isinstance(data, dict):
            raise serializers.ValidationError("Must be a JSON object.")
        if has_forbidden_chars(data):
            raise serializers.ValidationError("Contains a NUL or a lone surrogate character.")
        if len(json.dumps(data, ensure_ascii=False).encode()) > MAX_PAYLOAD_BYTES:
            raise serializers.ValidationError(f"Must be at most {MAX_PAYLOAD_BYTES} bytes.")
        return data


class MessageCreateSerializer(serializers.Serializer):
    """What a client sends to post a message, over REST (`POST …/messages/`) and the socket.

    Character checks and the length limit live in `services.clean_text`, shared by both.
    """

    content = serializers.CharField(
        required=False, allow_blank=True, trim_whitespace=False, default=""
    )
    type = serializers.ChoiceField(choices=Message.Type.choices, default=Message.Type.TEXT)
    title = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, max_length=MAX_TITLE_LENGTH
    )
    payload = _StrictJSONObject(required=False, default=dict)
    attachment_urls = serializers.ListField(
        child=serializers.CharField(
            max_length=2000, validators=[URLValidator(schemes=["http", "https"])]
        ),
        required=False,
        default=list,
        max_length=MAX_ATTACHMENT_URLS,
    )
    attachments = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_ID),
        required=False,
        default=list,
        max_length=MAX_ATTACHMENT_URLS,
    )
    reply_to = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=MAX_ID
    )
    client_id = serializers.CharField(required=False, allow_null=True, max_length=64)


class MessagePageSerializer(serializers.Serializer):
    results = MessageSerializer(many=True)
    has_more = serializers.BooleanField()
    has_more_before = serializers.BooleanField(
        required=False, help_text="`around` only: there are older messages"
    )
    has_more_after = serializers.BooleanField(
        required=False, help_text="`around` only: there are newer messages"
    )
    pos = serializers.IntegerField(help_text="the room's current stream position")


class MessageEditSerializer(serializers.Serializer):
    content = serializers.CharField(trim_whitespace=False)


class ReactionSerializer(serializers.Serializer):
    emoji = serializers.CharField(max_length=32, trim_whitespace=False)


class SearchPageSerializer(serializers.Serializer):
    results = MessageSerializer(many=True)
    next = serializers.URLField(allow_null=True)


class StatsSerializer(serializers.Serializer):
    connections = serializers.IntegerField(help_text="open sockets, all processes")
    online_users = serializers.IntegerField()
    rooms = serializers.IntegerField()
    messages = serializers.IntegerField()
    messages_last_minute = serializers.IntegerField()
    uptime_seconds = serializers.IntegerField(help_text="of the oldest running process")
    processes = serializers.ListField(
        child=serializers.DictField(), required=False, help_text="staff only: per process"
    )
