"""The one check of user text, shared by every app: REST and WebSocket input, room names,
message content, titles, emoji and JSON payloads accept and refuse the same characters."""

import re
import unicodedata
from typing import Any

from chatproject.errors import TooLong, ValidationFailed

# NUL breaks PostgreSQL text; lone surrogates cannot be encoded as UTF-8.
FORBIDDEN_CHARS = re.compile("[\x00\ud800-\udfff]")


def clean_text(value: str, *, field: str, max_length: int) -> str:
    """`value`, or ValidationFailed / TooLong naming `field`.

    Length is counted in Unicode code points (what Python's `len` counts).
    """
    if FORBIDDEN_CHARS.search(value):
        raise ValidationFailed(
            f"{field} contains a NUL or a lone surrogate character.",
            fields={field: ["Contains a NUL or a lone surrogate character."]},
        )
    if len(value) > max_length:
        raise TooLong(
            f"{field} is {len(value)} characters long; the limit is {max_length}.",
            fields={field: [f"Ensure this field has no more than {max_length} characters."]},
        )
    return value


# Characters that show nothing, or reorder what follows, beside those category Cc/Cf hold
# (controls; format characters: bidi embeddings, overrides and isolates, zero-width
# spaces and joiners, the BOM): letters that render blank ("Hangul filler" and kin) and
# the line and paragraph separators.
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2028\u2029\u180e")


def invisible_char(value: str) -> str | None:
    """The first character of `value` a reader cannot see or that changes how the text
    around it is shown (a control, a bidi override, a zero-width character), else None.

    For names people recognise each other by (display names), where such a character
    would let one name pass for another."""
    for char in value:
        if char in _BLANK_LETTERS or unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co"):
            return char
    return None


def has_forbidden_chars(value: Any) -> bool:
    """Whether any key or string of a JSON value holds a character `clean_text` refuses."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, str) and FORBIDDEN_CHARS.search(node):
            return True
    return False
