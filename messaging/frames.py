"""Parsing and checking client frames, before any of them reaches a handler.

Every way a frame can be wrong becomes a `ChatError` with the code a client switches on;
nothing here raises anything else, so a bad frame never closes the socket with 1011.
"""

import json
import re
from typing import Any
from urllib.parse import parse_qs

from chatproject.errors import ChatError, ValidationFailed

MAX_DEPTH = 16
MAX_INT = 2**63 - 1
MAX_REF_LENGTH = 64
# A ref is echoed verbatim, and UTF-8 (the wire) cannot carry a lone surrogate.
_SURROGATE = re.compile("[\ud800-\udfff]")


class InvalidJSON(ChatError):
    code = "invalid_json"
    default_message = "Frames must be JSON text objects."


class UnknownType(ChatError):
    code = "unknown_type"


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def depth(value: Any) -> int:
    """How deeply `value` nests objects and lists (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in node.values())
        elif isinstance(node, list):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in node)
    return deepest


def parse(text: str | None) -> dict[str, Any]:
    """A frame's JSON object. Raises InvalidJSON or ValidationFailed."""
    if not text:
        raise InvalidJSON("Empty frame; frames must be JSON text objects.")
    try:
        frame = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise InvalidJSON("The frame is nested too deeply.") from None
    except ValueError as exc:  # JSONDecodeError, NaN/Infinity, integers too long to parse
        raise InvalidJSON(f"Malformed JSON: {exc}") from None
    if not isinstance(frame, dict):
        raise InvalidJSON("A frame must be a JSON object with a `type`.")
    if depth(frame) > MAX_DEPTH:
        raise ValidationFailed(f"The frame is nested deeper than {MAX_DEPTH} levels.")
    return frame


def ref_of(frame: dict[str, Any]) -> str | int | None:
    """The frame's `ref`, echoed in the answer; None when absent or unusable."""
    ref = frame.get("ref")
    if isinstance(ref, bool):
        return None
    if isinstance(ref, str) and len(ref) <= MAX_REF_LENGTH and not _SURROGATE.search(ref):
        return ref
    if isinstance(ref, int) and -MAX_INT <= ref <= MAX_INT:
        return ref
    return None


def check_ref(frame: dict[str, Any]) -> None:
    if "ref" in frame and frame["ref"] is not None and ref_of(frame) is None:
        raise ValidationFailed(
            f"ref must be a string of at most {MAX_REF_LENGTH} characters or an integer.",
            fields={"ref": ["Invalid."]},
        )


def type_of(frame: dict[str, Any]) -> str:
    kind = frame.get("type")
    if not isinstance(kind, str) or not kind:
        raise ValidationFailed("A frame needs a `type` string.", fields={"type": ["Required."]})
    return kind


def integer(frame: dict[str, Any], name: str, *, minimum: int = 0, required: bool = True):
    value = frame.get(name)
    if value is None:
        if required:
            raise ValidationFailed(f"`{name}` is required.", fields={name: ["Required."]})
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_INT:
        raise ValidationFailed(
            f"`{name}` must be an integer of at least {minimum}.", fields={name: ["Invalid."]}
        )
    return value


MAX_JOIN_BATCH = 100


def join_list(frame: dict[str, Any]) -> dict[int, int | None]:
    """A batched `join`'s `rooms`: `[{"room": 1, "after": 5}, {"room": 2}]` as
    {room: after or None}, in order; a room named twice counts once (its last `after`)."""
    rooms = frame.get("rooms")
    if not isinstance(rooms, list) or not 0 < len(rooms) <= MAX_JOIN_BATCH:
        raise ValidationFailed(
            f"`rooms` must be a list of 1 to {MAX_JOIN_BATCH} objects.",
            fields={"rooms": ["Invalid."]},
        )
    wanted: dict[int, int | None] = {}
    for item in rooms:
        if not isinstance(item, dict):
            raise ValidationFailed(
                "Each of `rooms` is an object: {room, after?}.", fields={"rooms": ["Invalid."]}
            )
        wanted[integer(item, "room", minimum=1)] = integer(item, "after", required=False)
    return wanted


def query_integer(scope: dict[str, Any], name: str) -> int | None:
    """A non-negative integer from the socket URL's query string (`?after_user=12`), or
    None when absent; raises ValidationFailed when it is not one."""
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get(name)
    if not values:
        return None
    value = values[-1]
    if not value.isascii() or not value.isdigit() or int(value) > MAX_INT:
        raise ValidationFailed(
            f"`{name}` must be a non-negative integer.", fields={name: ["Invalid."]}
        )
    return int(value)


def boolean(frame: dict[str, Any], name: str) -> bool:
    value = frame.get(name)
    if not isinstance(value, bool):
        raise ValidationFailed(f"`{name}` must be true or false.", fields={name: ["Invalid."]})
    return value


def string(frame: dict[str, Any], name: str, *, max_length: int = 4096) -> str:
    value = frame.get(name)
    if not isinstance(value, str) or not value or len(value) > max_length:
        raise ValidationFailed(f"`{name}` must be a non-empty string.", fields={name: ["Invalid."]})
    return value
