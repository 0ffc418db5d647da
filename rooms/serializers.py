from rest_framework import serializers

from accounts.serializers import UserSerializer
from rooms.models import Membership, Room


class RoomSerializer(serializers.ModelSerializer):
    """A room as the list and detail endpoints show it.

    Expects a queryset from `selectors.rooms_for_listing` (member_count, my_role,
    unread_count annotations) and `online_counts` in the context.
    """

    # A Unicode slug: the SlugField's `^[-\w]+$` means ASCII-only `\w` to OpenAPI clients.
    slug = serializers.CharField(read_only=True)
    member_count = serializers.IntegerField(read_only=True)
    online_count = serializers.SerializerMethodField()
    unread_count = serializers.IntegerField(read_only=True)
    my_role = serializers.CharField(read_only=True, allow_null=True)
    created_by = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    peer_id = serializers.IntegerField(
        read_only=True, allow_null=True, help_text="direct rooms: the other member's id"
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
            "is_archived",
            "my_role",
            "pos",
            "peer_id",
        ]
        read_only_fields = fields

    def get_online_count(self, room: Room) -> int:
        return self.context.get("online_counts", {}).get(room.pk, 0)


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
    user_id = serializers.IntegerField(min_value=1)
    role = serializers.ChoiceField(choices=Membership.Role.choices, default=Membership.Role.MEMBER)


class DirectRoomSerializer(serializers.Serializer):
    user_id = serializers.IntegerField(min_value=1)


class ReadMarkerSerializer(serializers.Serializer):
    message_id = serializers.IntegerField(min_value=1)


class ReadStateSerializer(serializers.Serializer):
    room = serializers.IntegerField()
    last_read_seq = serializers.IntegerField()
    unread_count = serializers.IntegerField()
