from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.contrib.auth.models import UserManager as DjangoUserManager
from django.db import models
from django.db.models.functions import Lower
from django.urls import reverse
from django.utils.crypto import salted_hmac

from accounts.names import USERNAME_RULE, validate_display_name, validate_username

_SESSION_HASH_SALT = "django.contrib.auth.models.AbstractBaseUser.get_session_auth_hash"


if TYPE_CHECKING:
    _Manager = DjangoUserManager["User"]
else:
    _Manager = DjangoUserManager


class UserManager(_Manager):
    def with_username(self, name: str) -> "models.QuerySet[User]":
        """The user named `name` in any case (at most one: the unique constraint), found
        through that constraint's index on `lower(username)`."""
        return self.alias(username_lower=Lower("username")).filter(username_lower=name.lower())

    def get_by_natural_key(self, username: str | None) -> "User":
        """Case-insensitive, as the unique constraint: "Alice" signs in the account
        "alice". Django's ModelBackend looks users up here, so every login form (the API,
        the pages, the admin) finds the account with one query and checks one password
        hash, and an unknown name costs the same one hash (ModelBackend hashes for it)."""
        return self.with_username(username or "").get()


def avatar_url(name: str) -> str:
    """The URL of a stored picture (`User.avatar.name`, `accounts.avatars`), served by
    `accounts.views.AvatarFileView`; "" for none."""
    if not name:
        return ""
    return reverse("avatar-file", args=[name.rpartition("/")[2]])


class User(AbstractUser):
    """A chat user. Usernames are unique regardless of case ("Alice" is "alice")."""

    username = models.CharField(
        "username",
        max_length=150,
        unique=True,
        help_text=USERNAME_RULE,
        validators=[validate_username],
        error_messages={"unique": "A user with that username already exists."},
    )
    display_name = models.CharField(max_length=64, blank=True, validators=[validate_display_name])
    last_seen = models.DateTimeField(null=True, blank=True)
    # Raised by `accounts.services.revoke_credentials` (a password change, "sign out
    # everywhere", a deactivation). Tokens carry the value they were issued under (the
    # `gen` claim) and sessions are bound to it (the session auth hash), so raising it
    # ends every token and session the user holds, on every process, at once.
    token_generation = models.PositiveIntegerField(default=0, editable=False)
    # Identities that are not people who registered (SPEC 9.2, 9.3): an integration key's
    # bot, and a guest who picked a nickname. Every API answer and the page mark them.
    is_bot = models.BooleanField(default=False, editable=False)
    is_guest = models.BooleanField(default=False, editable=False)
    # A picture the user uploaded, re-encoded by `accounts.avatars` (the page shows
    # initials when there is none).
    avatar = models.ImageField(upload_to="avatars/", max_length=200, blank=True, editable=False)
    # The user's own stream (SPEC 12): the position of the latest change to the user's
    # rooms (`rooms.userstream`). Advanced only under a lock on this row.
    stream_pos = models.PositiveBigIntegerField(default=0, editable=False)

    objects: ClassVar[UserManager] = UserManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("username"), name="user_username_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.username

    @property
    def shown_name(self) -> str:
        return self.display_name or self.username

    @property
    def avatar_url(self) -> str:
        """The URL of the user's picture (`accounts.avatars`); "" when there is none."""
        return avatar_url(self.avatar.name or "")

    # A session stays signed in while the hash it stored at login matches (Django's
    # `get_user`). Django hashes the password hash; ours adds the token generation, so a
    # revocation ends every session too, whatever the session engine. Generation 0 hashes
    # as Django does: sessions made before this field existed stay valid.

    def get_session_auth_hash(self) -> str:
        return self._session_hash(secret=None)

    def get_session_auth_fallback_hash(self) -> Iterator[str]:
        for fallback_secret in settings.SECRET_KEY_FALLBACKS:
            yield self._session_hash(secret=fallback_secret)

    def _session_hash(self, *, secret: str | bytes | None) -> str:
        value = self.password
        if self.token_generation:
            value = f"{value}:{self.token_generation}"
        return salted_hmac(_SESSION_HASH_SALT, value, secret=secret, algorithm="sha256").hexdigest()


class ApiKey(models.Model):
    """An integration key (SPEC 9.2): a secret that lets a script post as a bot user into
    the rooms it is scoped to (`accounts.integrations`). Only its SHA-256 is stored; the
    key itself is shown once, when it is issued.

    `rooms` names the room model by string: accounts never imports rooms (the layers of
    pyproject's import-linter contracts); the key's scope is read through this relation."""

    name = models.CharField(max_length=64)
    bot = models.OneToOneField(
        User, on_delete=models.CASCADE, related_name="api_key", editable=False
    )
    # The key's first characters, to tell keys apart in lists (never enough to use it).
    prefix = models.CharField(max_length=16, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    rooms = models.ManyToManyField("rooms.Room", related_name="api_keys")
    created_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "integration key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None
