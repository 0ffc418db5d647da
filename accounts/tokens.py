"""Access tokens for sockets: the same checks as the REST API's JWT authentication."""

from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken, TokenError

from accounts.models import User
from chatproject.errors import Unauthenticated


def user_for_access_token(raw: str) -> tuple[User, int]:
    """The active user an access token names, and the token's expiry (epoch seconds).

    Only access tokens pass (a refresh token does not), signed with our key and algorithm;
    the user must exist and be active.
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
