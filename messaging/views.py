from typing import Any, overload

from django.conf import settings
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.auth import signed_in
from accounts.models import User
from chatproject.api import FILE_UPLOAD
from chatproject.errors import ValidationFailed
from messaging import attachments, changes, posting, selectors, stats
from messaging.models import Message
from messaging.serializers import (
    MAX_ID,
    AttachmentSerializer,
    MessageCreateSerializer,
    MessageEditSerializer,
    MessagePageSerializer,
    MessageSerializer,
    ReactionSerializer,
    SearchPageSerializer,
    StatsSerializer,
)
from rooms.selectors import can_moderate, get_room_for_member, get_visible_room


@overload
def _int_param(request: Request, name: str, *, default: int, low: int, high: int | None) -> int: ...
@overload
def _int_param(
    request: Request, name: str, *, default: None, low: int, high: int | None
) -> int | None: ...
def _int_param(
    request: Request, name: str, *, default: int | None, low: int, high: int | None
) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationFailed(
            f"{name} must be an integer.", fields={name: ["Not an integer."]}
        ) from None
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ValidationFailed(f"{name} must be {bounds}.", fields={name: [f"Must be {bounds}."]})
    return value


class RoomMessagesView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("limit", int, description="page size, 1 to 200 (default 50)"),
            OpenApiParameter("before", int, description="history: messages with seq < before"),
            OpenApiParameter("after", int, description="recovery: messages with pos > after"),
            OpenApiParameter(
                "around",
                int,
                description="a message's id: limit/2 messages before it, it, and the rest "
                "after it (with has_more_before and has_more_after)",
            ),
        ],
        responses=MessagePageSerializer,
    )
    def get(self, request: Request, room_id: int) -> Response:
        user = signed_in(request)
        room = get_visible_room(room_id=room_id, user=user)
        limit = _int_param(request, "limit", default=50, low=1, high=selectors.MAX_PAGE)
        before = _int_param(request, "before", default=None, low=1, high=None)
        after = _int_param(request, "after", default=None, low=0, high=None)
        around = _int_param(request, "around", default=None, low=1, high=MAX_ID)
        if sum(value is not None for value in (before, after, around)) > 1:
            raise ValidationFailed("Give one of before, after and around.")
        extra: dict[str, bool] = {}
        if around is not None:
            messages, more_before, more_after = selectors.around(
                room=room, message_id=around, limit=limit
            )
            has_more = more_before
            extra = {"has_more_before": more_before, "has_more_after": more_after}
        elif after is not None:
            messages, has_more = selectors.changes_after(room=room, after=after, limit=limit)
        else:
            messages, has_more = selectors.history_page(room=room, before=before, limit=limit)
        body = {
            "results": MessageSerializer(messages, many=True, context={"viewer_id": user.pk}).data,
            "has_more": has_more,
            **extra,
            "pos": selectors.room_position(room_id=room.pk),
        }
        return Response(body)

    @extend_schema(
        request=MessageCreateSerializer,
        responses={201: MessageSerializer, 200: MessageSerializer},
        description="Post a message; it is delivered live to every socket in the room. "
        "A retry with the same client_id answers 200 with the first message.",
    )
    def post(self, request: Request, room_id: int) -> Response:
        user = signed_in(request)
        room, _ = get_room_for_member(room_id=room_id, user=user)
        message, created = posting.post_message_from_input(
            room=room, author=user, data=request.data
        )
        return Response(
            _render(message, request),
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


def _moderates(message: Message, user: User) -> bool:
    return can_moderate(room=message.room, user=user)


class MessageDetailView(APIView):
    @extend_schema(request=MessageEditSerializer, responses=MessageSerializer)
    def patch(self, request: Request, message_id: int) -> Response:
        user = signed_in(request)
        message = selectors.get_message_for_user(message_id=message_id, user=user)
        data = MessageEditSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        message = changes.edit_message(
            message=message, editor=user, content=data.validated_data["content"]
        )
        return Response(_render(message, request))

    @extend_schema(responses=MessageSerializer)
    def delete(self, request: Request, message_id: int) -> Response:
        user = signed_in(request)
        message = selectors.get_message_for_user(message_id=message_id, user=user)
        message = changes.delete_message(
            message=message, actor=user, can_moderate=_moderates(message, user)
        )
        return Response(_render(message, request))


def _render(message: Message, request: Request) -> dict[str, Any]:
    user = signed_in(request)
    fresh = selectors.get_message_for_user(message_id=message.pk, user=user)
    return MessageSerializer(fresh, context={"viewer_id": user.pk}).data


def _member_message(request: Request, message_id: int) -> Message:
    """A message the user may react to: in a room they are a member of (or staff)."""
    user = signed_in(request)
    message = selectors.get_message_for_user(message_id=message_id, user=user)
    get_room_for_member(room_id=message.room_id, user=user)
    return message


class ReactionsView(APIView):
    @extend_schema(request=ReactionSerializer, responses=MessageSerializer)
    def post(self, request: Request, message_id: int) -> Response:
        message = _member_message(request, message_id)
        data = ReactionSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        added = changes.add_reaction(
            message=message, user=signed_in(request), emoji=data.validated_data["emoji"]
        )
        code = status.HTTP_201_CREATED if added else status.HTTP_200_OK
        return Response(_render(message, request), status=code)


class ReactionDetailView(APIView):
    @extend_schema(responses=MessageSerializer)
    def delete(self, request: Request, message_id: int, emoji: str) -> Response:
        message = _member_message(request, message_id)
        changes.remove_reaction(message=message, user=signed_in(request), emoji=emoji)
        return Response(_render(message, request))


class SearchView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("q", str, required=True, description="words to find"),
            OpenApiParameter("room", int, description="only this room"),
            OpenApiParameter("limit", int, description="page size, 1 to 200 (default 50)"),
            OpenApiParameter("offset", int, description="from the `next` link"),
        ],
        responses=SearchPageSerializer,
    )
    def get(self, request: Request) -> Response:
        user = signed_in(request)
        query = request.query_params.get("q", "").strip()
        if not query:
            raise ValidationFailed("q is required.", fields={"q": ["This field is required."]})
        if len(query) > 200:
            raise ValidationFailed("q is too long.", fields={"q": ["At most 200 characters."]})
        room = None
        if request.query_params.get("room"):
            room = get_visible_room(room_id=request.query_params["room"], user=user)
        limit = _int_param(request, "limit", default=50, low=1, high=selectors.MAX_PAGE)
        offset = _int_param(request, "offset", default=0, low=0, high=10_000)
        found = selectors.search_messages(user=user, query=query, room=room)
        page = list(found[offset : offset + limit + 1])
        next_url = None
        if len(page) > limit:
            params = request.query_params.copy()
            params["offset"] = str(offset + limit)
            next_url = request.build_absolute_uri(f"{request.path}?{params.urlencode()}")
        context = {"viewer_id": user.pk}
        results = MessageSerializer(page[:limit], many=True, context=context).data
        return Response({"results": results, "next": next_url})


class AttachmentUploadView(APIView):
    parser_classes = [MultiPartParser]

    @extend_schema(
        request=FILE_UPLOAD,
        responses={201: AttachmentSerializer},
    )
    def post(self, request: Request) -> Response:
        # Refuse an oversized body before reading it (multipart adds a little framing).
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
        if declared > settings.MAX_UPLOAD_MB * 1024 * 1024 + 64 * 1024:
            raise attachments.UploadTooLarge(
                f"The file is larger than {settings.MAX_UPLOAD_MB} MB."
            )
        user = signed_in(request)
        posting.check_send_rate(user=user)
        upload = request.FILES.get("file")
        if upload is None:
            raise ValidationFailed(
                "Send the file as multipart field `file`.",
                fields={"file": ["No file was submitted."]},
            )
        attachment = attachments.store_attachment(uploader=user, upload=upload)
        return Response(AttachmentSerializer(attachment).data, status=status.HTTP_201_CREATED)


class AttachmentFileView(APIView):
    """The file itself, for its uploader or the readers of its room."""

    @extend_schema(responses={(200, "*/*"): OpenApiTypes.BINARY})
    def get(self, request: Request, attachment_id: int) -> FileResponse:
        attachment = selectors.get_attachment_for_user(
            attachment_id=attachment_id, user=signed_in(request)
        )
        inline = attachment.content_type in attachments.INLINE_TYPES
        response = FileResponse(
            attachment.file.open("rb"),
            content_type=attachment.content_type,
            as_attachment=not inline,
            filename=attachment.name,
        )
        response["X-Content-Type-Options"] = "nosniff"
        response["Content-Security-Policy"] = "default-src 'none'; sandbox"
        response["Cache-Control"] = "private, max-age=3600"
        return response


class StatsView(APIView):
    @extend_schema(responses=StatsSerializer)
    def get(self, request: Request) -> Response:
        return Response(stats.collect(per_process=signed_in(request).is_staff))
