"""Admin list filters that take typed input instead of listing every choice, so a filter
by room or sender stays one indexed lookup on a table of millions."""

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest


class InputFilter(admin.SimpleListFilter):
    template = "admin/input_filter.html"
    # The lookup applied to the typed value, e.g. "room_id" or "sender__username__iexact".
    lookup: str = ""
    numeric = False

    def lookups(self, request: HttpRequest, model_admin) -> list[tuple[str, str]]:
        return [("", "")]  # Django shows a filter only when it has choices

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = (self.value() or "").strip()
        if not value:
            return queryset
        if self.numeric and not value.isdigit():
            return queryset.none()
        return queryset.filter(**{self.lookup: value})

    def choices(self, changelist):
        # One "choice" carrying what the template needs to rebuild the query string.
        query = changelist.get_filters_params()
        query.pop(self.parameter_name, None)
        yield {
            "parameter_name": self.parameter_name,
            "value": self.value() or "",
            "other_params": [(k, v) for k, values in query.items() for v in _listed(values)],
        }


def _listed(values) -> list[str]:
    return list(values) if isinstance(values, list) else [values]


class RoomIdFilter(InputFilter):
    title = "room id"
    parameter_name = "room"
    lookup = "room_id"
    numeric = True


class SenderFilter(InputFilter):
    title = "sender (username)"
    parameter_name = "sender"
    lookup = "sender__username__iexact"
