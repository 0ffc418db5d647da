"""The Host and Origin checks of WebSocket handshakes (cross-site WebSocket hijacking).

Django checks every HTTP request's `Host` against `ALLOWED_HOSTS`; Channels does not, so
the handshake does it here, with Django's own functions (`split_domain_port`,
`validate_host`, and its DEBUG fallback for an empty list).

A browser always sends `Origin`; it must be one of `ALLOWED_ORIGINS` or the server's own:
the scheme and the `Host` the browser connected to, as Django's CSRF check compares a
form's `Origin` with `https` or `http` and the request's host. A socket reached over
`wss` (TLS, usually ended by a proxy) belongs to an `https://` page only: an `http://`
page of the same host (plain HTTP, which anyone on the path can rewrite) is another
origin. A client without `Origin` is not a browser, cannot carry a victim's cookies, and
is let through to authenticate like any API client.
"""

from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import split_domain_port, validate_host

from chatproject.logs import get_logger

log = get_logger(__name__)

# The page scheme that is the same origin as a socket's scheme.
_PAGE_SCHEME = {"ws": "http", "wss": "https"}


def header(scope: dict, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


def host_allowed(scope: dict) -> bool:
    """The handshake's `Host` is one of `ALLOWED_HOSTS`, as `HttpRequest.get_host` decides
    (without the header, which no browser leaves out, the server's name stands in, as
    Django's SERVER_NAME does)."""
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    host = header(scope, b"host")
    if host is None:
        server = scope.get("server")
        host = str(server[0]) if server else "unknown"
    domain, _ = split_domain_port(host)
    return bool(domain) and validate_host(domain, allowed)


def socket_scheme(scope: dict) -> str:
    """`ws` or `wss`: the scope's `scheme` when the server sets one (`manage.py serve`
    does, from trusted proxies' `X-Forwarded-Proto`), else (Daphne alone, `runserver`)
    the `X-Forwarded-Proto` header, else ASGI's default, `ws`.

    The header is believed from any peer here, and that is safe for this check only: it
    guards browsers, and a browser's script cannot set a handshake header, so a browser's
    handshake carries the header only when a proxy put it there. A non-browser client
    that sets it gains nothing: it has no victim's cookie to ride on.
    """
    scheme = scope.get("scheme")
    if scheme in _PAGE_SCHEME:
        return scheme
    forwarded = (header(scope, b"x-forwarded-proto") or "").split(",")[0].strip().lower()
    return "wss" if forwarded in ("https", "wss") else "ws"


def origin_allowed(scope: dict) -> bool:
    """The handshake may go on: its `Host` is allowed and its `Origin`, when it has one,
    is allowed or the server's own (scheme included). Refusals are closed with 4403."""
    host = (header(scope, b"host") or "").strip().lower()
    if not host_allowed(scope):
        log.info("ws_refused_host", host=host[:255])
        return False
    origin = header(scope, b"origin")
    if origin is None:
        return True
    origin = origin.strip().rstrip("/").lower()
    if origin in {allowed.rstrip("/").lower() for allowed in settings.ALLOWED_ORIGINS}:
        return True
    try:
        parts = urlsplit(origin)
        netloc = parts.netloc
    except ValueError:  # "http://[oops": no origin of anyone's
        return False
    return parts.scheme == _PAGE_SCHEME[socket_scheme(scope)] and netloc == host
