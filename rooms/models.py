from django.conf import settings
from django.db import models
from django.db.models.functions import Lower


class Room(models.Model):
    class Kind(models.TextChoices):
        PUBLIC = "public"
        PRIVATE = "private"
        DIRECT = "direct"

    name = models.CharField(max_length=80)
    slug = models.SlugField(max_length=100, unique=True, allow_unicode=True)
    description = models.CharField(max_length=500, blank=True)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.PUBLIC)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    is_archived = models.BooleanField(default=False)
    # The room stream: the position of the latest change (message or edit of one).
    # Advanced only under a lock on this row, in the transaction of the change.
    pos = models.PositiveBigIntegerField(default=0, editable=False)
    last_message_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The room everyone has (seed_general_room): never deleted, renamed or archived.
    is_general = models.BooleanField(default=False, editable=False)
    # For direct rooms, "<low user id>:<high user id>": at most one room per pair.
    direct_key = models.CharField(max_length=40, null=True, blank=True, unique=True, editable=False)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="rooms"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                Lower("name"),
                condition=~models.Q(kind="direct"),
                name="room_name_ci_unique",
            ),
            models.UniqueConstraint(
                fields=["is_general"], condition=models.Q(is_general=True), name="one_general_room"
            ),
        ]
        indexes = [models.Index(fields=["kind", "is_archived"])]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner"
        ADMIN = "admin"
        MEMBER = "member"

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=8, choices=Role.choices, default=Role.MEMBER)
    joined_at = models.DateTimeField(auto_now_add=True)
    # The room position the member has read up to; unread = messages with a greater seq.
    last_read_pos = models.PositiveBigIntegerField(default=0)
    # A muted room shows no unread badge and notifies only on mentions (SPEC 11).
    muted = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["room", "user"], name="membership_unique"),
        ]
        indexes = [models.Index(fields=["user", "room"])]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.room_id} ({self.role})"

    @property
    def can_manage(self) -> bool:
        return self.role in (Membership.Role.OWNER, Membership.Role.ADMIN)


class UserChange(models.Model):
    """One change in a user's own stream (SPEC 12): the frame that told the user's sockets,
    kept so that a socket that was away replays it (`after_user`). `pos` is the user's
    position after the change (`User.stream_pos`), gapless per user."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    pos = models.PositiveBigIntegerField()
    # The room the change is about (a read marker superseded by a later one is dropped).
    room_id = models.BigIntegerField(null=True, blank=True)
    frame = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "pos"], name="userchange_user_pos_unique"),
        ]

    def __str__(self) -> str:
        return f"#{self.pos} of user {self.user_id}"
