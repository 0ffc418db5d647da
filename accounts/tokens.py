"""JWTs: issuing, rotating, and the one check every token passes (REST and sockets).

Two claims of our own ride on every token (an access token copies them from its refresh):

- `gen`: the user's `token_generation` when the user signed in. Revoking the user's
  credentials raises the generation, which ends every token issued before (a token
  without the claim counts as generation 0).
- `auth_time`: when the user signed in (epoch seconds). A rotated refresh token keeps it,
  so a chain of refreshes ends `JWT_REFRESH_MAX_DAYS` after the sign-in that began it
  (the refresh token's `exp` never passes that moment).
"""

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from rest_framework_simplejwt import authentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken, TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken, Token
from rest_framework_simplejwt.utils import datetime_from_epoch

from accounts.models import User
from chatproject.errors import Unauthenticated

GENERATION_CLAIM = "gen"
AUTH_TIME_CLAIM = "auth_time"


def _refresh_for(user: User, *, auth_time: int | None) -> RefreshToken:
    """A new refresh token of `user` under their current generation, recorded as
    outstanding (so that a revocation can blacklist it)."""
    refresh = RefreshToken()
    refresh[api_settings.USER_ID_CLAIM] = str(user.pk)
    refresh[GENERATION_CLAIM] = user.token_generation
    signed_in = int(refresh["iat"]) if auth_time is None else auth_time
    refresh[AUTH_TIME_CLAIM] = signed_in
    absolute_end = signed_in + int(timedelta(days=settings.JWT_REFRESH_MAX_DAYS).total_seconds())
    refresh["exp"] = min(int(refresh["exp"]), absolute_end)
    OutstandingToken.objects.create(
        user=user,
        jti=refresh[api_settings.JTI_CLAIM],
        token=str(refresh),
        created_at=refresh.current_time,
        expires_at=datetime_from_epoch(refresh["exp"]),
    )
    return refresh


def issue_tokens(*, user: User) -> dict[str, str]:
    """A fresh sign-in: an access and a refresh token."""
    refresh = _refresh_for(user, auth_time=None)
    return {"access": str(refresh.access_token), "refresh": str(refresh)}


def check_current(token: Token | dict[str, Any], user: User) -> None:
    """Refuse a token issued before the user's credentials were last revoked."""
    try:
        generation = int(token.get(GENERATION_CLAIM, 0))
    except (TypeError, ValueError):
        generation = -1
    if generation != user.token_generation:
        raise Unauthenticated("This token was revoked; sign in again.")


def _decode_refresh(raw: str) -> RefreshToken:
    try:
        # simplejwt annotates Token.__init__'s `token` as `Token | None`, but it takes the
        # encoded JWT (str or bytes), as its own TokenRefreshSerializer passes it. It
        # checks the signature, `exp`, the token type and the blacklist.
        return RefreshToken(raw)  # type: ignore[arg-type]
    except TokenError as exc:
        raise Unauthenticated(str(exc)) from None


def _active_user_of(token: Token) -> User:
    """The active user a token names; a deleted or deactivated one is a 401, never a 500."""
    try:
        user = User.objects.get(pk=token[api_settings.USER_ID_CLAIM])
    except (KeyError, User.DoesNotExist, ValueError, TypeError):
        raise Unauthenticated("No active account for this token.") from None
    if not user.is_active:
        raise Unauthenticated("No active account for this token.")
    return user


def rotate_refresh_token(*, refresh: str) -> dict[str, str]:
    """A new access and refresh token for a valid refresh token, which is blacklisted.

    A token presented twice (replayed, or two refreshes racing) yields one new pair: the
    blacklist entry is made in the same transaction, and only one transaction makes it.
    The new refresh token keeps the sign-in time of the old one (`auth_time`)."""
    token = _decode_refresh(refresh)
    user = _active_user_of(token)
    check_current(token, user)
    auth_time = token.get(AUTH_TIME_CLAIM)
    if not isinstance(auth_time, int):  # issued before the claim existed: count from then
        auth_time = int(token["iat"])
    max_age = timedelta(days=settings.JWT_REFRESH_MAX_DAYS).total_seconds()
    if token.current_time.timestamp() - auth_time >= max_age:
        raise Unauthenticated(
            f"This sign-in is older than {settings.JWT_REFRESH_MAX_DAYS} days; sign in again."
        )
    with transaction.atomic():
        outstanding, _ = OutstandingToken.objects.get_or_create(
            jti=token[api_settings.JTI_CLAIM],
            defaults={
                "user": user,
                "token": refresh,
                "created_at": token.current_time,
                "expires_at": datetime_from_epoch(token["exp"]),
            },
        )
        _, created = BlacklistedToken.objects.get_or_create(token=outstanding)
        if not created:
            raise Unauthenticated("Token is blacklisted")
        fresh = _refresh_for(user, auth_time=auth_time)
    return {"access": str(fresh.access_token), "refresh": str(fresh)}


def revoke_refresh_token(*, refresh: str) -> None:
    """Sign out one refresh token (`POST /api/auth/logout/`)."""
    token = _decode_refresh(refresh)
    try:
        token.blacklist()
    except TokenError as exc:
        raise Unauthenticated(str(exc)) from None


def blacklist_outstanding(*, user: User) -> None:
    """Blacklist every refresh token of the user that has not expired yet."""
    pending = OutstandingToken.objects.filter(
        user=user, expires_at__gt=timezone.now(), blacklistedtoken__isnull=True
    )
    BlacklistedToken.objects.bulk_create(
        [BlacklistedToken(token=token) for token in pending], ignore_conflicts=True
    )


class JWTAuthentication(authentication.JWTAuthentication):
    """simplejwt's authentication for REST (`Authorization: Bearer`), which also refuses a
    token whose generation was revoked. Sockets use it too (`user_for_access_token`)."""

    # simplejwt declares the return type as a TypeVar bound to nothing it takes.
    def get_user(self, validated_token: Token) -> User:  # type: ignore[override]
        user = super().get_user(validated_token)
        if not isinstance(user, User):
            raise AuthenticationFailed("User not found", code="user_not_found")
        try:
            check_current(validated_token, user)
        except Unauthenticated as exc:
            raise AuthenticationFailed(exc.message, code="token_revoked") from None
        return user


def user_for_access_token(raw: str) -> tuple[User, int]:
    """The active user an access token names, and the token's expiry (epoch seconds).

    Only access tokens pass (a refresh token does not), signed with our key and algorithm;
    the user must exist and be active, and the token must not be revoked.
    """
    if not isinstance(raw, str) or not raw or len(raw) > 4096 or not raw.isascii():
        raise Unauthenticated("Invalid token.")
    auth = JWTAuthentication()
    try:
        # Bytes, as the REST API reads the Authorization header (`raw` is ASCII).
        validated = auth.get_validated_token(raw.encode("ascii"))
        user = auth.get_user(validated)
    except (InvalidToken, AuthenticationFailed, TokenError):
        raise Unauthenticated("Invalid or expired token.") from None
    if not isinstance(user, User) or not user.is_active:
        raise Unauthenticated("Invalid or expired token.")
    return user, int(validated["exp"])


class JWTScheme(SimpleJWTScheme):
    """The OpenAPI document shows `JWTAuthentication` as simplejwt's (`Bearer`, JWT)."""

    target_class = "accounts.tokens.JWTAuthentication"
