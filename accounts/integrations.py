"""Integration keys (SPEC 9.2): issuing, revoking, and the check every key passes.

A key is `chat_` and 43 URL-safe characters (256 random bits): its prefix tells it apart
from a JWT in the same `Authorization: Bearer` header, and its entropy makes a lookup by
its SHA-256 safe (no salt or slow hash is needed against guessing; the hash is compared by
the database's unique index, so no secret is compared in Python). The key is returned
once, by `issue_api_key`; only its hash and a display prefix are stored.

Each key acts as its own bot user (`User.is_bot`, no usable password, so it signs in
nowhere else), confined to the key's rooms: the integration views check the scope
(`may_post`) and post through the one write path under the bot's `CHAT_RATE_LIMIT`.
"""

import hashlib
import re
import secrets
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from accounts.models import ApiKey, User
from accounts.services import check_display_name
from chatproject.errors import Forbidden, Unauthenticated, ValidationFailed

KEY_PREFIX = "chat_"
_KEY_RE = re.compile(r"chat_[A-Za-z0-9_-]{43}\Z")
# How often `last_used_at` is written: a busy key does not write its row on every post.
_TOUCH_EVERY = timedelta(minutes=1)


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode("ascii")).hexdigest()


def looks_like_key(raw: str) -> bool:
    """Whether a bearer credential is meant as an integration key (not a JWT)."""
    return raw.startswith(KEY_PREFIX)


def _bot_username(name: str) -> str:
    """`bot-<name's letters>-<random>`: within the username rule, never a person's (the
    random tail avoids clashes; the `bot-` start is only a hint, `is_bot` is the mark)."""
    stem = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()[:16] or "key"
    return f"bot-{stem}-{secrets.token_hex(3)}"


def issue_api_key(
    *,
    name: str,
    room_ids: Iterable[int],
    created_by: User | None,
    instance: ApiKey | None = None,
) -> tuple[ApiKey, str]:
    """A new key named `name`, scoped to `room_ids`, with its own bot user. Returns the
    key's row and the key itself, which is never stored and cannot be shown again.
    Raises ValidationFailed for a name that breaks the display-name rules.

    `instance`: an unsaved `ApiKey` to fill in (the admin's add form holds one)."""
    # The bot is shown under the key's name: the display-name rules apply (no invisible
    # characters, not another user's username), so a key cannot pass for a person.
    shown = check_display_name(display_name=name)
    if not shown:
        raise ValidationFailed("A key needs a name.", fields={"name": ["This field is required."]})
    raw = KEY_PREFIX + secrets.token_urlsafe(32)
    key = instance if instance is not None else ApiKey()
    key.name = shown
    with transaction.atomic():
        bot = User(username=_bot_username(shown), display_name=shown, is_bot=True)
        bot.set_unusable_password()
        bot.save()
        key.bot = bot
        key.prefix = raw[: len(KEY_PREFIX) + 6]
        key.key_hash = _digest(raw)
        key.created_by = created_by
        key.save()
        key.rooms.set(list(room_ids))
    return key, raw


def revoke_api_key(*, key: ApiKey) -> None:
    """The key stops working at once, on every process (each use reads its row)."""
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        ApiKey.objects.filter(pk=key.pk, revoked_at=None).update(revoked_at=key.revoked_at)


def bot_for_key(raw: str) -> tuple[User, ApiKey]:
    """The bot user and key row of an integration key. Raises Unauthenticated for a
    malformed, unknown or revoked key, or one whose bot was deactivated."""
    if not isinstance(raw, str) or not _KEY_RE.match(raw):
        raise Unauthenticated("Malformed integration key.")
    try:
        key = ApiKey.objects.select_related("bot").get(key_hash=_digest(raw))
    except ApiKey.DoesNotExist:
        raise Unauthenticated("Unknown integration key.") from None
    if key.revoked_at is not None:
        raise Unauthenticated("This integration key was revoked.")
    if not key.bot.is_active:
        raise Unauthenticated("This integration key's bot was deactivated.")
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > _TOUCH_EVERY:
        key.last_used_at = now
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
    return key.bot, key


def may_post(*, key: ApiKey, room_id: int) -> bool:
    """Whether the key's scope includes the room."""
    return key.rooms.filter(pk=room_id).exists()


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer chat_…` for the views that take integration keys (those
    with `integration_keys = True`: `POST /messages`). Any other bearer credential is
    left to the JWT authentication that follows; a key on any other view is refused
    (403), so a bot never joins rooms, creates them or reads beyond its scope."""

    def authenticate(self, request: Request) -> tuple[User, ApiKey] | None:
        header = authentication.get_authorization_header(request).split()
        if len(header) != 2 or header[0].lower() != b"bearer":
            return None
        try:
            raw = header[1].decode("ascii")
        except UnicodeDecodeError:
            return None
        if not looks_like_key(raw):
            return None
        try:
            bot, key = bot_for_key(raw)
        except Unauthenticated as exc:
            # DRF's own refusal, so that the request is left unauthenticated (401).
            raise exceptions.AuthenticationFailed(exc.message, code=exc.code) from None
        view: Any = (request.parser_context or {}).get("view")
        if not getattr(view, "integration_keys", False):
            raise exceptions.PermissionDenied(
                "Integration keys may only post messages (POST /messages, the webhooks).",
                code=Forbidden.code,
            )
        return bot, key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """The OpenAPI document shows integration keys as a bearer scheme of their own."""

    target_class = "accounts.integrations.ApiKeyAuthentication"
    name = "integrationKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An integration key (`chat_…`), for POST /messages only.",
        }
