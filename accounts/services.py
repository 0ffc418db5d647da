"""Writes of accounts: registration, sign-in, tokens and their revocation, profile."""

from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from accounts import tokens
from accounts.guests import guest_held
from accounts.models import User
from accounts.names import clean_display_name, clean_username, normalize_name
from chatproject import events, throttle
from chatproject.broadcast import broadcast_user_event
from chatproject.errors import Unauthenticated, ValidationFailed

USERNAME_TAKEN = "A user with that username already exists."
DISPLAY_NAME_TAKEN = "That display name is another user's username."

issue_tokens = tokens.issue_tokens
rotate_refresh_token = tokens.rotate_refresh_token
revoke_refresh_token = tokens.revoke_refresh_token


def check_display_name(*, display_name: str, user_id: int | None = None) -> str:
    """The display name to store, or ValidationFailed: no invisible or direction-changing
    characters (`accounts.names`), and not another user's username (after NFKC, in any
    case), so that nobody can pass for "admin" in a member list."""
    name = clean_display_name(display_name)
    if name:
        others = User.objects.with_username(normalize_name(name))
        if user_id is not None:
            others = others.exclude(pk=user_id)
        if others.exists():
            message = DISPLAY_NAME_TAKEN
            raise ValidationFailed(message, fields={"display_name": [message]})
    return name


def register_user(*, username: str, password: str, email: str = "", display_name: str = "") -> User:
    """A new account, by the rules every way in shares (the API and the register page):
    the username rule (`accounts.names`), unique in any case, a display name that is
    nobody else's username, and Django's password validators."""
    username = clean_username(username)
    # An active guest's nickname too: a guest's name never equals a registered one.
    if User.objects.with_username(username).exists() or guest_held(username):
        raise ValidationFailed(USERNAME_TAKEN, fields={"username": [USERNAME_TAKEN]})
    display_name = check_display_name(display_name=display_name)
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
    """The account these credentials sign in, else Unauthenticated.

    One `authenticate` call, so exactly one password hash is computed whether the
    username exists or not (the lookup is case-insensitive in `UserManager`, and Django's
    ModelBackend hashes the password once for an unknown name): the answer's timing does
    not tell which usernames exist."""
    user = authenticate(request, username=normalize_name(username), password=password)
    if not isinstance(user, User):
        raise Unauthenticated("No active account with these credentials.")
    return user


def _raise_generation(user: User) -> int:
    """Raise the user's token generation and blacklist their refresh tokens; caller
    holds a transaction. Every token and session issued before stops working."""
    User.objects.filter(pk=user.pk).update(token_generation=F("token_generation") + 1)
    user.token_generation = User.objects.values_list("token_generation", flat=True).get(pk=user.pk)
    tokens.blacklist_outstanding(user=user)
    return user.token_generation


def revoke_credentials(*, user: User) -> None:
    """Sign the user out everywhere: every access and refresh token and every session
    they hold stops working at once, and their sockets authenticated by them are closed
    with 4401 on every process (after the commit). A password change (any path: see
    `accounts.signals`) and "sign out everywhere" come here."""
    with transaction.atomic():
        generation = _raise_generation(user)
        broadcast_user_event(user.pk, events.credentials_revoked(generation))


def change_password(*, user: User, password: str) -> User:
    """Set a new password (Django's validators apply); every other token and session of
    the user is revoked by the save (`accounts.signals`)."""
    try:
        validate_password(password, user=user)
    except DjangoValidationError as exc:
        raise ValidationFailed(exc.messages[0], fields={"password": exc.messages}) from None
    user.set_password(password)
    user.save(update_fields=["password"])
    return user


def change_own_password(*, user: User, old_password: str, new_password: str) -> User:
    """A user changing their password themselves: the old one must match, the new one
    pass Django's validators. Every token, session and socket of the user is revoked
    (`change_password`); the caller keeps its own by being issued new ones."""
    if not user.check_password(old_password):
        message = "The current password is not right."
        raise ValidationFailed(message, fields={"old_password": [message]})
    try:
        validate_password(new_password, user=user)
    except DjangoValidationError as exc:
        raise ValidationFailed(exc.messages[0], fields={"new_password": exc.messages}) from None
    return change_password(user=user, password=new_password)


def update_profile(*, user: User, display_name: str | None = None) -> User:
    if display_name is not None:
        user.display_name = check_display_name(display_name=display_name, user_id=user.pk)
        user.save(update_fields=["display_name"])
    return user


def mark_seen(*, user_id: int, at: datetime | None = None) -> None:
    User.objects.filter(pk=user_id).update(last_seen=at or timezone.now())


def set_active(*, user: User, active: bool) -> User:
    """Activate or deactivate an account. Deactivation closes the user's sockets on every
    process (4401) after the commit, and their tokens and sessions stop working at once
    (every request and socket checks `is_active`) and for good: they are revoked, so
    activating the account again does not bring them back."""
    with transaction.atomic():
        User.objects.filter(pk=user.pk).update(is_active=active)
        user.is_active = active
        if not active:
            _raise_generation(user)
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
