from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts.auth import signed_in
from chatproject.admin_filters import RoomIdFilter, SenderFilter
from messaging.changes import delete_message, restore_message
from messaging.models import Attachment, Message


class AttachmentInline(admin.TabularInline):
    model = Attachment
    fk_name = "message"
    extra = 0
    readonly_fields = ["name", "content_type", "size", "uploader"]
    fields = [*readonly_fields]
    can_delete = False


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["id", "room", "seq", "sender", "type", "short_content", "created_at", "deleted"]
    list_filter = [
        RoomIdFilter,
        SenderFilter,
        "type",
        "deleted",
        ("created_at", admin.DateFieldListFilter),
    ]
    search_fields = ["content", "title"]
    # Large tables: ids, not drop-downs of every room and user.
    raw_id_fields = ["room", "sender", "reply_to"]
    list_select_related = ["room", "sender"]
    readonly_fields = [
        "room",
        "seq",
        "pos",
        "sender",
        "type",
        "client_id",
        "reply_to",
        "created_at",
        "edited_at",
        "deleted",
        "deleted_at",
    ]
    fields = [*readonly_fields[:5], "title", "content", "payload", *readonly_fields[5:]]
    # Messages are changed through actions (delete, restore) so the change reaches sockets.
    inlines = [AttachmentInline]
    actions = ["soft_delete", "restore"]
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # facet counts would scan the whole table
    list_per_page = 100

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        # Django's bulk hard delete would bypass the room stream (no position, no event).
        actions.pop("delete_selected", None)
        return actions

    def delete_model(self, request: HttpRequest, message: Message) -> None:
        # The delete page soft-deletes too: a hard delete would bypass the room stream,
        # and clients would keep showing the message forever.
        delete_message(message=message, actor=signed_in(request), can_moderate=True)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # messages come from users; announcements from the room actions

    def has_change_permission(self, request: HttpRequest, obj: Message | None = None) -> bool:
        return False if obj is not None else super().has_change_permission(request, obj)

    @admin.display(description="content")
    def short_content(self, message: Message) -> str:
        return message.content if len(message.content) <= 80 else f"{message.content[:79]}…"

    @admin.action(description="Delete (soft; delivered live)")
    def soft_delete(self, request: HttpRequest, queryset: QuerySet[Message]) -> None:
        actor, done = signed_in(request), 0
        for message in queryset.filter(deleted=False):
            delete_message(message=message, actor=actor, can_moderate=True)
            done += 1
        self.message_user(request, f"Deleted {done} message(s).", messages.SUCCESS)

    @admin.action(description="Restore (delivered live)")
    def restore(self, request: HttpRequest, queryset: QuerySet[Message]) -> None:
        done = 0
        for message in queryset.filter(deleted=True):
            restore_message(message=message)
            done += 1
        self.message_user(request, f"Restored {done} message(s).", messages.SUCCESS)
