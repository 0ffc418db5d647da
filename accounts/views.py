from typing import Any

from django.conf import settings
from django.contrib.auth import update_session_auth_hash
from django.core.files.storage import default_storage
from django.db.models import QuerySet
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, permissions, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import avatars, selectors, services
from accounts.auth import signed_in
from accounts.models import User
from accounts.serializers import (
    AuthResultSerializer,
    LoginSerializer,
    LogoutSerializer,
    MeSerializer,
    PasswordChangeSerializer,
    ProfileUpdateSerializer,
    RefreshTokenSerializer,
    RegisterSerializer,
    TokenPairSerializer,
    UserSerializer,
)
from chatproject.api import FILE_UPLOAD
from chatproject.errors import NotFound, Unauthenticated, ValidationFailed


def client_address(request: Request) -> str:
    """The client's address as the server saw it (`serve --proxy-headers` takes it from
    X-Forwarded-For, set by your own load balancer)."""
    return request.META.get("REMOTE_ADDR") or "unknown"


def registered(request: Request) -> User:
    """The account a registration request creates (AUTH_RATE_LIMIT, the name and password
    rules); the API's and seed 003's register views answer it in their own shapes."""
    services.check_auth_rate(address=client_address(request))
    data = RegisterSerializer(data=request.data)
    data.is_valid(raise_exception=True)
    return services.register_user(**data.validated_data)


def signed_in_with_password(request: Request) -> User:
    """The user a login request names, its password checked (AUTH_RATE_LIMIT first)."""
    services.check_auth_rate(address=client_address(request))
    data = LoginSerializer(data=request.data)
    data.is_valid(raise_exception=True)
    return services.login_user(request=request, **data.validated_data)


def _auth_result(user: User, status_code: int) -> Response:
    body = {"user": MeSerializer(user).data, **services.issue_tokens(user=user)}
    return Response(body, status=status_code)


class RegisterView(APIView):
    permission_classes = [permissions.AllowAny]
    authentication_classes: list = []

    @extend_schema(request=RegisterSerializer, responses={201: AuthResultSerializer, 429: None})
    def post(self, request: Request) -> Response:
        return _auth_result(registered(request), status.HTTP_201_CREATED)


class LoginView(APIView):
    permission_classes = [permissions.AllowAny]
    authentication_classes: list = []

    @extend_schema(request=LoginSerializer, responses={200: AuthResultSerializer, 429: None})
    def post(self, request: Request) -> Response:
        return _auth_result(signed_in_with_password(request), status.HTTP_200_OK)


class RefreshView(APIView):
    """Rotation: answers a new access and refresh token; the old refresh is blacklisted.
    The new refresh token keeps the sign-in time of the old one, and none outlives
    JWT_REFRESH_MAX_DAYS after that sign-in."""

    permission_classes = [permissions.AllowAny]
    authentication_classes: list = []

    @extend_schema(request=RefreshTokenSerializer, responses={200: TokenPairSerializer})
    def post(self, request: Request) -> Response:
        data = RefreshTokenSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        pair = services.rotate_refresh_token(refresh=data.validated_data["refresh"])
        return Response(pair, status=status.HTTP_200_OK)


class LogoutView(APIView):
    """`{"refresh"}` signs out that refresh token; `{"all": true}`, authenticated (Bearer,
    or the session with its CSRF token), signs the user out everywhere: every token and
    session, and the sockets they opened (4401)."""

    permission_classes = [permissions.AllowAny]

    def perform_authentication(self, request: Request) -> None:
        # Only `all` needs to know who asks: a client signing out one refresh token may
        # still send its expired access token, which must not turn the answer into a 401.
        pass

    @extend_schema(request=LogoutSerializer, responses={205: None})
    def post(self, request: Request) -> Response:
        data = LogoutSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if data.validated_data["all"]:
            user = request.user
            if not isinstance(user, User):
                raise Unauthenticated(
                    "Sign in (a Bearer token or the session) to sign out everywhere."
                )
            services.revoke_credentials(user=user)
        else:
            services.revoke_refresh_token(refresh=data.validated_data["refresh"])
        return Response(status=status.HTTP_205_RESET_CONTENT)


class MeView(APIView):
    @extend_schema(responses=MeSerializer)
    def get(self, request: Request) -> Response:
        return Response(MeSerializer(signed_in(request)).data)

    @extend_schema(request=ProfileUpdateSerializer, responses=MeSerializer)
    def patch(self, request: Request) -> Response:
        data = ProfileUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.update_profile(user=signed_in(request), **data.validated_data)
        return Response(MeSerializer(user).data)


class PasswordView(APIView):
    """Change my password. Every other token, session and socket of mine is signed out
    (4401); this request's session, if it came with one, stays signed in, and the answer
    carries a new token pair."""

    @extend_schema(request=PasswordChangeSerializer, responses={200: TokenPairSerializer})
    def post(self, request: Request) -> Response:
        # A wrong old password is a guess: the sign-in budget of the address applies.
        services.check_auth_rate(address=client_address(request))
        user = signed_in(request)
        data = PasswordChangeSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.change_own_password(user=user, **data.validated_data)
        if isinstance(request.successful_authenticator, SessionAuthentication):
            # The revocation raised the generation the session hash includes: store the
            # new hash in this session, so that it alone stays signed in.
            update_session_auth_hash(request._request, user)
        return Response(services.issue_tokens(user=user))


class AvatarView(APIView):
    """My picture: upload one (re-encoded, `accounts.avatars`), or remove it."""

    parser_classes = [MultiPartParser]

    @extend_schema(
        request=FILE_UPLOAD,
        responses={200: MeSerializer, 400: None, 413: None, 415: None},
    )
    def post(self, request: Request) -> Response:
        # Refuse an oversized body before reading it (multipart adds a little framing).
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
        if declared > avatars.max_bytes() + 64 * 1024:
            raise avatars.AvatarTooLarge(f"A picture may be at most {settings.AVATAR_MAX_MB} MB.")
        user = signed_in(request)
        upload = request.FILES.get("file")
        if upload is None:
            raise ValidationFailed(
                "Send the picture as multipart field `file`.",
                fields={"file": ["No file was submitted."]},
            )
        avatars.store_avatar(user=user, upload=upload)
        return Response(MeSerializer(user).data)

    @extend_schema(request=None, responses={204: None})
    def delete(self, request: Request) -> Response:
        avatars.remove_avatar(user=signed_in(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class AvatarFileView(APIView):
    """A picture, for any signed-in user. Its name holds a digest of its bytes, so it is
    cached for good; our own re-encoding, so it is served as what it is, and nothing
    else."""

    @extend_schema(responses={(200, "image/webp"): OpenApiTypes.BINARY})
    def get(self, request: Request, name: str) -> FileResponse:
        signed_in(request)
        if not avatars.FILE_NAME.match(name):
            raise NotFound("No such picture.")
        try:
            picture = default_storage.open(f"avatars/{name}", "rb")
        except FileNotFoundError:
            raise NotFound("No such picture.") from None
        response = FileResponse(picture, content_type=avatars.CONTENT_TYPE)
        response["X-Content-Type-Options"] = "nosniff"
        response["Content-Security-Policy"] = "default-src 'none'; sandbox"
        response["Cache-Control"] = "private, max-age=31536000, immutable"
        return response


class UserListView(generics.ListAPIView[User]):
    serializer_class = UserSerializer
    ordering = "username"

    def get_queryset(self) -> QuerySet[User]:
        online = self.request.query_params.get("online")
        return selectors.list_users(
            search=self.request.query_params.get("search", "").strip()[:64],
            online=None if online is None else online.lower() in ("1", "true", "yes"),
        )

    def get_serializer_context(self) -> dict[str, Any]:
        # One presence lookup for the page, filled in by `list()` below.
        return {**super().get_serializer_context(), "online_ids": self._online_ids}

    _online_ids: set[int] | None = None

    def paginate_queryset(self, queryset):
        page = super().paginate_queryset(queryset)
        self._online_ids = selectors.online_user_ids([u.pk for u in page or []])
        return page

    @extend_schema(
        parameters=[
            OpenApiParameter("online", bool, description="only users online (true) or not"),
            OpenApiParameter("search", str, description="part of a username or display name"),
            OpenApiParameter("limit", int, description="page size, at most 200"),
        ]
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)
