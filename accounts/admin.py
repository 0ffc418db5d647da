from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import UserChangeForm as DjangoUserChangeForm
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from accounts import integrations, services
from accounts.auth import signed_in
from accounts.models import ApiKey, User
from accounts.presence import online_user_ids
from chatproject.admin_display import short_moment
from chatproject.errors import ChatError


class UserChangeList(ChangeList):
    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        online = online_user_ids([user.pk for user in self.result_list])
        for user in self.result_list:
            user.online = user.pk in online


class UserChangeForm(DjangoUserChangeForm):
    """The username and display name rules are the model fields' validators
    (`accounts.names`); that a display name is nobody else's username needs the database."""

    def clean_display_name(self) -> str:
        try:
            return services.check_display_name(
                display_name=self.cleaned_data.get("display_name", ""), user_id=self.instance.pk
            )
        except ChatError as exc:
            raise forms.ValidationError(exc.message) from None


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    form = UserChangeForm
    list_display = [
        "username",
        "display_name",
        "email",
        "is_online",
        "seen",
        "is_staff",
        "is_active",
    ]
    list_filter = ["is_staff", "is_active"]
    fieldsets = [
        *(DjangoUserAdmin.fieldsets or ()),
        ("Chat", {"fields": ["display_name", "last_seen"]}),
    ]
    readonly_fields = ["last_seen", "last_login", "date_joined"]
    actions = ["deactivate", "activate"]

    def get_changelist(self, request: HttpRequest, **kwargs):
        return UserChangeList

    @admin.display(ordering="last_seen", description="last seen")
    def seen(self, user: User) -> str:
        return short_moment(user.last_seen)

    @admin.display(boolean=True, description="online")
    def is_online(self, user: User) -> bool:
        return getattr(user, "online", False)

    def save_model(self, request: HttpRequest, user: User, form, change: bool) -> None:
        deactivated = change and "is_active" in form.changed_data and not user.is_active
        super().save_model(request, user, form, change)
        if deactivated:
            services.set_active(user=user, active=False)

    def delete_model(self, request: HttpRequest, user: User) -> None:
        services.set_active(user=user, active=False)  # close their sockets first
        super().delete_model(request, user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        for user in queryset:
            services.set_active(user=user, active=False)
        super().delete_queryset(request, queryset)

    @admin.action(description="Deactivate (closes their sockets)")
    def deactivate(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        users = list(queryset.exclude(pk=signed_in(request).pk))
        for user in users:
            services.set_active(user=user, active=False)
        self.message_user(request, f"Deactivated {len(users)} user(s).", messages.SUCCESS)

    @admin.action(description="Activate")
    def activate(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        users = list(queryset)
        for user in users:
            services.set_active(user=user, active=True)
        self.message_user(request, f"Activated {len(users)} user(s).", messages.SUCCESS)


class ApiKeyForm(forms.ModelForm):
    """The key's name is its bot's display name: the same rules (`check_display_name`)."""

    class Meta:
        model = ApiKey
        fields = ["name", "rooms"]

    def clean_name(self) -> str:
        try:
            return services.check_display_name(display_name=self.cleaned_data.get("name", ""))
        except ChatError as exc:
            raise forms.ValidationError(exc.message) from None


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Integration keys (SPEC 9.2). Adding one shows the key once, on the page that
    answers the form (it is never stored, nor put in a message or the session)."""

    form = ApiKeyForm
    list_display = ["name", "prefix", "bot", "created_by", "created_at", "last_used_at", "revoked"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix", "bot__username"]
    fields = ["name", "rooms", "prefix", "bot", "created_by", "created_at", "last_used_at"]
    readonly_fields = ["prefix", "bot", "created_by", "created_at", "last_used_at", "revoked_at"]
    filter_horizontal = ["rooms"]
    actions = ["revoke"]

    def get_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> Any:
        return ["name", "rooms"] if obj is None else [*(self.fields or ()), "revoked_at"]

    def get_readonly_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> Any:
        # The name is the bot's display name, fixed when the key is issued.
        return self.readonly_fields if obj is None else [*self.readonly_fields, "name"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiKey]:
        return super().get_queryset(request).select_related("bot", "created_by")

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "rooms":  # a key posts into shared rooms, never a direct one
            kwargs["queryset"] = db_field.remote_field.model.objects.exclude(kind="direct")
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    @admin.display(boolean=True, description="revoked")
    def revoked(self, key: ApiKey) -> bool:
        return key.is_revoked

    def save_model(self, request: HttpRequest, key: ApiKey, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, key, form, change)
            return
        _, raw = integrations.issue_api_key(
            name=key.name,
            room_ids=[room.pk for room in form.cleaned_data["rooms"]],
            created_by=signed_in(request),
            instance=key,
        )
        request._issued_api_key = raw  # type: ignore[attr-defined]  # for response_add only

    def response_add(
        self, request: HttpRequest, obj: ApiKey, post_url_continue: str | None = None
    ) -> HttpResponse:
        raw = getattr(request, "_issued_api_key", None)
        if raw is None:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "key": obj,
            "raw_key": raw,
            "title": "Integration key issued",
        }
        response = TemplateResponse(request, "admin/accounts/apikey/issued.html", context)
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Revoke (the keys stop working at once)")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        keys = list(queryset.filter(revoked_at=None))
        for key in keys:
            integrations.revoke_api_key(key=key)
        self.message_user(request, f"Revoked {len(keys)} key(s).", messages.SUCCESS)
