"""The Origin check of WebSocket handshakes (cross-site WebSocket hijacking).

A browser always sends `Origin`; it must be one of `ALLOWED_ORIGINS` or the server's own
(the `Host` the browser connected to). A client without `Origin` is not a browser, cannot
carry a victim's cookies, and is let through to authenticate like any API client.
"""

from urllib.parse import urlsplit

from django.conf import settings


def header(scope: dict, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


def origin_allowed(scope: dict) -> bool:
    origin = header(scope, b"origin")
    if origin is None:
        return True
    origin = origin.strip().rstrip("/").lower()
    if origin in {allowed.rstrip("/").lower() for allowed in settings.ALLOWED_ORIGINS}:
        return True
    host = (header(scope, b"host") or "").strip().lower()
    parts = urlsplit(origin)
    return bool(host) and parts.scheme in ("http", "https") and parts.netloc == host
