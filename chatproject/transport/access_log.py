"""The access log: Daphne's action logger, as one structured line per HTTP request or
WebSocket event, on the `chatproject.access` logger, with secrets scrubbed from paths."""

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from chatproject.logs import get_logger

access_log = get_logger("chatproject.access")

# Daphne's WebSocket actions, as access-log events. The names differ from the consumer's
# own `ws_connected`/`ws_disconnected` (which carry the user): one close is one
# `ws_connection_closed` here and, for a served socket, one `ws_disconnected` there.
WEBSOCKET_EVENTS = {"rejected": "ws_rejected", "disconnected": "ws_connection_closed"}


# Query parameters whose values never reach a log: credentials (`?token=` on a WebSocket
# URL) and what people search for (`/api/messages/search/?q=`, `/api/users/?search=`),
# which is as private as the messages it finds. Names are compared in lower case, after
# percent-decoding (`%71=` is `q=`).
REDACTED_PARAMETERS = frozenset({"token", "access", "refresh", "q", "search"})


# An incoming webhook's URL holds its integration key (`/api/hooks/<key>/`, SPEC 9.2).
_WEBHOOK_KEY = re.compile(r"(/api/hooks/)[^/?]+")


def scrub(path: str) -> str:
    """The path with the values of `REDACTED_PARAMETERS` replaced in its query string,
    and a webhook's key replaced in the path."""
    parts = urlsplit(_WEBHOOK_KEY.sub(r"\1[redacted]", path))
    if not parts.query:
        return parts.path
    query = [
        (k, "[redacted]" if k.lower() in REDACTED_PARAMETERS else v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return f"{parts.path}?{urlencode(query, safe='[]')}"


def log_action(protocol: str, action: str, details: dict[str, Any]) -> None:
    """Daphne's action logger (`Server(action_logger=...)`)."""
    path = scrub(str(details.get("path", "")))
    if protocol == "http" and action == "complete":
        access_log.info(
            "http_request",
            method=details.get("method"),
            path=path,
            status=details.get("status"),
            duration_ms=round((details.get("time_taken") or 0) * 1000, 1),
            size=details.get("size"),
            client=details.get("client"),
        )
    elif protocol == "websocket" and action in WEBSOCKET_EVENTS:
        access_log.info(WEBSOCKET_EVENTS[action], path=path, client=details.get("client"))
