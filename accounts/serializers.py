from typing import Any

from rest_framework import serializers

from accounts.models import User
from accounts.names import DISPLAY_NAME_MAX_LENGTH, USERNAME_RULE
from accounts.selectors import online_user_ids
from chatproject.events import user_brief


class UserSerializer(serializers.ModelSerializer):
    """A user as other users see them. `is_online` comes from the `online_ids` context."""

    is_online = serializers.SerializerMethodField()
    avatar = serializers.SerializerMethodField(help_text="the URL of the user's picture, or null")

    class Meta:
        model = User
        # `is_guest`: a nickname without an account (SPEC 9.3), marked in every answer;
        # `is_bot`: an integration key's bot (SPEC 9.2).
        fields = [
            "id",
            "username",
            "display_name",
            "is_online",
            "last_seen",
            "is_guest",
            "is_bot",
            "avatar",
        ]
        read_only_fields = fields

    def get_avatar(self, user: User) -> str | None:
        return user.avatar_url or None

    def get_is_online(self, user: User) -> bool:
        online_ids = self.context.get("online_ids")
        if online_ids is None:
            return user.pk in online_user_ids([user.pk])
        return user.pk in online_ids


class MeSerializer(UserSerializer):
    # Not an EmailField: an account registered without an email has "" (no `format: email`).
    email = serializers.CharField(read_only=True)

    class Meta(UserSerializer.Meta):
        fields = [*UserSerializer.Meta.fields, "email", "is_staff", "date_joined"]
        read_only_fields = [f for f in fields if f != "display_name"]


class UserBriefSerializer(serializers.ModelSerializer):
    """The sender of a message: enough to show it, no presence lookup. `is_bot` and
    `is_guest` are present (true) only for a bot or a guest, `avatar` (the picture's URL)
    only for a user who has one (`events.UserBrief`)."""

    is_bot = serializers.BooleanField(read_only=True, required=False)
    is_guest = serializers.BooleanField(read_only=True, required=False)
    avatar = serializers.CharField(
        read_only=True, required=False, help_text="the URL of the user's picture, if any"
    )

    class Meta:
        model = User
        fields = ["id", "username", "display_name", "is_bot", "is_guest", "avatar"]
        read_only_fields = fields

    def to_representation(self, user: User) -> dict[str, Any]:
        return dict(user_brief(user))


class RegisterSerializer(serializers.Serializer):
    """The documented shape; the rules (`accounts.names`, shared with the register page
    and the admin) are applied by `accounts.services.register_user`."""

    username = serializers.CharField(min_length=1, max_length=150, help_text=USERNAME_RULE)
    password = serializers.CharField(write_only=True, max_length=128, trim_whitespace=False)
    email = serializers.EmailField(required=False, allow_blank=True, default="")
    display_name = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=DISPLAY_NAME_MAX_LENGTH
    )


class LoginSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=128, trim_whitespace=False)


class RefreshTokenSerializer(serializers.Serializer):
    refresh = serializers.CharField()


class LogoutSerializer(serializers.Serializer):
    """One refresh token, or `all` (authenticated): every token and session of the user."""

    refresh = serializers.CharField(required=False)
    all = serializers.BooleanField(required=False, default=False)

    def validate(self, attrs: dict) -> dict:
        if not attrs["all"] and not attrs.get("refresh"):
            raise serializers.ValidationError(
                {"refresh": ["This field is required (or send `all: true`)."]}
            )
        return attrs


class TokenPairSerializer(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()


class AuthResultSerializer(serializers.Serializer):
    user = MeSerializer()
    access = serializers.CharField()
    refresh = serializers.CharField()


class PasswordChangeSerializer(serializers.Serializer):
    old_password = serializers.CharField(max_length=128, trim_whitespace=False)
    new_password = serializers.CharField(max_length=128, trim_whitespace=False)


class ProfileUpdateSerializer(serializers.Serializer):
    display_name = serializers.CharField(
        allow_blank=True, max_length=DISPLAY_NAME_MAX_LENGTH, required=False
    )
