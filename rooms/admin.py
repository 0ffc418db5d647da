"""The room-management panel. Every action goes through the same services as the API,
so what an operator does here reaches the sockets exactly as an API call would."""

from typing import TYPE_CHECKING, Any, TypedDict

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.views.main import ChangeList
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from accounts.auth import signed_in
from chatproject.admin_display import DAY, MINUTE, short_moment
from chatproject.errors import ChatError
from messaging.changes import purge_messages
from messaging.models import Message
from messaging.posting import post_message
from rooms import selectors, services
from rooms.models import Membership, Room

if TYPE_CHECKING:  # django-stubs-ext is a test dependency; annotations only
    from django_stubs_ext import WithAnnotations


class _Counts(TypedDict):
    member_count: int
    message_count: int


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]  # search by name, not a user id
    fields = ["user", "role", "joined_at", "last_read_pos"]
    readonly_fields = ["joined_at", "last_read_pos"]


def _count(model, **filters) -> Coalesce:
    rows = (
        model.objects.filter(room=OuterRef("pk"), **filters)
        .order_by()
        .values("room")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(rows, output_field=IntegerField()), Value(0))


class RoomChangeList(ChangeList):
    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        # Online members of the whole page in one query and one presence lookup.
        online = selectors.room_online_counts(room_ids=[room.pk for room in self.result_list])
        for room in self.result_list:
            room.online_members = online.get(room.pk, 0)


class RoomAdminForm(forms.ModelForm):
    class Meta:
        model = Room
        fields = ["name", "description", "kind", "is_archived", "created_by"]

    def clean_name(self) -> str:
        # The service's own rule (spaces folded, taken in any case) as a form error.
        try:
            return services.clean_room_name(self.cleaned_data["name"], exclude_pk=self.instance.pk)
        except ChatError as exc:
            raise forms.ValidationError(exc.message) from None


class AnnouncementForm(forms.Form):
    title = forms.CharField(max_length=200, required=False)
    content = forms.CharField(widget=forms.Textarea(attrs={"rows": 5, "cols": 60}))


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    form = RoomAdminForm
    # Short columns (chatproject.admin_display): the list fits 1366 px.
    list_display = [
        "name",
        "kind",
        "archived",
        "member_count",
        "message_count",
        "online_members",
        "last_message",
        "created",
    ]
    list_filter = ["kind", "is_archived"]
    search_fields = ["name", "description"]
    readonly_fields = ["slug", "pos", "last_message_at", "created_at", "direct_key"]
    fields = [
        "name",
        "slug",
        "description",
        "kind",
        "is_archived",
        "created_by",
        *readonly_fields[1:],
    ]
    raw_id_fields = ["created_by"]
    inlines = [MembershipInline]
    actions = ["archive", "unarchive", "post_announcement", "purge_messages"]
    list_per_page = 50

    def get_queryset(self, request: HttpRequest) -> "QuerySet[WithAnnotations[Room, _Counts]]":
        return (
            super()
            .get_queryset(request)
            .annotate(
                member_count=_count(Membership),
                message_count=_count(Message, deleted=False),
            )
        )

    def get_changelist(self, request: HttpRequest, **kwargs):
        return RoomChangeList

    @admin.display(ordering="member_count", description="members")
    def member_count(self, room: "WithAnnotations[Room, _Counts]") -> int:
        return room.member_count

    @admin.display(ordering="message_count", description="messages")
    def message_count(self, room: "WithAnnotations[Room, _Counts]") -> int:
        return room.message_count

    @admin.display(boolean=True, ordering="is_archived", description="archived")
    def archived(self, room: Room) -> bool:
        return room.is_archived

    @admin.display(ordering="last_message_at", description="last message")
    def last_message(self, room: Room) -> str:
        return short_moment(room.last_message_at, MINUTE)

    @admin.display(ordering="created_at", description="created")
    def created(self, room: Room) -> str:
        return short_moment(room.created_at, DAY)

    @admin.display(description="online")
    def online_members(self, room: Room) -> int:
        return getattr(room, "online_members", 0)

    def get_readonly_fields(self, request: HttpRequest, obj: Room | None = None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            # update_room changes neither kind nor creator, nor General's name or archive
            # flag: show them rather than offer a change that would fail or be dropped.
            fields += ["kind", "created_by"]
            if obj.is_general:
                fields += ["name", "is_archived"]
        return fields

    def formfield_for_choice_field(self, db_field, request: HttpRequest, **kwargs):
        if db_field.name == "kind":  # direct rooms come from /api/direct/, never from here
            kwargs["choices"] = [(k.value, k.label) for k in (Room.Kind.PUBLIC, Room.Kind.PRIVATE)]
        return super().formfield_for_choice_field(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, room: Room, form: Any, change: bool) -> None:
        if not change:
            created = services.create_room(
                creator=room.created_by,
                name=room.name,
                description=room.description,
                kind=room.kind,
            )
            room.pk, room.slug = created.pk, created.slug
            return
        data = form.cleaned_data
        services.update_room(
            room=room,
            actor=signed_in(request),
            name=data["name"] if "name" in form.changed_data else None,
            description=data["description"] if "description" in form.changed_data else None,
            is_archived=data["is_archived"] if "is_archived" in form.changed_data else None,
        )

    def save_formset(self, request: HttpRequest, form, formset, change: bool) -> None:
        if formset.model is not Membership:
            super().save_formset(request, form, formset, change)
            return
        # Memberships change through the services, so they post their system notices
        # and a removed member's sockets leave the room at once.
        room, actor = form.instance, signed_in(request)
        saved = formset.save(commit=False)
        for membership in formset.deleted_objects:
            self._run(request, services.remove_member, room=room, actor=actor, user=membership.user)
        for membership in saved:
            if membership.pk is not None:
                before = Membership.objects.select_related("user").get(pk=membership.pk)
                if before.user_id != membership.user_id:
                    self._run(
                        request, services.remove_member, room=room, actor=actor, user=before.user
                    )
            self._run(
                request,
                services.set_member,
                room=room,
                actor=actor,
                user=membership.user,
                role=membership.role,
            )

    def has_delete_permission(self, request: HttpRequest, obj: Room | None = None) -> bool:
        if obj is not None and obj.is_general:
            return False
        return super().has_delete_permission(request, obj)

    def delete_model(self, request: HttpRequest, room: Room) -> None:
        self._run(request, services.delete_room, room=room, actor=signed_in(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Room]) -> None:
        actor = signed_in(request)
        for room in queryset:
            self._run(request, services.delete_room, room=room, actor=actor)

    def _run(self, request: HttpRequest, service, **kwargs) -> bool:
        try:
            service(**kwargs)
        except ChatError as exc:
            self.message_user(request, f"{kwargs.get('room')}: {exc.message}", messages.ERROR)
            return False
        return True

    @admin.action(description="Archive (read-only)")
    def archive(self, request: HttpRequest, queryset: QuerySet[Room]) -> None:
        actor = signed_in(request)
        done = sum(
            self._run(request, services.update_room, room=r, actor=actor, is_archived=True)
            for r in queryset
        )
        self.message_user(request, f"Archived {done} room(s).")

    @admin.action(description="Unarchive")
    def unarchive(self, request: HttpRequest, queryset: QuerySet[Room]) -> None:
        actor = signed_in(request)
        done = sum(
            self._run(request, services.update_room, room=r, actor=actor, is_archived=False)
            for r in queryset
        )
        self.message_user(request, f"Unarchived {done} room(s).")

    @admin.action(description="Post an announcement")
    def post_announcement(
        self, request: HttpRequest, queryset: QuerySet[Room]
    ) -> HttpResponse | None:
        form = AnnouncementForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            sent = 0
            for room in queryset:
                sent += self._run(
                    request,
                    post_message,
                    room=room,
                    author=signed_in(request),
                    type=Message.Type.ANNOUNCEMENT,
                    title=form.cleaned_data["title"] or None,
                    content=form.cleaned_data["content"],
                )
            self.message_user(request, f"Announcement posted in {sent} room(s).")
            return None
        return TemplateResponse(
            request,
            "admin/rooms/announcement.html",
            {
                **self.admin_site.each_context(request),
                "title": "Post an announcement",
                "form": form,
                "rooms": queryset,
                "action": "post_announcement",
                "checkbox_name": ACTION_CHECKBOX_NAME,
                "opts": self.model._meta,
            },
        )

    @admin.action(description="Purge all messages (asks to confirm)")
    def purge_messages(self, request: HttpRequest, queryset: QuerySet[Room]) -> HttpResponse | None:
        if "apply" in request.POST:
            removed = 0
            for room in queryset:
                removed += purge_messages(room=room, actor=signed_in(request))
            self.message_user(request, f"Removed {removed} message(s).")
            return None
        return TemplateResponse(
            request,
            "admin/rooms/purge_confirm.html",
            {
                **self.admin_site.each_context(request),
                "title": "Purge messages?",
                "rooms": queryset.annotate(message_total=_count(Message)),
                "action": "purge_messages",
                "checkbox_name": ACTION_CHECKBOX_NAME,
                "opts": self.model._meta,
            },
        )
