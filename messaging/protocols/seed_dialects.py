"""The frames of the simple endpoint `/ws`, in the dialect of each seed server (SPEC 9.4):
what a client's frame posts, and what an event looks like to that client. Parsing and
encoding only; the consumer that serves them is `messaging.protocols.simple`.

- Seed 003 (`RoomDialect`): the client sends `{"content"}`; the server sends
  `{"type":"message","room_id","sender_id","username","content","ts"}` (ts in ms), also
  the shape of `GET /api/messages` (`room_message`, used by `seed_rest`).
- Seed 002 (`NicknameDialect`): the client sends `{"type":"chat","content"}`; the server
  sends `{"type":"join"|"leave"|"chat"|"error","username","content","timestamp"}`.
- Seeds 000, 001 (`BroadcastDialect`): the client sends `{"type":2,"body"}` or plain
  text; the server sends `{"type":1|2,"body"}` (1: system notices, 2: chat).

These frames are the seeds' own, not the native catalogue's (`chatproject.events`): they
are declared and built here, and their type values are named constants so that the
catalogue's scan for native frames built elsewhere does not mistake seed 003's
`"message"` or seed 002's `"error"` for one. Fields a seed does not define are added only
to errors (`code`), which no seed defines.
"""

import json
from abc import ABC, abstractmethod
from datetime import UTC, datetime
from typing import Any, Literal, TypedDict

from django.utils import timezone

from accounts.guests import GUEST_PREFIX
from chatproject import events
from chatproject.errors import ChatError, ValidationFailed

# The seeds' frame types (see the module's text for why they are constants).
SEED3_MESSAGE: Literal["message"] = "message"
SEED3_ERROR: Literal["error"] = "error"
SEED2_JOIN: Literal["join"] = "join"
SEED2_LEAVE: Literal["leave"] = "leave"
SEED2_CHAT: Literal["chat"] = "chat"
SEED2_ERROR: Literal["error"] = "error"
SYSTEM_NOTICE: Literal[1] = 1  # seeds 000/001
CHAT_MESSAGE: Literal[2] = 2


class RoomMessage(TypedDict):
    """Seed 003's message, on its socket and in `GET /api/messages`."""

    type: Literal["message"]
    room_id: int
    sender_id: int | None
    username: str
    content: str
    ts: int  # milliseconds since the epoch


class RoomError(TypedDict):
    type: Literal["error"]
    code: str
    message: str


class NicknameFrame(TypedDict, total=False):
    """Seed 002's frame (`code` on errors only)."""

    type: Literal["join", "leave", "chat", "error"]
    username: str
    content: str
    timestamp: str
    code: str


class BroadcastFrame(TypedDict, total=False):
    """Seeds 000/001's frame: 1 a system notice, 2 a chat message (`code` on errors)."""

    type: Literal[1, 2]
    body: str
    code: str


def shown_name(user: events.UserBrief | dict[str, Any] | None) -> str:
    """The name a seed client shows: the username, or a guest's nickname."""
    if not user:
        return ""
    username = str(user.get("username") or "")
    if username.startswith(GUEST_PREFIX):
        return str(user.get("display_name") or username[len(GUEST_PREFIX) :])
    return username


def millis(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def _now_iso() -> str:
    return timezone.now().astimezone(UTC).isoformat().replace("+00:00", "Z")


def room_message(data: events.MessageData) -> RoomMessage:
    sender = data["sender"]
    return {
        "type": SEED3_MESSAGE,
        "room_id": data["room"],
        "sender_id": sender["id"] if sender else None,
        "username": shown_name(sender),
        "content": data["content"],
        "ts": millis(data["created_at"]),
    }


class Dialect(ABC):
    """One seed's frames: what a client's frame posts, and what events look like."""

    @abstractmethod
    def content_of(self, text: str) -> str: ...

    @abstractmethod
    def chat(self, data: events.MessageData) -> dict[str, Any] | None: ...

    def presence(self, name: str, *, joined: bool) -> dict[str, Any] | None:
        return None  # seeds that announce nobody

    @abstractmethod
    def error(self, exc: ChatError) -> dict[str, Any]: ...


def _json_object(text: str) -> dict[str, Any]:
    try:
        frame = json.loads(text)
    except ValueError:
        raise ValidationFailed("Send a JSON object.") from None
    if not isinstance(frame, dict):
        raise ValidationFailed("Send a JSON object.")
    return frame


def _text_field(frame: dict[str, Any], name: str) -> str:
    value = frame.get(name)
    if not isinstance(value, str):
        raise ValidationFailed(f"`{name}` must be a string.", fields={name: ["A string."]})
    return value


class RoomDialect(Dialect):
    """Seed 003: `{"content"}` in, `{"type":"message",…}` out."""

    def content_of(self, text: str) -> str:
        return _text_field(_json_object(text), "content")

    def chat(self, data: events.MessageData) -> dict[str, Any] | None:
        return dict(room_message(data))

    def error(self, exc: ChatError) -> dict[str, Any]:
        frame: RoomError = {"type": SEED3_ERROR, "code": exc.code, "message": exc.message}
        return dict(frame)


class NicknameDialect(Dialect):
    """Seed 002: `{"type":"chat","content"}` in; join, leave, chat and error out."""

    def content_of(self, text: str) -> str:
        frame = _json_object(text)
        if frame.get("type", SEED2_CHAT) != SEED2_CHAT:
            raise ValidationFailed("Send frames of type `chat`.", fields={"type": ["chat"]})
        return _text_field(frame, "content")

    def chat(self, data: events.MessageData) -> dict[str, Any] | None:
        frame: NicknameFrame = {
            "type": SEED2_CHAT,
            "username": shown_name(data["sender"]),
            "content": data["content"],
            "timestamp": data["created_at"],
        }
        return dict(frame)

    def presence(self, name: str, *, joined: bool) -> dict[str, Any] | None:
        frame: NicknameFrame = {
            "type": SEED2_JOIN if joined else SEED2_LEAVE,
            "username": name,
            "content": f"{name} {'joined' if joined else 'left'} the chat",
            "timestamp": _now_iso(),
        }
        return dict(frame)

    def error(self, exc: ChatError) -> dict[str, Any]:
        frame: NicknameFrame = {
            "type": SEED2_ERROR,
            "username": "system",
            "content": exc.message,
            "timestamp": _now_iso(),
            "code": exc.code,
        }
        return dict(frame)


class BroadcastDialect(Dialect):
    """Seeds 000/001: `{"type":2,"body"}` or plain text in; `{"type":1|2,"body"}` out."""

    def content_of(self, text: str) -> str:
        try:
            frame = json.loads(text)
        except ValueError:
            return text  # plain text is a chat message
        if isinstance(frame, str):
            return frame
        if not isinstance(frame, dict):
            return text
        if frame.get("type", CHAT_MESSAGE) != CHAT_MESSAGE:
            raise ValidationFailed("Send chat messages as type 2.", fields={"type": ["2"]})
        return _text_field(frame, "body")

    def chat(self, data: events.MessageData) -> dict[str, Any] | None:
        frame: BroadcastFrame = {"type": CHAT_MESSAGE, "body": data["content"]}
        return dict(frame)

    def presence(self, name: str, *, joined: bool) -> dict[str, Any] | None:
        frame: BroadcastFrame = {
            "type": SYSTEM_NOTICE,
            "body": f"{name} {'joined' if joined else 'left'} the chat",
        }
        return dict(frame)

    def error(self, exc: ChatError) -> dict[str, Any]:
        frame: BroadcastFrame = {
            "type": SYSTEM_NOTICE,
            "body": f"Error: {exc.message}",
            "code": exc.code,
        }
        return dict(frame)
