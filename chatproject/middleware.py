"""HTTP middleware: a request id for every request (taken from `X-Request-ID` when a proxy
set a sane one, made up otherwise, bound to every log line of the request and echoed in the
answer), and the Content-Security-Policy header."""

import re
import uuid
from collections.abc import Callable

import structlog
from csp.middleware import CSPMiddleware, PolicyParts
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse, HttpResponseBase

from chatproject.transport.access_log import scrub

_SANE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        given = request.headers.get("X-Request-ID", "")
        request_id = given if _SANE.match(given) else uuid.uuid4().hex
        structlog.contextvars.clear_contextvars()
        # A webhook's path holds its key (SPEC 9.2): the access log's scrub takes it out.
        structlog.contextvars.bind_contextvars(request_id=request_id, path=scrub(request.path))
        try:
            response = self.get_response(request)
        finally:
            structlog.contextvars.clear_contextvars()
        response["X-Request-ID"] = request_id
        return response


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    """django-csp's middleware (the policy is `CONTENT_SECURITY_POLICY` in settings), with
    this host's WebSocket URLs added to `connect-src`.

    CSP Level 3 lets `'self'` match `ws:`/`wss:` on the page's own host, and current
    Chromium and Firefox follow it; older Safari did not, so the page's socket
    (`static/chat/socket.js` connects to `location.host`) is named outright. The host is
    the validated `request.get_host()` (Django allows only `[a-z0-9.-]` names, an IPv6
    literal and a port there), so nothing a client sends can add a directive.
    """

    def get_policy_parts(
        self, request: HttpRequest, response: HttpResponseBase, report_only: bool = False
    ) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        try:
            host = request.get_host()
        except DisallowedHost:
            return parts  # Django answers 400 for it; 'self' still covers the rest
        if host.startswith("["):
            return parts  # CSP has no syntax for an IPv6 literal: 'self' alone covers it
        update = dict(parts.update or {})
        update["connect-src"] = [*update.get("connect-src", []), f"ws://{host}", f"wss://{host}"]
        parts.update = update
        return parts
