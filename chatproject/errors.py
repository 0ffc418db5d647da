"""One error family for REST and WebSocket clients.

A `ChatError` carries the `code` a WebSocket `error` frame shows and the HTTP `status`
a REST answer uses, so both kinds of client switch on the same code. Apps subclass it.
"""

from typing import Any


class ChatError(Exception):
    code = "error"
    status = 400
    default_message = "The request could not be processed."

    def __init__(self, message: str | None = None, *, fields: dict[str, Any] | None = None):
        self.message = message or self.default_message
        self.fields = fields or {}
        super().__init__(self.message)

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.fields:
            body["fields"] = self.fields
        return body


class ValidationFailed(ChatError):
    code = "validation_error"
    status = 400
    default_message = "Invalid input."


class TooLong(ValidationFailed):
    code = "too_long"
    default_message = "Content is too long."


class NotFound(ChatError):
    code = "not_found"
    status = 404
    default_message = "Not found."


class Forbidden(ChatError):
    code = "forbidden"
    status = 403
    default_message = "You are not allowed to do this."


class Unauthenticated(ChatError):
    code = "unauthenticated"
    status = 401
    default_message = "Authentication required."


class RateLimited(ChatError):
    code = "rate_limited"
    status = 429
    default_message = "Too many requests; slow down."

    def __init__(self, message: str | None = None, *, retry_after: int = 1):
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))


class QuotaExceeded(ChatError):
    """A store that has a size budget per user is full (UPLOAD_QUOTA_MB)."""

    code = "quota_exceeded"
    status = 413
    default_message = "Your storage quota is used up."


class Unavailable(ChatError):
    """The database could not store this one request; nothing of it was acknowledged."""

    code = "unavailable"
    status = 503
    default_message = "The server cannot store this right now; try again."
