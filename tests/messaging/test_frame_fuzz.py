"""Property tests of the WebSocket frame protocol (SPEC §4): no frame, however wrong, gets
anything but a documented answer, and none closes the socket.

`frames.parse` is fuzzed directly with arbitrary text and JSON-ish values; the consumer is
fuzzed through the real ASGI application (`WebsocketCommunicator`): each example opens one
authenticated socket and sends it a batch of random frames, checking every answer.
"""

import asyncio
import contextlib
import json
import time
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatproject.errors import ChatError
from messaging import frames
from messaging.consumers import ChatConsumer
from tests.messaging.test_consumer import recv, send_raw_text, signed_in

# ----------------------------------------------------------------------- strategies

# Characters JSON and the database treat specially: NUL, lone surrogates, and a BOM.
AWKWARD = st.sampled_from(["\x00", "\ud800", "\udbff", "\udc00", "\udfff", "\ufeff", "\u2028"])
strings = st.text(st.characters() | AWKWARD, max_size=40)
integers = (
    st.integers()
    | st.integers(min_value=2**63 - 3, max_value=2**63 + 3)
    | st.integers(min_value=-(2**63) - 3, max_value=-(2**63) + 3)
    | st.integers(min_value=10**300, max_value=10**301)  # huge, yet printable by json
)
scalars = st.none() | st.booleans() | integers | st.floats() | strings
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(strings, children, max_size=4)
    ),
    max_leaves=20,
)


@st.composite
def nested(draw) -> Any:
    """A value nested around MAX_DEPTH levels, in lists and objects."""
    value: Any = draw(scalars)
    for _ in range(draw(st.integers(min_value=1, max_value=frames.MAX_DEPTH + 8))):
        value = [value] if draw(st.booleans()) else {draw(strings): value}
    return value


def json_text(value: Any, ensure_ascii: bool = True) -> str:
    # json.dumps writes NaN and Infinity, which the server must refuse as invalid_json.
    return json.dumps(value, ensure_ascii=ensure_ascii)


@st.composite
def jsonish_texts(draw) -> str:
    """Text near JSON: whole documents, cut or spliced ones, huge numbers, deep brackets."""
    value = draw(json_values | nested())
    text = json_text(value, ensure_ascii=draw(st.booleans()))
    how = draw(st.sampled_from(["whole", "cut", "splice", "digits", "brackets", "object"]))
    if how == "cut":
        text = text[: draw(st.integers(min_value=0, max_value=len(text)))]
    elif how == "splice":
        at = draw(st.integers(min_value=0, max_value=len(text)))
        text = text[:at] + draw(st.text(max_size=5)) + text[at:]
    elif how == "digits":  # past Python's int-from-string limit (4300 digits)
        text = '{"type": "join", "room": ' + "9" * draw(st.integers(4000, 5000)) + "}"
    elif how == "brackets":
        depth = draw(st.integers(min_value=1, max_value=100_000))
        text = draw(st.sampled_from(["[", '{"a":'])) * depth
    elif how == "object":
        text = json_text({"type": draw(strings), "v": value}, ensure_ascii=draw(st.booleans()))
    return text


# Real frame types, the server's own types (not client frames), and junk.
FRAME_TYPES = sorted(ChatConsumer.HANDLERS)
frame_types = (
    st.sampled_from(FRAME_TYPES)
    | st.sampled_from(["error", "ack", "pong", "authenticated", "Ping", " ping", ""])
    | json_values
)
refs = (
    st.none()
    | st.text(max_size=frames.MAX_REF_LENGTH + 4)
    | strings
    | integers
    | st.booleans()
    | st.floats()
    | json_values
)
FIELDS = [
    *("room", "after", "content", "client_id", "title", "payload", "attachment_urls"),
    *("attachments", "reply_to", "is_typing", "message_id", "user_id", "token"),
]


# The fields each real frame type reads (SPEC §4).
FIELDS_OF = {
    "authenticate": ["token"],
    "join": ["room", "after"],
    "leave": ["room"],
    "message": ["room", "content", "client_id", "title", "payload", "reply_to"],
    "typing": ["room", "is_typing"],
    "read": ["room", "message_id"],
    "subscribe_status": ["user_id"],
    "unsubscribe_status": ["user_id"],
    "ping": [],
}


@st.composite
def client_frames(draw, room_ids: list[int], user_ids: list[int]) -> str:
    """A frame as sent on the wire: half of them well-formed frames of a real type (some
    with one field made wrong), the rest JSON objects with a random `type`, `ref` and
    fields of random JSON types, and some any text at all."""
    how = draw(st.sampled_from(["text", "random", "plausible", "plausible", "perturbed"]))
    if how == "text":
        # UTF-8 on the wire cannot carry a lone surrogate; JSON escapes (below) can.
        return draw(st.text(max_size=60) | jsonish_texts().filter(_utf8))
    ids = st.sampled_from(room_ids + user_ids) | st.integers(min_value=-2, max_value=10**6)
    junk = ids | strings | st.booleans() | json_values | nested()
    if how == "random":
        frame: dict[str, Any] = {"type": draw(frame_types)}
        names = draw(st.lists(st.sampled_from(FIELDS), unique=True, max_size=6))
        frame.update({name: draw(junk) for name in names})
        frame.update(draw(st.dictionaries(strings, json_values, max_size=2)))
    else:
        kind = draw(st.sampled_from(FRAME_TYPES))
        good = {
            "token": st.text(max_size=20),
            "room": st.sampled_from(room_ids),
            "after": st.integers(min_value=0, max_value=30),
            "content": st.text(min_size=1, max_size=50) | strings,
            "client_id": st.uuids().map(str) | strings,
            "title": strings,
            "payload": json_values,
            "reply_to": st.none() | st.integers(min_value=1, max_value=30),
            "is_typing": st.booleans(),
            "message_id": st.integers(min_value=1, max_value=30),
            "user_id": st.sampled_from(user_ids),
        }
        frame = {"type": kind}
        for name in FIELDS_OF[kind]:
            if name in ("room", "content", "is_typing", "message_id", "user_id") or draw(
                st.booleans()
            ):
                frame[name] = draw(good[name])
        if how == "perturbed" and FIELDS_OF[kind]:
            frame[draw(st.sampled_from(FIELDS_OF[kind]))] = draw(junk)
    if draw(st.booleans()):
        usable = st.text(max_size=frames.MAX_REF_LENGTH) | st.integers(-(2**63) + 1, 2**63 - 1)
        frame["ref"] = draw(usable if how == "plausible" else refs)
    return json_text(frame)


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# --------------------------------------------------------------- frames.parse


def _parse_or_chat_error(text: str) -> None:
    try:
        frame = frames.parse(text)
    except ChatError:
        return
    assert isinstance(frame, dict)
    # What the consumer does next with a parsed frame raises nothing else either.
    for step in (frames.ref_of, frames.check_ref, frames.type_of):
        with contextlib.suppress(ChatError):
            step(frame)


@settings(max_examples=500, deadline=None)
@given(st.text())
def test_parse_refuses_any_text_with_chat_errors_only(text):
    _parse_or_chat_error(text)


@settings(max_examples=500, deadline=None)
@given(jsonish_texts())
def test_parse_refuses_jsonish_text_with_chat_errors_only(text):
    _parse_or_chat_error(text)


@settings(max_examples=300, deadline=None)
@given(json_values | nested())
def test_parse_returns_every_json_object(value):
    try:
        text = json_text(value)
    except ValueError:  # an int past Python's int-to-string limit
        return
    try:
        frame = frames.parse(text)
    except frames.InvalidJSON:
        # Only non-objects and NaN/Infinity (not JSON) are invalid JSON.
        assert not isinstance(value, dict) or "NaN" in text or "Infinity" in text
        return
    except ChatError as exc:
        assert exc.code == "validation_error"  # nested deeper than MAX_DEPTH
        return
    assert isinstance(frame, dict)


# ------------------------------------------------------------------ the consumer

# SPEC §4 and the README's additions: everything the server may send, and the error codes
# of a bad frame. `unavailable` is left out on purpose: here it could only mean an
# unexpected exception, which is a bug.
SERVER_TYPES = {
    "room_added",
    "room_removed",
    "room_updated",
    "membership_changed",
    "room_read",
    "room_deleted",
    "room_purged",
    "authenticated",
    "message",
    "message_updated",
    "message_deleted",
    "reaction_added",
    "reaction_removed",
    "user_joined",
    "user_left",
    "room_users",
    "user_online",
    "user_offline",
    "typing",
    "ack",
    "error",
    "pong",
}
ANSWER_TYPES = {"ack", "error", "pong", "authenticated"}
ERROR_CODES = {
    "invalid_json",
    "unknown_type",
    "validation_error",
    "too_long",
    "not_found",
    "forbidden",
    "rate_limited",
    "unauthenticated",
}
FRAMES_PER_SOCKET = 600


def _expected_ref(text: str) -> Any:
    try:
        return frames.ref_of(frames.parse(text))
    except ChatError:
        return None


def _sent_type(text: str) -> Any:
    try:
        return frames.parse(text).get("type")
    except ChatError:
        return None


def _check_server_frame(frame: dict[str, Any], sent: str) -> None:
    assert frame["type"] in SERVER_TYPES, (frame, sent)
    if frame["type"] == "error":
        assert frame.get("code") in ERROR_CODES, (frame, sent)
        assert isinstance(frame.get("message"), str), (frame, sent)


async def _exchange(comm, text: str, sync_ref: str) -> list[dict[str, Any]]:
    """Send `text`, then a `ping` whose `pong` marks the end of its answers; return every
    frame received in between (each already checked to be a UTF-8 JSON object)."""
    await send_raw_text(comm, text)
    await comm.send_json_to({"type": "ping", "ref": sync_ref})
    received = []
    deadline = time.monotonic() + 5
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no pong after {text!r}; got {received}"
        frame = await recv(comm, left)  # fails if the socket was closed (even with 1011)
        if frame["type"] == "pong" and frame.get("ref") == sync_ref:
            return received
        received.append(frame)


@pytest.mark.django_db(transaction=True)
def test_consumer_answers_every_random_frame_and_stays_open(user, other_user, alice_token, general):
    """One authenticated socket, FRAMES_PER_SOCKET random frames (one per example of the
    inner property): each gets documented answers only, and the socket never closes."""
    from tests.factories import make_room

    private = make_room(owner=other_user, kind="private")  # alice is not a member
    room_ids = [general.pk, private.pk, general.pk + private.pk + 1000]
    user_ids = [user.pk, other_user.pk, user.pk + other_user.pk + 1000]

    # The socket lives on one event loop for the whole test; each example runs on it.
    loop = asyncio.new_event_loop()
    socket = signed_in(alice_token)
    comm = loop.run_until_complete(socket.__aenter__())
    sent = iter(range(10**9))
    errors = 0

    @settings(
        max_examples=FRAMES_PER_SOCKET,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(text=client_frames(room_ids, user_ids))
    def answers_documented_frames(text: str) -> None:
        nonlocal errors
        received = loop.run_until_complete(_exchange(comm, text, sync_ref=f"sync-{next(sent)}"))
        errors += any(f["type"] == "error" for f in received)
        for frame in received:
            _check_server_frame(frame, text)
        # One answer per frame, carrying its ref; a successful `typing` has none.
        answers = [f for f in received if f["type"] in ANSWER_TYPES]
        assert len(answers) <= 1, (text, received)
        if _sent_type(text) != "typing":
            assert len(answers) == 1, (text, received)
        for answer in answers:
            assert answer.get("ref") == _expected_ref(text), (text, answer)

    async def still_open() -> None:
        await comm.send_json_to({"type": "ping", "ref": "last"})
        frame = await recv(comm)
        while frame["type"] != "pong":
            _check_server_frame(frame, "(the last ping)")
            frame = await recv(comm)
        assert frame == {"type": "pong", "ref": "last"}

    try:
        answers_documented_frames()
        loop.run_until_complete(still_open())
        frames = next(sent)
        print(f"FIGURE ws_fuzz frames={frames} answered_with_error={errors} closed=0 crashes=0")
    finally:
        loop.run_until_complete(socket.__aexit__(None, None, None))
        # Database work ran in asgiref's worker thread: close its connection too.
        loop.run_until_complete(sync_to_async(connections.close_all)())
        loop.close()
