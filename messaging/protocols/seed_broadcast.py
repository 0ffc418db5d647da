"""Posting from outside (SPEC 9.2): the seed's REST broadcast and Slack-style webhooks.

- `POST /messages` takes the seed server's body `{room_id, content, user_id, username,
  type, title, payload, attachment_urls}` with `Authorization: Bearer <integration key>`
  (or a staff member's access token or session) and posts into the room, delivered live.
- `POST /api/hooks/<key>/` takes Slack's incoming-webhook body `{"text", "username"?}`
  (JSON, or a form with a `payload` field holding that JSON) and answers `ok`.

Both are adapters: the key and its scope are `accounts.integrations`, the post goes
through `messaging.posting` (the same input checks, `CHAT_RATE_LIMIT` budget of the
author, room stream and fan-out as every post). The author is the key's bot user
(`sender.is_bot`); the seed's `username` is shown as the message's display name, kept
in the message's `payload` as `display_name` (and the seed's `user_id` as
`external_user_id`), so the message model and its shape stay as they are.
"""

import json
from typing import Any

from django.db.models import Q, QuerySet
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import parsers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.auth import signed_in
from accounts.integrations import bot_for_key
from accounts.models import ApiKey, User
from chatproject.api import JSONParser
from chatproject.errors import Forbidden, ValidationFailed
from chatproject.text import clean_text, invisible_char
from messaging import posting
from messaging.models import Message
from messaging.serializers import message_data
from rooms.models import Room
from rooms.selectors import RoomNotFound

# The seed's fields that are the message itself, as `MessageCreateSerializer` takes them.
_MESSAGE_FIELDS = ("content", "type", "title", "payload", "attachment_urls", "client_id")
DISPLAY_NAME_MAX = 64


def _required(field: str) -> ValidationFailed:
    return ValidationFailed(f"{field} is required.", fields={field: ["This field is required."]})


def _find_room(rooms: QuerySet[Room], ref: object) -> Room | None:
    """A room of `rooms` by id (a number, or digits in a string), slug or name."""
    if isinstance(ref, bool):
        return None
    if isinstance(ref, int) or (isinstance(ref, str) and ref.isascii() and ref.isdigit()):
        pk = int(ref)
        found = rooms.filter(pk=pk).first() if 0 < pk < 2**63 else None
        if found is not None or isinstance(ref, int):
            return found
    if isinstance(ref, str) and 0 < len(ref) <= 100 and "\x00" not in ref:
        return rooms.filter(Q(slug=ref) | Q(name__iexact=ref)).exclude(kind="direct").first()
    return None


def _shown_name(value: object, *, field: str) -> str | None:
    """The display name a post asks for (the seed's and Slack's `username`), or None."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValidationFailed(f"{field} must be a string.", fields={field: ["Not a string."]})
    name = value.strip()
    if invisible_char(name) is not None:
        message = f"{field} cannot contain control, invisible or direction-changing characters."
        raise ValidationFailed(message, fields={field: [message]})
    return clean_text(name, field=field, max_length=DISPLAY_NAME_MAX) or None


def post_from_integration(
    *,
    author: User,
    room: Room,
    data: dict[str, Any],
    display_name: str | None,
    external_user_id: str | None = None,
) -> tuple[Message, bool]:
    """Post `data` (the message's fields, as a client sends them) as `author`, whose
    right to post in `room` the caller has checked (the key's scope, or staff): the
    author's CHAT_RATE_LIMIT budget, the input checks, then the one write path."""
    posting.check_send_rate(user=author)
    fields = posting.input_fields(data)
    payload = dict(fields.get("payload") or {})
    if display_name is not None:
        payload["display_name"] = display_name
    if external_user_id is not None:
        payload["external_user_id"] = external_user_id
    return posting.post_message(
        room=room,
        author=author,
        content=fields.get("content") or "",
        type=fields.get("type", Message.Type.TEXT),
        title=fields.get("title"),
        payload=payload,
        attachment_urls=fields.get("attachment_urls") or (),
        client_id=fields.get("client_id"),
    )


def _room_for(*, user: User, key: ApiKey | None, ref: object) -> Room:
    if ref is None or ref == "":
        raise _required("room_id")
    if key is not None:
        room = _find_room(key.rooms.all(), ref)
        if room is None:  # outside the scope, whether it exists or not: nothing leaks
            raise Forbidden(f"This integration key may not post to room {ref!r}.")
        return room
    room = _find_room(Room.objects.all(), ref)
    if room is None:
        raise RoomNotFound()
    return room


def _external_id(value: object) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValidationFailed(
            "user_id must be a string or a number.", fields={"user_id": ["Not a string."]}
        )
    return clean_text(str(value), field="user_id", max_length=64)


class BroadcastView(APIView):
    """`POST /messages`: the seed server's broadcast, for integration keys and staff."""

    integration_keys = True  # `accounts.integrations.ApiKeyAuthentication` serves this view

    @extend_schema(
        request=OpenApiTypes.OBJECT,
        responses={200: OpenApiTypes.OBJECT},
        description="The seed server's broadcast: body `{room_id, content, user_id, "
        "username, type, title, payload, attachment_urls}`; answers "
        '`{"status": "ok", "message": <message>}`. For integration keys (their rooms) '
        "and staff.",
    )
    def post(self, request: Request) -> Response:
        user = signed_in(request)
        key = request.auth if isinstance(request.auth, ApiKey) else None
        if key is None and not user.is_staff:
            raise Forbidden("Only integration keys and staff may broadcast.")
        body = request.data
        if not isinstance(body, dict):
            raise ValidationFailed("The body must be a JSON object.")
        room = _room_for(user=user, key=key, ref=body.get("room_id"))
        display_name = _shown_name(body.get("username"), field="username")
        external = _external_id(body.get("user_id"))
        data = {f: body[f] for f in _MESSAGE_FIELDS if body.get(f) is not None}
        message, _ = post_from_integration(
            author=user,
            room=room,
            data=data,
            display_name=display_name,
            external_user_id=external,
        )
        return Response({"status": "ok", "message": message_data(message)})


class WebhookView(APIView):
    """`POST /api/hooks/<key>/`: a Slack-compatible incoming webhook. The key in the
    path is the credential (as Slack's webhook URLs); it posts into the key's one room
    (or the key's room named by `channel`)."""

    authentication_classes: list[type] = []
    permission_classes = [AllowAny]
    parser_classes = [JSONParser, parsers.FormParser]  # Slack's form: `payload=<JSON>`

    @extend_schema(
        request=OpenApiTypes.OBJECT,
        responses={(200, "text/plain"): OpenApiTypes.STR},
        description='Slack incoming webhook: `{"text", "username"?, "channel"?}`; answers `ok`.',
    )
    def post(self, request: Request, key: str) -> HttpResponse:
        bot, api_key = bot_for_key(key)
        body = self._body(request)
        room = self._room(api_key, body.get("channel"))
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ValidationFailed(
                "text is required (Slack's no_text).", fields={"text": ["This field is required."]}
            )
        display_name = _shown_name(body.get("username"), field="username")
        post_from_integration(
            author=bot, room=room, data={"content": text}, display_name=display_name
        )
        return HttpResponse("ok", content_type="text/plain; charset=utf-8")

    @staticmethod
    def _body(request: Request) -> dict[str, Any]:
        body: Any = request.data
        if not isinstance(body, dict) and hasattr(body, "dict"):
            body = body.dict()
        if isinstance(body, dict) and isinstance(body.get("payload"), str) and "text" not in body:
            try:  # a form post: the JSON is in `payload`
                body = json.loads(body["payload"])
            except (ValueError, RecursionError):
                raise ValidationFailed(
                    "payload is not JSON (Slack's invalid_payload).",
                    fields={"payload": ["Not JSON."]},
                ) from None
        if not isinstance(body, dict):
            raise ValidationFailed("The body must be a JSON object (Slack's invalid_payload).")
        return body

    @staticmethod
    def _room(api_key: ApiKey, channel: object) -> Room:
        rooms = api_key.rooms.all()
        if channel not in (None, ""):
            ref = channel.lstrip("#") if isinstance(channel, str) else channel
            room = _find_room(rooms, ref)
            if room is None:
                raise Forbidden(f"This key may not post to channel {channel!r}.")
            return room
        scope = list(rooms[:2])
        if len(scope) != 1:
            raise ValidationFailed(
                "A webhook posts into its key's one room; this key has "
                f"{'none' if not scope else 'several'}: name one in `channel`.",
                fields={"channel": ["Required for a key of several rooms."]},
            )
        return scope[0]
