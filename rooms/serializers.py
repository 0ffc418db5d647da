from collections.abc import Iterable
from typing import Any

from django.db.models.manager import BaseManager
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.models import User
from accounts.serializers import UserBriefSerializer, UserSerializer
from rooms.models import Membership, Room

# The largest id the databases store (a signed 64-bit integer): a larger one is invalid
# input, not a query (SQLite would fail it with an OverflowError, a 500).
MAX_ID = 2**63 - 1


def direct_peer_id(room: Room) -> int | None:
    """The other member of a direct room (`peer_id` from `rooms_for_listing`), or the
    user themself in a room with themself (its `direct_key` is "<id>:<same id>")."""
    if room.kind != Room.Kind.DIRECT:
        return None
    peer_id = getattr(room, "peer_id", None)
    if peer_id is None and room.direct_key:
        low, _, high = room.direct_key.partition(":")
        if low == high and low.isdigit():
            return int(low)
    return peer_id


def direct_peers(rooms: Iterable[Room]) -> dict[int, dict[str, Any]]:
    """The peers of the direct rooms among `rooms`, by id, in one query (none without)."""
    ids = {peer_id for room in rooms if (peer_id := direct_peer_id(room)) is not None}
    if not ids:
        return {}
    users = User.objects.filter(pk__in=ids).only(
        "id", "username", "display_name", "is_bot", "is_guest", "avatar"
    )
    return {user.pk: UserBriefSerializer(user).data for user in users}


class RoomListSerializer(serializers.ListSerializer):
    """Rooms in bulk: the peers of all their direct rooms are read with one query."""

    def to_representation(self, data: Any) -> list[dict[str, Any]]:
        rooms = list(data.all() if isinstance(data, BaseManager) else data)
        self.peers = direct_peers(rooms)
        return super().to_representation(rooms)


class RoomSerializer(serializers.ModelSerializer):
    """A room as the list and detail endpoints show it.

    Expects a queryset from `selectors.rooms_for_listing` (member_count, my_role,
    unread_count annotations) and `online_counts` in the context. Use it with
    `many=True` (as `views.render_rooms` does): the direct rooms' peers are then read
    with one query for all.
    """

    # A Unicode slug: the SlugField's `^[-\w]+$` means ASCII-only `\w` to OpenAPI clients.
    slug = serializers.CharField(read_only=True)
    member_count = serializers.IntegerField(read_only=True)
    online_count = serializers.SerializerMethodField()
    unread_count = serializers.IntegerField(read_only=True)
    mention_count = serializers.IntegerField(
        read_only=True, help_text="mentions of me after my read marker (@name, @here, @room)"
    )
    muted = serializers.BooleanField(
        read_only=True, help_text="I muted the room: no unread badge, notify on mentions only"
    )
    my_role = serializers.CharField(read_only=True, allow_null=True)
    created_by = serializers.PrimaryKeyRelatedField[User](read_only=True, allow_null=True)
    peer_id = serializers.IntegerField(
        read_only=True, allow_null=True, help_text="direct rooms: the other member's id"
    )
    peer = serializers.SerializerMethodField(
        help_text="direct rooms: the other member (yourself in a room with yourself), else null"
    )

    class Meta:
        model = Room
        fields = [
            "id",
            "name",
            "slug",
            "description",
            "kind",
            "created_by",
            "created_at",
            "member_count",
            "online_count",
            "last_message_at",
            "unread_count",
            "mention_count",
            "muted",
            "is_archived",
            "my_role",
            "pos",
            "peer_id",
            "peer",
            "is_general",
        ]
        read_only_fields = fields
        list_serializer_class = RoomListSerializer

    def get_online_count(self, room: Room) -> int:
        return self.context.get("online_counts", {}).get(room.pk, 0)

    @extend_schema_field(UserBriefSerializer(allow_null=True))
    def get_peer(self, room: Room) -> dict[str, Any] | None:
        peer_id = direct_peer_id(room)
        if peer_id is None:
            return None
        peers = getattr(self.parent, "peers", None)
        if peers is None:  # a single room, not through RoomListSerializer
            peers = direct_peers([room])
        return peers.get(peer_id)


class RoomCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=80)
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    kind = serializers.ChoiceField(
        choices=[Room.Kind.PUBLIC, Room.Kind.PRIVATE], default=Room.Kind.PUBLIC
    )


class RoomUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=80, required=False)
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    is_archived = serializers.BooleanField(required=False)


class MemberSerializer(serializers.ModelSerializer):
    user = UserSerializer(read_only=True)
    is_online = serializers.SerializerMethodField()

    class Meta:
        model = Membership
        fields = ["user", "role", "joined_at", "is_online"]
        read_only_fields = fields

    def get_is_online(self, membership: Membership) -> bool:
        return membership.user_id in self.context.get("online_ids", set())


class MemberSetSerializer(serializers.Serializer):
    user_id = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    role = serializers.ChoiceField(choices=Membership.Role.choices, default=Membership.Role.MEMBER)


class DirectRoomSerializer(serializers.Serializer):
    user_id = serializers.IntegerField(min_value=1, max_value=MAX_ID)


class ReadMarkerSerializer(serializers.Serializer):
    message_id = serializers.IntegerField(min_value=1, max_value=MAX_ID)


class ReadStateSerializer(serializers.Serializer):
    room = serializers.IntegerField()
    last_read_seq = serializers.IntegerField()
    unread_count = serializers.IntegerField()
    mention_count = serializers.IntegerField()


class MembershipUpdateSerializer(serializers.Serializer):
    muted = serializers.BooleanField()


class MembershipStateSerializer(ReadStateSerializer):
    """My membership of a room (`PATCH /api/rooms/{id}/membership/`)."""

    role = serializers.ChoiceField(choices=Membership.Role.choices)
    muted = serializers.BooleanField()
