"""The seeds' REST paths, without the trailing slash, in their shapes (SPEC 9.4), and the
JSON 404 of every other `/api/` path.

Seed 003 (JWT and rooms): `POST /api/register`, `POST /api/login` (both answer
`{"token", "user"}`), `GET /api/rooms`, `POST /api/rooms/create`,
`GET /api/messages?roomId=&limit=`; its token is sent as `Authorization: <token>` or
`Bearer <token>`. Seed 002 (nicknames): `GET /api/users` (who is connected) and
`GET /api/stats`. Each view calls the same services and selectors as the native API
(registration rules, AUTH_RATE_LIMIT, room creation under WRITE_RATE_LIMIT, visibility).

Seed 003's token is an access token of this server that lives `JWT_EXPIRY` hours, as the
seed's did (the native login's access token lives JWT_ACCESS_MINUTES and is refreshed;
the seed's clients never refresh). It carries the user's token generation like every
token, so a password change, "sign out everywhere" or a deactivation revokes it.
"""

from typing import Any

from django.http import HttpRequest, JsonResponse
from django.urls import Resolver404, path, resolve
from django.views.decorators.csrf import csrf_exempt
from rest_framework import permissions, status
from rest_framework.authentication import BaseAuthentication, SessionAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import AccessToken

from accounts.auth import signed_in
from accounts.guests import guests_allowed
from accounts.models import User
from accounts.selectors import online_user_ids, user_briefs
from accounts.serializers import MeSerializer
from accounts.tokens import AUTH_TIME_CLAIM, GENERATION_CLAIM, user_for_access_token
from accounts.views import registered, signed_in_with_password
from chatproject.errors import Unauthenticated, ValidationFailed
from messaging import stats
from messaging.models import Message
from messaging.protocols.seed_dialects import room_message, shown_name
from messaging.selectors import history_page
from messaging.serializers import message_data
from rooms.models import Room
from rooms.selectors import get_visible_room, visible_rooms
from rooms.services import create_room, ensure_general_room

MAX_LIMIT = 200
MAX_ROOMS = 500
MAX_USERS = 1000


def seed_token(*, user: User) -> str:
    """An access token of `user` that lives JWT_EXPIRY hours (seed 003's token)."""
    token = AccessToken()
    token[api_settings.USER_ID_CLAIM] = str(user.pk)
    token[GENERATION_CLAIM] = user.token_generation
    token[AUTH_TIME_CLAIM] = int(token["iat"])
    token.set_exp(lifetime=api_settings.REFRESH_TOKEN_LIFETIME)  # JWT_EXPIRY hours
    return str(token)


class SeedTokenAuthentication(BaseAuthentication):
    """`Authorization: <token>` (seed 003) or `Bearer <token>`, checked as every token is
    (`accounts.tokens.user_for_access_token`: signature, expiry, revocation)."""

    def authenticate(self, request: Request) -> tuple[User, None] | None:
        raw = request.META.get("HTTP_AUTHORIZATION", "").strip()
        if not raw:
            return None
        if raw.lower().startswith("bearer "):
            raw = raw[len("bearer ") :].strip()
        try:
            user, _ = user_for_access_token(raw)
        except Unauthenticated as exc:
            raise AuthenticationFailed(exc.message) from None
        return user, None

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class SignedInOrGuestsAllowed(permissions.BasePermission):
    """Seed 002's monitoring paths: open when guests are (a server open to anonymous
    nicknames shows who is connected, as the seed did); else for signed-in users."""

    def has_permission(self, request: Any, view: Any) -> bool:
        return bool(request.user and request.user.is_authenticated) or guests_allowed()


class SeedView(APIView):
    authentication_classes = [SeedTokenAuthentication, SessionAuthentication]
    schema = None  # the seeds' paths stay out of the OpenAPI document (the native API is)


def _auth_answer(user: User, code: int) -> Response:
    return Response({"token": seed_token(user=user), "user": MeSerializer(user).data}, code)


class SeedRegisterView(SeedView):
    permission_classes = [permissions.AllowAny]
    authentication_classes: list = []

    def post(self, request: Request) -> Response:
        return _auth_answer(registered(request), status.HTTP_201_CREATED)


class SeedLoginView(SeedView):
    permission_classes = [permissions.AllowAny]
    authentication_classes: list = []

    def post(self, request: Request) -> Response:
        return _auth_answer(signed_in_with_password(request), status.HTTP_200_OK)


def seed_room(room: Room) -> dict[str, Any]:
    return {
        "id": room.pk,
        "name": room.name,
        "description": room.description,
        "created_by": room.created_by_id,
        "created_at": room.created_at.isoformat().replace("+00:00", "Z"),
    }


class SeedRoomsView(SeedView):
    def get(self, request: Request) -> Response:
        ensure_general_room()  # seed 003: "a default General chat room" is always listed
        rooms = visible_rooms(user=signed_in(request)).filter(is_archived=False).order_by("pk")
        return Response([seed_room(room) for room in rooms[:MAX_ROOMS]])


class SeedRoomCreateView(SeedView):
    def post(self, request: Request) -> Response:
        body = request.data if isinstance(request.data, dict) else {}
        name, description = body.get("name"), body.get("description") or ""
        if not isinstance(name, str) or not isinstance(description, str):
            raise ValidationFailed("`name` (and `description`) must be strings.")
        room = create_room(creator=signed_in(request), name=name, description=description)
        return Response(seed_room(room), status=status.HTTP_201_CREATED)


def _limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return 50
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        message = f"limit must be a number from 1 to {MAX_LIMIT}."
        raise ValidationFailed(message, fields={"limit": [message]})
    return limit


class SeedMessagesView(SeedView):
    def get(self, request: Request) -> Response:
        room_id = request.query_params.get("roomId")
        if not room_id:
            raise ValidationFailed("roomId is required.", fields={"roomId": ["Required."]})
        limit = _limit(request.query_params.get("limit"))
        room = get_visible_room(room_id=room_id, user=signed_in(request))
        page, _ = history_page(room=room, before=None, limit=limit)
        shown = [m for m in page if m.type != Message.Type.SYSTEM]
        return Response([{"id": m.pk, **room_message(message_data(m))} for m in shown])


class SeedUsersView(SeedView):
    permission_classes = [SignedInOrGuestsAllowed]

    def get(self, request: Request) -> Response:
        briefs = user_briefs(sorted(online_user_ids())[:MAX_USERS])
        names = sorted(shown_name(brief) for brief in briefs.values())
        return Response({"users": names, "count": len(names)})


class SeedStatsView(SeedView):
    permission_classes = [SignedInOrGuestsAllowed]

    def get(self, request: Request) -> Response:
        return Response(stats.collect())


# Inside `api/`, before the native patterns (none of which lacks its trailing slash).
urlpatterns = [
    path("register", SeedRegisterView.as_view(), name="seed-register"),
    path("login", SeedLoginView.as_view(), name="seed-login"),
    path("rooms", SeedRoomsView.as_view(), name="seed-rooms"),
    path("rooms/create", SeedRoomCreateView.as_view(), name="seed-room-create"),
    path("messages", SeedMessagesView.as_view(), name="seed-room-messages"),
    path("users", SeedUsersView.as_view(), name="seed-users"),
    path("stats", SeedStatsView.as_view(), name="seed-stats"),
]


@csrf_exempt  # it changes nothing, and a POST must get this answer, not a CSRF page
def api_not_found(request: HttpRequest) -> JsonResponse:
    """Every `/api/` path nobody serves: JSON 404, or 308 to the path with its trailing
    slash when that one exists (Django's APPEND_SLASH cannot redirect a POST: in DEBUG it
    raises, a 500)."""
    slashed = request.path + "/"
    if not request.path.endswith("/"):
        try:
            served = resolve(slashed).func is not api_not_found
        except Resolver404:
            served = False
        if served:
            query = request.META.get("QUERY_STRING", "")
            response = JsonResponse(
                {"detail": f"This path ends with a slash: {slashed}", "code": "moved"},
                status=308,
            )
            response["Location"] = slashed + (f"?{query}" if query else "")
            return response
    return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)


__all__ = ["SeedTokenAuthentication", "api_not_found", "seed_token", "urlpatterns"]
