"""Django sessions as a socket sees them: who a session cookie signs in, until when, and
the digest by which a sign-out names the session to the sockets it opened.

A socket opened with the session cookie ends with its session: on sign-out (the
`session_ended` event, `accounts.signals`), on its expiry (the consumer re-checks the
session when its expiry date comes, `session_expiry`), and when the user's credentials
are revoked (the session auth hash includes the token generation: `User`).
"""

import hashlib
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest

from accounts.models import User


@dataclass(frozen=True, slots=True)
class SocketSession:
    """The session a socket was authenticated by."""

    key: str
    digest: str  # what `session_ended` carries: the key itself never leaves the process
    expires: float  # epoch seconds


def session_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _expiry(store: Any) -> float:
    """When the stored session expires. The database engines keep the date in the row
    (`get_expiry_date()` without a custom expiry counts from now); other engines: the
    latest it can be, and the re-check at that time finds out."""
    row = store._get_session_from_db() if hasattr(store, "_get_session_from_db") else None
    if row is not None:
        return row.expire_date.timestamp()
    return store.get_expiry_date().timestamp()


def session_user(key: str) -> tuple[User | AnonymousUser, SocketSession | None]:
    """The user the session `key` signs in, checked as Django's `get_user` checks it for a
    request (the session's auth hash included, so a revoked session signs in nobody), and
    the session; AnonymousUser and None without a valid session."""
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key=key)
    request = HttpRequest()
    request.session = store
    user = get_user(request)
    if not isinstance(user, User) or not user.is_active:
        return AnonymousUser(), None
    return user, SocketSession(key=key, digest=session_digest(key), expires=_expiry(store))


def session_expiry(*, key: str, user_id: int) -> float | None:
    """When the session `key` of the user ends now (epoch seconds), or None when it has
    ended (signed out, expired, revoked) or signs in someone else."""
    user, session = session_user(key)
    if session is None or user.pk != user_id:
        return None
    return session.expires
