"""The event catalogue (`chatproject/events.py`) against what documents and builds frames.

- The README's "server → client" table lists exactly the frame types of `CLIENT_FRAMES`,
  each with exactly its TypedDict's fields.
- `message_data`, the shape of every message a frame carries, is a `MessageData`.
- No first-party module builds a frame as a dict literal: the builders are the only place.
- The builders leave `ref` out when there is none, and `error` carries `retry_after`.

`check_frame` is also what the end-to-end session (`tests/e2e/test_catalogue.py`) holds
every real frame to.
"""

import ast
import re
from pathlib import Path
from typing import Any, get_args

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from typeguard import CollectionCheckStrategy, TypeCheckError, check_type

from chatproject import events
from chatproject.errors import ChatError, NotFound, RateLimited, ValidationFailed
from chatproject.events import CLIENT_FRAMES, CONTROL_EVENTS, MessageData
from messaging.attachments import store_attachment
from messaging.changes import add_reaction, delete_message
from messaging.models import Message
from messaging.posting import post_message
from messaging.serializers import message_data
from messaging.stream import lock_room, post_notice
from tests.factories import add_member, make_room

ROOT = Path(__file__).resolve().parent.parent
FIRST_PARTY = ["accounts", "rooms", "messaging", "chatproject"]


def conforms(value: Any, declared: Any) -> None:
    """Raise TypeCheckError unless `value` is a `declared` (every item of every list is
    checked; typeguard's default checks only the first)."""
    check_type(value, declared, collection_check_strategy=CollectionCheckStrategy.ALL_ITEMS)


def check_frame(frame: Any) -> None:
    """A frame a client received is one `CLIENT_FRAMES` declares, with exactly its fields."""
    assert isinstance(frame, dict), frame
    kind = frame.get("type")
    assert kind not in CONTROL_EVENTS, f"a control event reached a client: {frame}"
    assert kind in CLIENT_FRAMES, f"undeclared frame type: {frame}"
    try:
        conforms(frame, CLIENT_FRAMES[kind])
    except TypeCheckError as exc:
        message = f"{kind} frame does not match its declaration: {exc}\n{frame}"
        raise AssertionError(message) from None


# ----------------------------------------------------------------- the catalogue


def test_each_declared_type_is_the_literal_of_its_typeddict():
    assert not set(CLIENT_FRAMES) & set(CONTROL_EVENTS)
    for name, declared in {**CLIENT_FRAMES, **CONTROL_EVENTS}.items():
        assert "type" in declared.__required_keys__, name
        assert name in get_args(declared.__annotations__["type"]), name


def test_typeguard_refuses_unexpected_missing_and_mistyped_keys_at_any_depth():
    """What the catalogue's checks rely on (typeguard >= 4.4)."""
    user = {"id": 1, "username": "alice", "display_name": "Alice"}
    check_frame({"type": "room_users", "room": 1, "users": [user, user], "count": 2})
    wrong = [
        {"type": "pong", "extra": 1},
        {"type": "pong", "ref": None},  # absent, not null
        {"type": "room_users", "room": 1},
        {"type": "room_users", "room": "1", "users": []},
        {"type": "room_users", "room": 1, "users": [user, {**user, "email": "a@b.c"}]},
        {"type": "error", "code": "x", "message": "m", "retry_after": "1"},
    ]
    for frame in wrong:
        with pytest.raises(AssertionError, match="does not match"):
            check_frame(frame)
    for frame in [{"type": "user_deactivated"}, {"type": "nonsense"}]:
        with pytest.raises(AssertionError, match=r"control event|undeclared"):
            check_frame(frame)


# -------------------------------------------------------------- the README table


def readme_server_table() -> list[tuple[list[str], str]]:
    """The rows of the README's "server → client" table: (frame types, fields cell)."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## WebSocket\n", 1)[1].split("\n## ", 1)[0]
    lines = section.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| server → client |"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        assert len(cells) == 2, line
        rows.append((re.findall(r"`([^`]+)`", cells[0]), cells[1]))
    return rows


def written_fields(cell: str) -> set[str]:
    """The fields a row names: the code span that opens its cell (`a, b, c?`); what
    follows is prose."""
    opening = re.match(r"`([^`]*)`", cell)
    assert opening, f"the fields cell must open with the fields in one code span: {cell!r}"
    return {name.strip() for name in opening.group(1).split(",") if name.strip()}


def declared_fields(declared: Any) -> set[str]:
    required = declared.__required_keys__ - {"type"}
    return required | {f"{name}?" for name in declared.__optional_keys__}


def test_the_readme_table_lists_every_frame_type_with_its_declared_fields():
    rows = readme_server_table()
    listed = [kind for kinds, _ in rows for kind in kinds]
    assert len(listed) == len(set(listed)), f"a type listed twice: {listed}"
    assert set(listed) == set(CLIENT_FRAMES)
    for kinds, cell in rows:
        for kind in kinds:
            assert written_fields(cell) == declared_fields(CLIENT_FRAMES[kind]), (
                f"README row {kind!r}: table says {sorted(written_fields(cell))}, "
                f"chatproject/events.py declares {sorted(declared_fields(CLIENT_FRAMES[kind]))}"
            )


# ----------------------------------------------------------------- message_data


@pytest.mark.django_db
def test_message_data_of_every_kind_of_message_is_a_message_data(
    user, other_user, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    room = make_room(owner=user, name="Catalogue")
    add_member(room, other_user)
    first, _ = post_message(room=room, author=other_user, content="first")
    upload = SimpleUploadedFile("notes.txt", b"some text\n", content_type="text/plain")
    rich, _ = post_message(
        room=room,
        author=user,
        content="see these",
        title="Files",
        payload={"k": [1, {"n": None}]},
        attachment_urls=["https://example.com/a.png"],
        attachments=[store_attachment(uploader=user, upload=upload)],
        reply_to=first,
        client_id="rich-1",
    )
    add_reaction(message=rich, user=other_user, emoji="👍")
    add_reaction(message=rich, user=user, emoji="👍")
    add_reaction(message=rich, user=user, emoji="🎉")
    gone, _ = post_message(room=room, author=other_user, content="secret")
    delete_message(message=gone, actor=other_user, can_moderate=False)
    with transaction.atomic():
        notice = post_notice(room=lock_room(room.pk), content="Bob joined")

    messages = Message.objects.select_related("sender").prefetch_related("files", "reaction_set")
    by_id = {m.pk: m for m in messages.filter(pk__in=[rich.pk, gone.pk, notice.pk])}
    shown = message_data(by_id[rich.pk], viewer_id=user.pk)
    assert shown["reply_to"] == first.pk
    assert [set(a) for a in shown["attachments"]] == [
        {"id", "url", "name", "size", "content_type"},
        {"url"},
    ]
    assert [(r["emoji"], r["count"], r["me"]) for r in shown["reactions"]] == [
        ("👍", 2, True),
        ("🎉", 1, True),
    ]
    assert message_data(by_id[gone.pk])["deleted"] is True
    assert message_data(by_id[notice.pk])["sender"] is None
    for message in by_id.values():
        for viewer_id in (None, user.pk):
            conforms(message_data(message, viewer_id=viewer_id), MessageData)
    # A fresh message (the post path's own instance, nothing read back) too.
    conforms(message_data(first), MessageData)


# --------------------------------------------------- no frame built outside events.py


def frame_literals(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, type) of each dict built in place with a constant `"type"` string: dict
    literals, `dict(type=...)` and `frame["type"] = ...`."""
    found = []
    for node in ast.walk(tree):
        values: list[ast.expr] = []
        if isinstance(node, ast.Dict):
            values = [
                v
                for k, v in zip(node.keys, node.values, strict=True)
                if isinstance(k, ast.Constant) and k.value == "type"
            ]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id == "dict":
                values = [kw.value for kw in node.keywords if kw.arg == "type"]
        elif isinstance(node, ast.Assign):
            values = [
                node.value
                for target in node.targets
                if isinstance(target, ast.Subscript)
                and isinstance(target.slice, ast.Constant)
                and target.slice.value == "type"
            ]
        for value in values:
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                found.append((node.lineno, value.value))
    return found


def test_no_first_party_module_builds_a_frame_outside_the_catalogue():
    """Channel-layer and ASGI messages (`hub.event`, `websocket.send`) are not frames."""
    frame_types = set(CLIENT_FRAMES) | set(CONTROL_EVENTS)
    scanned, offenders = 0, []
    for package in FIRST_PARTY:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if "migrations" in path.parts or relative == "chatproject/events.py":
                continue
            scanned += 1
            tree = ast.parse(path.read_text(), filename=relative)
            offenders += [
                f"{relative}:{line}: {kind!r}"
                for line, kind in frame_literals(tree)
                if kind in frame_types
            ]
    assert scanned > 20
    assert offenders == [], "frames built outside chatproject/events.py:\n" + "\n".join(offenders)


def test_the_scan_sees_each_way_of_building_a_frame():
    source = (
        'a = {"type": "pong"}\n'
        'b = dict(type="ack", ref=1)\n'
        'c = {}\nc["type"] = "room_revoked"\n'
        'd = {"type": "hub.event"}\n'
    )
    assert sorted(frame_literals(ast.parse(source))) == [
        (1, "pong"),
        (2, "ack"),
        (4, "room_revoked"),
        (5, "hub.event"),
    ]


# -------------------------------------------------------------------- builders


def test_ref_is_absent_not_null_without_one_and_present_with_one():
    user = {"id": 1, "username": "alice", "display_name": "Alice"}
    built = {
        "authenticated": lambda ref: events.authenticated(
            user=user, connection="c0ffee", expires_at=None, user_pos=0, ref=ref
        ),
        "ack": lambda ref: events.ack(ref, room=3, pos=7),
        "error": lambda ref: events.error(NotFound("No such room."), ref),
        "pong": lambda ref: events.pong(ref),
    }
    for name, build in built.items():
        without = build(None)
        assert "ref" not in without, name
        check_frame(without)
        for ref in ("r-1", 0, 42):
            with_ref = build(ref)
            assert with_ref["ref"] == ref, name
            check_frame(with_ref)


def test_error_carries_retry_after_for_rate_limited_and_fields_for_validation():
    limited = events.error(RateLimited("Slow down.", retry_after=7), "r")
    assert limited == {
        "type": "error",
        "code": "rate_limited",
        "message": "Slow down.",
        "retry_after": 7,
        "ref": "r",
    }
    invalid = events.error(ValidationFailed("Bad.", fields={"room": ["Required."]}))
    assert invalid == {
        "type": "error",
        "code": "validation_error",
        "message": "Bad.",
        "fields": {"room": ["Required."]},
    }
    plain = events.error(ChatError())
    assert set(plain) == {"type", "code", "message"}
    for frame in (limited, invalid, plain):
        check_frame(frame)


def test_every_kind_of_ack_is_an_ack():
    acks = [
        events.ack("j", room=1, pos=0),
        events.ack("l", room=1),
        events.ack("r", room=1, last_read_seq=4, unread_count=0),
        events.ack("s", user_id=2, username="bob", is_online=False, last_seen=None),
        events.ack("u", user_id=2),
        events.ack(None),
    ]
    for frame in acks:
        check_frame(frame)
    assert acks[3] == {
        "type": "ack",
        "ref": "s",
        "user_id": 2,
        "username": "bob",
        "is_online": False,
        "last_seen": None,
    }
