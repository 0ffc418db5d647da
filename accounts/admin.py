from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import UserChangeForm as DjangoUserChangeForm
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts import services
from accounts.auth import signed_in
from accounts.models import User
from accounts.presence import online_user_ids
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
        "last_seen",
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
