import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from rooms.models import Room


class Message(models.Model):
    class Type(models.TextChoices):
        TEXT = "text"
        SYSTEM = "system"
        ANNOUNCEMENT = "announcement"

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="messages")
    # `seq`: the room position that created the message; `pos`: the position of its
    # latest change (equal to seq until edited, deleted or reacted to).
    seq = models.PositiveBigIntegerField()
    pos = models.PositiveBigIntegerField()
    sender = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="messages",
    )
    type = models.CharField(max_length=16, choices=Type.choices, default=Type.TEXT)
    content = models.TextField(blank=True)
    # `content` rendered from Markdown and sanitized (`messaging.rendering`), once, when it
    # is stored or edited: every client shows the same thing.
    content_html = models.TextField(blank=True, default="")
    # The users the message mentions (`@username`, `@here`), and `@room` (every member).
    mentions = models.JSONField(default=list, blank=True)
    mentions_room = models.BooleanField(default=False)
    title = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001 (API: null)
    payload = models.JSONField(default=dict, blank=True)
    attachment_urls = models.JSONField(default=list, blank=True)
    reply_to = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replies"
    )
    # Sender-scoped idempotency key: a retry with the same key returns the first message.
    client_id = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    edited_at = models.DateTimeField(null=True, blank=True)
    deleted = models.BooleanField(default=False)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["room", "seq"], name="message_room_seq_unique"),
            models.UniqueConstraint(fields=["room", "pos"], name="message_room_pos_unique"),
            models.UniqueConstraint(
                fields=["sender", "client_id"], name="message_sender_client_id_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} in room {self.room_id}"


class Mention(models.Model):
    """A user mentioned by a message (by name or `@here`): what `mention_count` counts,
    with the messages that mention `@room`."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="+")
    seq = models.PositiveBigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["message", "user"], name="mention_once_per_user"),
        ]
        indexes = [models.Index(fields=["user", "room", "seq"])]

    def __str__(self) -> str:
        return f"user {self.user_id} in {self.message_id}"


class Reaction(models.Model):
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="reaction_set")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    emoji = models.CharField(max_length=32)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["message", "user", "emoji"], name="reaction_once_per_user"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.emoji} by {self.user_id} on {self.message_id}"


def attachment_path(attachment: "Attachment", filename: str) -> str:
    # The stored name is ours; the client's name is kept in `name` and never used as a path.
    return f"attachments/{timezone.now():%Y/%m}/{uuid.uuid4().hex}"


class Attachment(models.Model):
    """An uploaded file. Private to its uploader until a message references it."""

    uploader = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    file = models.FileField(upload_to=attachment_path, max_length=200)
    name = models.CharField(max_length=200)
    size = models.PositiveBigIntegerField()
    content_type = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)
    message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.CASCADE, related_name="files"
    )

    def __str__(self) -> str:
        return self.name
