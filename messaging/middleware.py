"""WebSocket authentication: an access token (header or `?token=`), else the session.

A token, when given, decides who the socket is; without one, the session cookie does
(the web page). A token that fails leaves `auth_error` in the scope, and the consumer
closes the socket with 4401 after accepting it (closing before accept would show the
client a bare HTTP 403). A session leaves `session_auth` (`accounts.sessions.SocketSession`)
in the scope: the socket ends with that session (sign-out, expiry).

One middleware instead of Channels' cookie, session and auth stack plus a token layer:
those copy the scope once each and keep a session wrapper and a lazy user for the life
of every socket (~5 KiB of the ~40 an idle socket costs); a socket needs its user only.
"""

from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http.cookie import parse_cookie

from accounts.models import User
from accounts.sessions import SocketSession
from accounts.sessions import session_user as user_of_session
from accounts.tokens import user_for_access_token
from chatproject.errors import Unauthenticated
from messaging.origins import header


def token_from_scope(scope: dict) -> str | None:
    authorization = header(scope, b"authorization")
    if authorization is not None:
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip()
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    tokens = query.get("token")
    return tokens[0] if tokens else None


@database_sync_to_async
def session_user(cookie_header: str | None) -> tuple[User | AnonymousUser, SocketSession | None]:
    """The user of the session cookie, as Django's `get_user` checks it for a request
    (the session's auth hash included), and the session; AnonymousUser without a valid
    session."""
    key = parse_cookie(cookie_header or "").get(settings.SESSION_COOKIE_NAME)
    if not key:
        return AnonymousUser(), None
    return user_of_session(key)


class SocketAuthMiddleware:
    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        scope = dict(scope)  # the one copy: changes stay out of the server's scope
        token = token_from_scope(scope)
        if token is None:
            user, session = await session_user(header(scope, b"cookie"))
            scope.update(user=user, token_exp=None, auth_error=None, session_auth=session)
        else:
            try:
                user, expires = await database_sync_to_async(user_for_access_token)(token)
            except Unauthenticated as exc:
                scope.update(
                    user=AnonymousUser(), auth_error=exc.message, token_exp=None, session_auth=None
                )
            else:
                scope.update(user=user, token_exp=expires, auth_error=None, session_auth=None)
        return await self.inner(scope, receive, send)
