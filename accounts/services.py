"""Writes of accounts: registration, tokens, profile."""

from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.models import User
from chatproject import events, throttle
from chatproject.broadcast import broadcast_user_event
from chatproject.errors import Unauthenticated, ValidationFailed

USERNAME_TAKEN = "A user with that username already exists."


def issue_tokens(*, user: User) -> dict[str, str]:
    refresh = RefreshToken.for_user(user)
    return {"access": str(refresh.access_token), "refresh": str(refresh)}


def register_user(*, username: str, password: str, email: str = "", display_name: str = "") -> User:
    if User.objects.filter(username__iexact=username).exists():
        raise ValidationFailed(USERNAME_TAKEN, fields={"username": [USERNAME_TAKEN]})
    user = User(username=username, email=email, display_name=display_name)
    try:
        validate_password(password, user=user)
    except DjangoValidationError as exc:
        raise ValidationFailed(exc.messages[0], fields={"password": exc.messages}) from None
    user.set_password(password)
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError:  # a concurrent registration took the name first
        raise ValidationFailed(USERNAME_TAKEN, fields={"username": [USERNAME_TAKEN]}) from None
    return user


def login_user(*, username: str, password: str, request: Any = None) -> User:
    user = authenticate(request, username=username, password=password)
    if user is None:
        # Case-insensitive usernames: "Alice" logs in the account stored as "alice".
        stored = User.objects.filter(username__iexact=username).values_list("username", flat=True)
        if stored and stored[0] != username:
            user = authenticate(request, username=stored[0], password=password)
    if user is None:
        raise Unauthenticated("No active account with these credentials.")
    return user


def revoke_refresh_token(*, refresh: str) -> None:
    try:
        # simplejwt annotates Token.__init__'s `token` as `Token | None`, but it takes the
        # encoded JWT (str or bytes), as its own TokenRefreshSerializer passes it.
        RefreshToken(refresh).blacklist()  # type: ignore[arg-type]
    except TokenError as exc:
        raise Unauthenticated(str(exc)) from None


def update_profile(*, user: User, display_name: str | None = None) -> User:
    if display_name is not None:
        user.display_name = display_name
        user.save(update_fields=["display_name"])
    return user


def mark_seen(*, user_id: int, at: datetime | None = None) -> None:
    User.objects.filter(pk=user_id).update(last_seen=at or timezone.now())


def set_active(*, user: User, active: bool) -> User:
    """Activate or deactivate an account. Deactivation closes the user's sockets on every
    process (4401) after the commit, and their tokens stop working at once (every
    request and socket checks `is_active`)."""
    with transaction.atomic():
        User.objects.filter(pk=user.pk).update(is_active=active)
        user.is_active = active
        if not active:
            broadcast_user_event(user.pk, events.user_deactivated())
    return user


def check_auth_rate(*, address: str) -> None:
    """AUTH_RATE_LIMIT: login and register attempts together, per client address; every
    attempt counts, good or bad (brute force and account spraying alike)."""
    throttle.spend(
        f"auth:{address}",
        rate=settings.AUTH_RATE_LIMIT,
        budget="auth",
        refusal="Too many sign-in attempts from your address; try again in {retry_after} s.",
    )
