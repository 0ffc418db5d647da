import base64
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param
from rest_framework.views import APIView

from accounts.auth import signed_in
from accounts.presence import room_user_page
from accounts.selectors import get_active_user, online_user_ids
from chatproject.errors import Forbidden, NotFound
from rooms import selectors, services
from rooms.models import Membership, Room
from rooms.serializers import (
    DirectRoomSerializer,
    MemberSerializer,
    MemberSetSerializer,
    MembershipStateSerializer,
    MembershipUpdateSerializer,
    ReadMarkerSerializer,
    ReadStateSerializer,
    RoomCreateSerializer,
    RoomSerializer,
    RoomUpdateSerializer,
)


def render_rooms(request: Request, rooms: list[Room]) -> list[dict[str, Any]]:
    """Rooms from `selectors.rooms_for_listing`, with one presence lookup for all."""
    online = selectors.room_online_counts(room_ids=[r.pk for r in rooms])
    # drf-stubs types `.data` as a serializer's ReturnDict even with many=True, where
    # `__new__` makes a ListSerializer and `.data` is a ReturnList (a list of dicts).
    return RoomSerializer(rooms, many=True, context={"online_counts": online}).data  # type: ignore[return-value]


def render_room(request: Request, room: Room) -> dict[str, Any]:
    fresh = selectors.rooms_for_listing(
        user=signed_in(request), base=Room.objects.filter(pk=room.pk)
    )
    return render_rooms(request, [fresh.get()])[0]


class RoomViewSet(viewsets.GenericViewSet):
    serializer_class = RoomSerializer
    ordering = "name"

    lookup_value_regex = r"\d+"

    def get_queryset(self) -> QuerySet[Room]:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return Room.objects.none()
        return selectors.rooms_for_listing(user=signed_in(self.request)).order_by("name")

    def _room_response(self, room: Room, status_code: int = status.HTTP_200_OK) -> Response:
        return Response(render_room(self.request, room), status=status_code)

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(render_rooms(self.request, page or []))

    @extend_schema(request=RoomCreateSerializer, responses={201: RoomSerializer})
    def create(self, request: Request) -> Response:
        data = RoomCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        room = services.create_room(creator=signed_in(request), **data.validated_data)
        return self._room_response(room, status.HTTP_201_CREATED)

    def retrieve(self, request: Request, pk: str) -> Response:
        room = selectors.get_visible_room(room_id=pk, user=signed_in(request))
        return self._room_response(room)

    @extend_schema(request=RoomUpdateSerializer, responses=RoomSerializer)
    def partial_update(self, request: Request, pk: str) -> Response:
        user = signed_in(request)
        room, _ = selectors.get_room_for_manager(room_id=pk, user=user)
        data = RoomUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        room = services.update_room(room=room, actor=user, **data.validated_data)
        return self._room_response(room)

    def destroy(self, request: Request, pk: str) -> Response:
        user = signed_in(request)
        room, membership = selectors.get_room_for_manager(room_id=pk, user=user)
        if not user.is_staff and (membership is None or membership.role != Membership.Role.OWNER):
            raise Forbidden("Only the room's owner may delete it.")
        services.delete_room(room=room, actor=user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses=RoomSerializer)
    @action(detail=True, methods=["post"])
    def join(self, request: Request, pk: str) -> Response:
        user = signed_in(request)
        room = selectors.get_visible_room(room_id=pk, user=user)
        services.join_room(room=room, user=user)
        return self._room_response(room)

    @extend_schema(request=None, responses={204: None})
    @action(detail=True, methods=["post"])
    def leave(self, request: Request, pk: str) -> Response:
        user = signed_in(request)
        room = selectors.get_visible_room(room_id=pk, user=user)
        services.leave_room(room=room, user=user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        methods=["GET"],
        responses=MemberSerializer(many=True),
        parameters=[
            OpenApiParameter(
                "online",
                bool,
                description="true: only the members present in the room now (a socket "
                "subscribed to it), by user id, cursor-paged: the rest of `room_users`",
            ),
            OpenApiParameter("limit", int, description="page size, 1 to 200 (default 50)"),
        ],
    )
    @extend_schema(methods=["POST"], request=MemberSetSerializer, responses=MemberSerializer)
    @action(detail=True, methods=["get", "post"], ordering="pk")
    def members(self, request: Request, pk: str) -> Response:
        actor = signed_in(request)
        if request.method == "POST":
            room, _ = selectors.get_room_for_manager(room_id=pk, user=actor)
            data = MemberSetSerializer(data=request.data)
            data.is_valid(raise_exception=True)
            user = get_active_user(user_id=data.validated_data["user_id"])
            membership = services.set_member(
                room=room, actor=actor, user=user, role=data.validated_data["role"]
            )
            online = online_user_ids([user.pk])
            return Response(
                MemberSerializer(membership, context={"online_ids": online}).data,
                status=status.HTTP_200_OK,
            )
        room = selectors.get_visible_room(room_id=pk, user=actor)
        if request.query_params.get("online") in ("true", "1"):
            # Who is in the room now, read from the presence store's index in user id
            # order: a page of a room of thousands reads about one page of it. The
            # cursor is the last id shown; only `next` is offered.
            limit = self.paginator.get_page_size(request) or 50  # type: ignore[union-attr]
            cursor = request.query_params.get("cursor")
            try:
                after = (
                    int(base64.urlsafe_b64decode(cursor).decode().removeprefix("u="))
                    if cursor
                    else 0
                )
            except (ValueError, UnicodeDecodeError):
                raise NotFound("Invalid cursor.") from None
            if not 0 <= after < 2**63:
                raise NotFound("Invalid cursor.")
            ids = room_user_page(room.pk, after=after, limit=limit + 1)
            shown = ids[:limit]
            present = Membership.objects.filter(room=room, user_id__in=shown).select_related("user")
            context = {"online_ids": set(shown)}
            rows = MemberSerializer(
                sorted(present, key=lambda m: m.user_id), many=True, context=context
            ).data
            following = None
            if len(ids) > limit:
                token = base64.urlsafe_b64encode(f"u={shown[-1]}".encode()).decode()
                following = replace_query_param(request.build_absolute_uri(), "cursor", token)
            return Response({"next": following, "previous": None, "results": rows})
        memberships = Membership.objects.filter(room=room).select_related("user")
        page = self.paginate_queryset(memberships)
        online = online_user_ids([m.user_id for m in page or []])
        context = {"online_ids": online}
        return self.get_paginated_response(MemberSerializer(page, many=True, context=context).data)

    @extend_schema(request=ReadMarkerSerializer, responses=ReadStateSerializer)
    @action(detail=True, methods=["post"])
    def read(self, request: Request, pk: str) -> Response:
        user = signed_in(request)
        room = selectors.get_visible_room(room_id=pk, user=user)
        data = ReadMarkerSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.mark_read(
            room=room, user=user, message_id=data.validated_data["message_id"]
        )
        return Response(read_state(membership))

    @extend_schema(request=MembershipUpdateSerializer, responses=MembershipStateSerializer)
    @action(detail=True, methods=["patch"], url_path="membership")
    def membership(self, request: Request, pk: str) -> Response:
        """My membership: mute or unmute the room (members only)."""
        user = signed_in(request)
        room = selectors.get_visible_room(room_id=pk, user=user)
        if selectors.get_membership(room=room, user=user) is None:
            raise Forbidden("Only members can mute a room.")
        data = MembershipUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.set_muted(room=room, user=user, muted=data.validated_data["muted"])
        return Response(
            {**read_state(membership), "role": membership.role, "muted": membership.muted}
        )

    @extend_schema(request=None, responses={204: None})
    @action(detail=True, methods=["delete"], url_path=r"members/(?P<user_id>\d+)")
    def remove_member(self, request: Request, pk: str, user_id: str) -> Response:
        actor = signed_in(request)
        room, _ = selectors.get_room_for_manager(room_id=pk, user=actor)
        user = get_active_user(user_id=int(user_id))
        services.remove_member(room=room, actor=actor, user=user)
        return Response(status=status.HTTP_204_NO_CONTENT)


def read_state(membership: Membership) -> dict[str, Any]:
    return {
        "room": membership.room_id,
        "last_read_seq": membership.last_read_pos,
        "unread_count": selectors.unread_count(membership=membership),
        "mention_count": selectors.mention_count(membership=membership),
    }


class DirectRoomView(APIView):
    @extend_schema(
        request=DirectRoomSerializer, responses={200: RoomSerializer, 201: RoomSerializer}
    )
    def post(self, request: Request) -> Response:
        data = DirectRoomSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        other = get_active_user(user_id=data.validated_data["user_id"])
        room, created = services.get_or_create_direct_room(user=signed_in(request), other=other)
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(render_room(request, room), status=code)
