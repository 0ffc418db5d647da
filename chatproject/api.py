"""REST plumbing shared by every app: the JSON parser, the exception handler and
pagination."""

import json
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError
from rest_framework import exceptions, parsers, renderers, status
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from chatproject.errors import ChatError, RateLimited
from chatproject.logs import get_logger

log = get_logger(__name__)

# Deepest JSON body accepted: a room, a message and its `payload` need a handful of
# levels; a WebSocket frame has the same limit (messaging.frames.MAX_DEPTH).
MAX_JSON_DEPTH = 16
# The request body of an upload (an attachment, a picture): one file, for the schema.
FILE_UPLOAD: dict[str, Any] = {
    "multipart/form-data": {
        "type": "object",
        "properties": {"file": {"type": "string", "format": "binary"}},
    }
}


def json_depth(value: Any) -> int:
    """How deeply `value` nests lists and objects (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            node = list(node.values())
        if isinstance(node, list):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in node)
    return deepest


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, with a `code` on its errors and a depth limit. DRF's own lets a
    deeply nested body (`[[[[...`, a few KiB) escape as a RecursionError, a 500 on any
    view, the unauthenticated login included; and a body that decodes but nests near
    the interpreter's recursion limit would fail later, wherever it is walked again."""

    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError(
                "JSON parse error - the body is nested too deeply.", code="invalid_json"
            ) from None
        except exceptions.ParseError as exc:
            raise exceptions.ParseError(str(exc.detail), code="invalid_json") from None
        if json_depth(data) > MAX_JSON_DEPTH:
            raise exceptions.ParseError(
                f"The body is nested deeper than {MAX_JSON_DEPTH} levels.",
                code="validation_error",
            )
        return data


def _infrastructure_errors() -> tuple[type[Exception], ...]:
    from django.db import InterfaceError, OperationalError
    from redis.exceptions import ConnectionError, TimeoutError

    return (OperationalError, InterfaceError, ConnectionError, TimeoutError)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, taught our `ChatError` family: `{"detail", "code"}` and its status."""
    if isinstance(exc, _infrastructure_errors()):
        # The database or Redis is down: answer 503 `unavailable`, as the WebSocket does,
        # not a 500. A retry with the same client_id never stores a second copy.
        log.exception("request_unavailable")
        body: dict[str, Any] = {
            "detail": "The server cannot store this right now; try again.",
            "code": "unavailable",
        }
        return Response(body, status=status.HTTP_503_SERVICE_UNAVAILABLE)
    if isinstance(exc, ChatError):
        body = {"detail": exc.message, "code": exc.code}
        if exc.fields:
            body.update(exc.fields)
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
        return Response(body, status=exc.status, headers=headers)
    if isinstance(exc, DataError):
        # A value the database cannot take (a NUL character in a search, an integer out
        # of range): the client's input, so 400, never a 500.
        body = {
            "detail": "A value cannot be stored or searched as given.",
            "code": "validation_error",
        }
        return Response(body, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(detail=exc.messages)
    # Imported here, not at the top: `rest_framework.views` reads DEFAULT_RENDERER_CLASSES
    # while it loads, and that setting names this module, so a top-level import is a cycle
    # whose outcome depends on which module Django's checks happen to load first.
    from rest_framework.views import exception_handler as drf_exception_handler

    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ParseError):
        response.data = {"detail": str(exc.detail), "code": exc.get_codes()}
    elif response.status_code == status.HTTP_413_REQUEST_ENTITY_TOO_LARGE:
        response.data = {"detail": str(exc), "code": "too_large"}
    elif isinstance(exc, exceptions.APIException) and not isinstance(
        exc, exceptions.ValidationError
    ):
        # DRF's and SimpleJWT's own refusals (no credentials, an invalid token, a method
        # the view lacks, a media type it cannot parse) in the shape and codes of ours.
        data = response.data if isinstance(response.data, dict) else {}
        code = data.get("code") or exc.get_codes()
        code = DRF_CODES.get(code, code) if isinstance(code, str) else "error"
        response.data = {"detail": str(data.get("detail", exc.detail)), "code": code}
    return response


# DRF's codes where the project has its own name for the same refusal.
DRF_CODES = {
    "not_authenticated": "unauthenticated",
    "authentication_failed": "unauthenticated",
    "permission_denied": "forbidden",
    "throttled": "rate_limited",
    "token_not_valid": "unauthenticated",
    "user_not_found": "unauthenticated",
    "user_inactive": "unauthenticated",
}


class CursorPage(CursorPagination):
    """`{"results", "next", "previous"}`; each view names its `ordering`."""

    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 200
    ordering = "-pk"

    def get_ordering(self, request, queryset, view):
        ordering = getattr(view, "ordering", None) or self.ordering
        return (ordering,) if isinstance(ordering, str) else tuple(ordering)


class JSONRenderer(renderers.JSONRenderer):
    """DRF's renderer, which cannot encode a lone surrogate (an error message may quote
    one from the input): such a body is written with \\u escapes instead of failing."""

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        try:
            return super().render(data, accepted_media_type, renderer_context)
        except UnicodeEncodeError:
            return json.dumps(data, cls=self.encoder_class, ensure_ascii=True).encode()
