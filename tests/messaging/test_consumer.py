"""The WebSocket protocol at the consumer level: frames, errors, close codes, token lifetimes.

These drive the real `chatproject.asgi.application` (session, token middleware, router,
consumer) with `channels.testing.WebsocketCommunicator`, so the middleware is covered.
The server accepts every handshake and then closes with a 44xx code (closing before
accept would show the client a bare HTTP 403), so a refused socket connects and then
receives `websocket.close`.
"""

import base64
import contextlib
import json
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from rest_framework_simplejwt.tokens import AccessToken

from accounts.services import issue_tokens
from chatproject.asgi import application
from messaging.consumers import ChatConsumer
from messaging.models import Message
from tests.factories import add_member, make_room

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

TIMEOUT = 3.0


# ------------------------------------------------------------------------ helpers


def communicator(
    path: str = "/ws/", *, token: str | None = None, headers: tuple = ()
) -> WebsocketCommunicator:
    all_headers = list(headers)
    if token is not None:
        all_headers.append((b"authorization", f"Bearer {token}".encode()))
    return WebsocketCommunicator(application, path, headers=all_headers)


@contextlib.asynccontextmanager
async def opened(
    path: str = "/ws/", *, token: str | None = None, headers: tuple = ()
) -> AsyncIterator[WebsocketCommunicator]:
    """A handshake that was accepted; disconnects (and surfaces consumer crashes) after."""
    comm = communicator(path, token=token, headers=headers)
    connected, _ = await comm.connect(timeout=TIMEOUT)
    assert connected, "the server must accept the handshake (and close later if it refuses)"
    try:
        yield comm
    finally:
        # Surfaces a consumer crash. With channels_redis, a consumer whose socket the
        # server closed may take seconds to stop (its blocking receive is being
        # cancelled); `disconnect` then cancels it after the timeout, which is harmless.
        await comm.disconnect(timeout=1)


@contextlib.asynccontextmanager
async def signed_in(
    token: str, path: str = "/ws/", *, headers: tuple = ()
) -> AsyncIterator[WebsocketCommunicator]:
    """An accepted socket that has received its `authenticated` frame."""
    async with opened(path, token=token, headers=headers) as comm:
        frame = await recv(comm)
        assert frame["type"] == "authenticated", frame
        yield comm


def _refuse_constant(name: str) -> Any:
    raise AssertionError(f"the server sent {name}, which is not JSON")


def decode(text: str) -> dict[str, Any]:
    """A server frame as a client sees it: UTF-8 on the wire, strict JSON, an object."""
    assert isinstance(text, str), text
    # A lone surrogate here would make the real server fail to encode the frame.
    text.encode("utf-8")
    frame = json.loads(text, parse_constant=_refuse_constant)
    assert isinstance(frame, dict) and isinstance(frame.get("type"), str), frame
    return frame


async def recv(comm: WebsocketCommunicator, timeout: float = TIMEOUT) -> dict[str, Any]:
    return decode(await comm.receive_from(timeout=timeout))


async def request(comm: WebsocketCommunicator, frame: dict[str, Any], ref: Any = "r1") -> dict:
    """Send a frame with `ref` and return its answer: the next frame carrying that `ref`.

    Unsolicited frames in between (presence, `room_users`) are skipped.
    """
    await comm.send_json_to({**frame, "ref": ref})
    return await recv_until(comm, lambda f: f.get("ref") == ref)


async def recv_until(comm: WebsocketCommunicator, wanted, timeout: float = TIMEOUT) -> dict:
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no wanted frame within {timeout}s; got {seen}"
        frame = await recv(comm, left)
        if wanted(frame):
            return frame
        seen.append(frame)


async def recv_type(comm: WebsocketCommunicator, kind: str) -> dict[str, Any]:
    """The next frame of type `kind`, skipping unsolicited ones."""
    return await recv_until(comm, lambda f: f["type"] == kind)


async def send_raw_text(comm: WebsocketCommunicator, text: str) -> None:
    # WebsocketCommunicator.send_to refuses an empty string; the ASGI event does not.
    await comm.send_input({"type": "websocket.receive", "text": text})


async def assert_still_open(comm: WebsocketCommunicator) -> None:
    await comm.send_json_to({"type": "ping", "ref": "alive?"})
    frame = await recv_until(comm, lambda f: f.get("ref") == "alive?")
    assert frame == {"type": "pong", "ref": "alive?"}


async def assert_refused_unauthenticated(comm: WebsocketCommunicator) -> None:
    """The socket is told why (an `error` frame) and closed with 4401."""
    frames, code = await frames_until_close(comm)
    assert [(f["type"], f["code"]) for f in frames] == [("error", "unauthenticated")]
    assert frames[0]["message"]
    assert code == 4401


async def frames_until_close(
    comm: WebsocketCommunicator, timeout: float = TIMEOUT
) -> tuple[list[dict[str, Any]], int | None]:
    """Every text frame before the server's close, and the close code."""
    received: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"the socket was not closed within {timeout}s; got {received}"
        output = await comm.receive_output(timeout=left)
        if output["type"] == "websocket.close":
            return received, output.get("code")
        assert output["type"] == "websocket.send", output
        received.append(decode(output["text"]))


async def message_count(room_id: int) -> int:
    return await sync_to_async(Message.objects.filter(room_id=room_id).count)()


def short_lived_token(user, seconds: int) -> str:
    """An access token whose `exp` is `seconds` (whole, in JWT fashion) from now."""
    token = AccessToken.for_user(user)
    token["exp"] = int(time.time()) + seconds
    return str(token)


# ----------------------------------------------------------------------- fixtures


@pytest.fixture
def own_room(user):
    """A public room that `user` owns (and so is a member of); no messages yet."""
    return make_room(owner=user)


@pytest.fixture
def foreign_private_room(other_user):
    return make_room(owner=other_user, kind="private")


@pytest.fixture
def foreign_public_room(other_user):
    """A public room `user` can see but has never joined."""
    return make_room(owner=other_user)


@pytest.fixture
def refresh_token(user) -> str:
    return issue_tokens(user=user)["refresh"]


@pytest.fixture
def inactive_token(user) -> str:
    token = issue_tokens(user=user)["access"]
    user.is_active = False
    user.save(update_fields=["is_active"])
    return token


# ---------------------------------------------------------------- bad frames


BAD_FRAMES = [
    pytest.param("{", {"invalid_json"}, id="malformed-json"),
    pytest.param("", {"invalid_json"}, id="empty-text"),
    pytest.param("[]", {"invalid_json"}, id="top-level-array"),
    pytest.param('[{"type": "ping"}]', {"invalid_json"}, id="array-of-frame"),
    pytest.param('"ping"', {"invalid_json"}, id="top-level-string"),
    pytest.param('{"type": "ping", "x": NaN}', {"invalid_json"}, id="nan"),
    pytest.param('{"type": "ping", "x": -Infinity}', {"invalid_json"}, id="infinity"),
    pytest.param('{"type": "ping", "x": ' + "7" * 5000 + "}", {"invalid_json"}, id="huge-int"),
    pytest.param(
        '{"type": "ping", "x": ' + "[" * 50 + "]" * 50 + "}",
        {"validation_error", "invalid_json"},
        id="nested-50-lists",
    ),
    pytest.param(
        '{"type": "ping", "x": ' + '{"a": ' * 50 + "1" + "}" * 50 + "}",
        {"validation_error", "invalid_json"},
        id="nested-50-objects",
    ),
    pytest.param(
        '{"type": "ping", "x": ' + "[" * 100_000 + "]" * 100_000 + "}",
        {"validation_error", "invalid_json"},
        id="nested-100000",
    ),
    pytest.param('{"ref": "x"}', {"validation_error"}, id="missing-type"),
    pytest.param('{"type": 5}', {"validation_error"}, id="integer-type"),
    pytest.param('{"type": ""}', {"validation_error"}, id="empty-type"),
    pytest.param('{"type": "shout"}', {"unknown_type"}, id="unknown-type"),
    pytest.param('{"type": "chat_event"}', {"unknown_type"}, id="layer-handler-name"),
    pytest.param('{"type": "join"}', {"validation_error"}, id="join-without-room"),
    pytest.param('{"type": "join", "room": "1"}', {"validation_error"}, id="join-string-room"),
    pytest.param('{"type": "join", "room": true}', {"validation_error"}, id="join-bool-room"),
    pytest.param('{"type": "join", "room": 1.5}', {"validation_error"}, id="join-float-room"),
    pytest.param('{"type": "join", "room": 0}', {"validation_error"}, id="join-zero-room"),
    pytest.param(
        '{"type": "join", "room": 1' + "0" * 30 + "}", {"validation_error"}, id="join-room-2**99"
    ),
    pytest.param('{"type": "join", "room": 1, "after": -1}', {"validation_error"}, id="after<0"),
    pytest.param('{"type": "message", "content": "hi"}', {"validation_error"}, id="msg-no-room"),
    pytest.param('{"type": "leave"}', {"validation_error"}, id="leave-without-room"),
]


@pytest.mark.parametrize(("raw", "codes"), BAD_FRAMES)
async def test_bad_frame_gets_error_and_socket_stays_open(alice_token, raw, codes):
    async with signed_in(alice_token) as comm:
        await send_raw_text(comm, raw)
        frame = await recv_type(comm, "error")
        assert frame["code"] in codes, frame
        assert isinstance(frame["message"], str) and frame["message"]
        await assert_still_open(comm)


async def test_binary_frame_is_invalid_json_and_socket_stays_open(alice_token):
    async with signed_in(alice_token) as comm:
        await comm.send_to(bytes_data=b'{"type": "ping"}')
        frame = await recv_type(comm, "error")
        assert frame["code"] == "invalid_json"
        await assert_still_open(comm)


async def test_ref_is_echoed_on_error_of_a_parsed_frame(alice_token):
    async with signed_in(alice_token) as comm:
        frame = await request(comm, {"type": "shout"}, ref="e-1")
        assert frame == {**frame, "type": "error", "code": "unknown_type", "ref": "e-1"}
        frame = await request(comm, {"type": "join"}, ref=42)
        assert frame["type"] == "error" and frame["ref"] == 42


async def test_unusable_ref_is_a_validation_error(alice_token):
    async with signed_in(alice_token) as comm:
        await comm.send_json_to({"type": "ping", "ref": "x" * 65})
        frame = await recv_type(comm, "error")
        assert frame["code"] == "validation_error"
        assert "ref" not in frame
        await assert_still_open(comm)


async def test_ref_is_echoed_on_ack(alice_token, own_room):
    async with signed_in(alice_token) as comm:
        ack = await request(comm, {"type": "join", "room": own_room.pk}, ref="join-1")
        assert ack["type"] == "ack"
        assert ack["ref"] == "join-1"
        assert ack["room"] == own_room.pk
        ack = await request(comm, {"type": "message", "room": own_room.pk, "content": "hi"}, ref=7)
        assert ack["type"] == "ack"
        assert ack["ref"] == 7
        assert ack["message"]["content"] == "hi"
        ack = await request(comm, {"type": "leave", "room": own_room.pk}, ref="bye")
        assert (ack["type"], ack["ref"], ack["room"]) == ("ack", "bye", own_room.pk)


async def test_typing_with_a_ref_is_acked_and_without_one_is_not(alice_token, own_room):
    async with signed_in(alice_token) as comm:
        await request(comm, {"type": "join", "room": own_room.pk}, ref="j")
        ack = await request(comm, {"type": "typing", "room": own_room.pk, "is_typing": True}, "t1")
        assert ack == {"type": "ack", "ref": "t1", "room": own_room.pk}
        # Held (a second "typing" within TYPING_EVERY waits for its window), and answered.
        ack = await request(comm, {"type": "typing", "room": own_room.pk, "is_typing": True}, "t2")
        assert ack == {"type": "ack", "ref": "t2", "room": own_room.pk}
        await comm.send_json_to({"type": "typing", "room": own_room.pk, "is_typing": False})
        await comm.send_json_to({"type": "ping", "ref": "after"})
        answer = await recv_until(comm, lambda f: f["type"] in ("ack", "pong"))
        assert answer == {"type": "pong", "ref": "after"}  # no ack for the ref-less frame


async def test_frame_without_ref_gets_answer_without_ref(alice_token):
    async with signed_in(alice_token) as comm:
        await comm.send_json_to({"type": "ping"})
        assert await recv_type(comm, "pong") == {"type": "pong"}


# ------------------------------------------------------------- rooms and access


async def test_join_of_missing_room_is_not_found(alice_token):
    async with signed_in(alice_token) as comm:
        frame = await request(comm, {"type": "join", "room": 999_999}, ref="j")
        assert (frame["type"], frame["code"], frame["ref"]) == ("error", "not_found", "j")
        await assert_still_open(comm)


async def test_join_of_foreign_private_room_is_not_found_and_does_not_leak_name(
    alice_token, foreign_private_room
):
    async with signed_in(alice_token) as comm:
        frame = await request(comm, {"type": "join", "room": foreign_private_room.pk})
        assert (frame["type"], frame["code"]) == ("error", "not_found")
        assert foreign_private_room.name not in json.dumps(frame)
        await assert_still_open(comm)


async def test_join_of_private_room_as_member_is_acked(alice_token, user, foreign_private_room):
    await sync_to_async(add_member)(foreign_private_room, user)
    async with signed_in(alice_token) as comm:
        ack = await request(comm, {"type": "join", "room": foreign_private_room.pk})
        assert ack["type"] == "ack"
        assert ack["room"] == foreign_private_room.pk


async def test_message_to_foreign_private_room_is_not_found(alice_token, foreign_private_room):
    async with signed_in(alice_token) as comm:
        frame = await request(
            comm, {"type": "message", "room": foreign_private_room.pk, "content": "psst"}
        )
        assert (frame["type"], frame["code"]) == ("error", "not_found")
        await assert_still_open(comm)
    assert await message_count(foreign_private_room.pk) == 0


async def test_message_to_public_room_never_joined_is_forbidden(alice_token, foreign_public_room):
    async with signed_in(alice_token) as comm:
        frame = await request(
            comm, {"type": "message", "room": foreign_public_room.pk, "content": "hello?"}
        )
        assert (frame["type"], frame["code"]) == ("error", "forbidden")
        await assert_still_open(comm)
    assert await message_count(foreign_public_room.pk) == 0


async def test_message_to_missing_room_is_not_found(alice_token):
    async with signed_in(alice_token) as comm:
        frame = await request(comm, {"type": "message", "room": 999_999, "content": "x"})
        assert (frame["type"], frame["code"]) == ("error", "not_found")


async def test_message_over_max_length_is_too_long_and_not_stored(alice_token, own_room):
    limit = django_settings.MAX_MESSAGE_LENGTH
    async with signed_in(alice_token) as comm:
        frame = await request(
            comm, {"type": "message", "room": own_room.pk, "content": "x" * (limit + 1)}, ref="big"
        )
        assert (frame["type"], frame["code"], frame["ref"]) == ("error", "too_long", "big")
        await assert_still_open(comm)
        assert await message_count(own_room.pk) == 0
        # The limit itself is allowed, counted in code points.
        ack = await request(
            comm, {"type": "message", "room": own_room.pk, "content": "é" * limit}, ref="max"
        )
        assert ack["type"] == "ack", ack
        assert len(ack["message"]["content"]) == limit
    assert await message_count(own_room.pk) == 1


async def test_message_with_nul_is_validation_error_and_not_stored(alice_token, own_room):
    async with signed_in(alice_token) as comm:
        frame = await request(comm, {"type": "message", "room": own_room.pk, "content": "a\x00b"})
        assert (frame["type"], frame["code"]) == ("error", "validation_error")
        await assert_still_open(comm)
    assert await message_count(own_room.pk) == 0


async def test_empty_message_is_validation_error(alice_token, own_room):
    async with signed_in(alice_token) as comm:
        frame = await request(comm, {"type": "message", "room": own_room.pk, "content": "  "})
        assert (frame["type"], frame["code"]) == ("error", "validation_error")
        await assert_still_open(comm)
    assert await message_count(own_room.pk) == 0


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param('"payload": {"x": 1e400}', id="payload-infinite-number"),
        pytest.param('"payload": {"x": [-1e999]}', id="payload-negative-infinite-number"),
        pytest.param('"payload": {"x": "a\\u0000b"}', id="payload-nul-value"),
        pytest.param('"payload": {"a\\u0000": 1}', id="payload-nul-key"),
        pytest.param('"payload": {"x": "\\ud800"}', id="payload-lone-surrogate"),
        pytest.param('"payload": {"\\udfff": 1}', id="payload-lone-surrogate-key"),
        pytest.param('"title": "\\ud800"', id="title-lone-surrogate"),
        pytest.param('"attachment_urls": ["https://x.example/\\ud800"]', id="url-lone-surrogate"),
        pytest.param('"content": "hi \\udc00"', id="content-lone-surrogate"),
    ],
)
async def test_message_field_that_cannot_be_stored_or_sent_is_validation_error(
    alice_token, own_room, extra
):
    raw = f'{{"type": "message", "room": {own_room.pk}, "content": "hi", {extra}, "ref": "m"}}'
    raw = raw.replace('"content": "hi", "content"', '"content"')
    async with signed_in(alice_token) as comm:
        await send_raw_text(comm, raw)
        frame = await recv_until(comm, lambda f: f.get("ref") == "m")
        assert (frame["type"], frame["code"]) == ("error", "validation_error"), frame
        await assert_still_open(comm)
    assert await message_count(own_room.pk) == 0


async def test_ref_with_lone_surrogate_is_validation_error(alice_token):
    async with signed_in(alice_token) as comm:
        await send_raw_text(comm, '{"type": "ping", "ref": "\\ud800"}')
        frame = await recv_type(comm, "error")
        assert frame["code"] == "validation_error"
        await assert_still_open(comm)


async def test_ack_carries_the_stored_message(alice_token, user, own_room):
    async with signed_in(alice_token) as comm:
        ack = await request(
            comm,
            {"type": "message", "room": own_room.pk, "content": "stored", "client_id": "c-1"},
        )
    assert ack["type"] == "ack"
    message = ack["message"]
    stored = await sync_to_async(Message.objects.get)(pk=message["id"])
    assert stored.content == "stored"
    assert stored.sender_id == user.pk
    assert stored.client_id == "c-1"
    assert message["pos"] == stored.pos
    assert message["sender"]["id"] == user.pk


# ------------------------------------------------------------------ origin check


async def test_foreign_origin_is_closed_4403_after_accept(alice_token):
    headers = ((b"host", b"testserver"), (b"origin", b"https://evil.example"))
    async with opened(token=alice_token, headers=headers) as comm:
        received, code = await frames_until_close(comm)
    assert code == 4403
    assert received == []  # not even `authenticated`


async def test_foreign_origin_without_token_is_closed_4403(db):
    headers = ((b"host", b"testserver"), (b"origin", b"https://evil.example"))
    async with opened(headers=headers) as comm:
        assert await frames_until_close(comm) == ([], 4403)


@pytest.mark.parametrize(
    "origin",
    [
        b"http://testserver.evil.example",
        b"http://testserver:8080",
        b"ftp://testserver",
        b"null",
    ],
)
async def test_origin_that_only_resembles_the_host_is_refused(alice_token, origin):
    headers = ((b"host", b"testserver"), (b"origin", origin))
    async with opened(token=alice_token, headers=headers) as comm:
        assert await frames_until_close(comm) == ([], 4403)


@pytest.mark.parametrize(
    ("origin", "proxied"),
    # A socket reached over TLS (a proxy says so) is the https page's own; plain, the http one's.
    [(b"http://testserver", ()), (b"https://testserver", ((b"x-forwarded-proto", b"https"),))],
)
async def test_servers_own_origin_is_accepted(alice_token, origin, proxied):
    headers = ((b"host", b"testserver"), (b"origin", origin), *proxied)
    async with signed_in(alice_token, headers=headers) as comm:
        await assert_still_open(comm)


async def test_configured_allowed_origin_is_accepted(settings, alice_token):
    settings.ALLOWED_ORIGINS = ["https://app.example"]
    headers = ((b"host", b"chat.example"), (b"origin", b"https://app.example"))
    async with signed_in(alice_token, headers=headers) as comm:
        await assert_still_open(comm)


async def test_no_origin_header_is_accepted_when_authenticated(alice_token):
    async with signed_in(alice_token) as comm:
        await assert_still_open(comm)


# ------------------------------------------------------------ handshake tokens


async def test_query_string_token_authenticates(alice_token, user):
    async with opened(f"/ws/?token={alice_token}") as comm:
        frame = await recv_type(comm, "authenticated")
        assert frame["user"]["id"] == user.pk
        assert frame["user"]["username"] == "alice"


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(((b"authorization", b"Bearer not-a-jwt"),), id="header"),
        pytest.param(((b"authorization", b"Bearer " + b"a" * 5000),), id="header-huge"),
    ],
)
async def test_bad_token_in_header_is_closed_4401(db, headers):
    async with opened(headers=headers) as comm:
        await assert_refused_unauthenticated(comm)


async def test_bad_query_token_is_closed_4401(db):
    async with opened("/ws/?token=garbage") as comm:
        await assert_refused_unauthenticated(comm)


async def test_token_signed_with_another_key_is_closed_4401(user):
    token = AccessToken.for_user(user)
    forged = str(token).rsplit(".", 1)[0] + ".c2lnbmF0dXJlLW9mLWFub3RoZXIta2V5"
    async with opened(token=forged) as comm:
        await assert_refused_unauthenticated(comm)


async def test_refresh_token_used_as_access_is_closed_4401(refresh_token):
    async with opened(token=refresh_token) as comm:
        await assert_refused_unauthenticated(comm)


async def test_expired_access_token_is_closed_4401(user):
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=timedelta(seconds=-60))
    async with opened(token=str(token)) as comm:
        await assert_refused_unauthenticated(comm)


async def test_inactive_users_token_is_closed_4401(inactive_token):
    async with opened(token=inactive_token) as comm:
        await assert_refused_unauthenticated(comm)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def test_unsigned_alg_none_token_is_closed_4401(user):
    claims = dict(AccessToken.for_user(user).payload)
    header = _b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    forged = f"{header}.{_b64url(json.dumps(claims).encode())}."
    async with opened(token=forged) as comm:
        await assert_refused_unauthenticated(comm)


async def test_deleted_users_token_is_closed_4401(user, alice_token):
    await sync_to_async(user.delete)()
    async with opened(token=alice_token) as comm:
        await assert_refused_unauthenticated(comm)


async def test_token_on_room_endpoint_joins_that_room(alice_token, own_room):
    async with signed_in(alice_token, path=f"/ws/rooms/{own_room.pk}/") as comm:
        ack = await recv_type(comm, "ack")
        assert ack["room"] == own_room.pk
        assert ack["pos"] == own_room.pos
        assert "ref" not in ack


async def test_room_endpoint_of_foreign_private_room_gets_not_found(
    alice_token, foreign_private_room
):
    async with signed_in(alice_token, path=f"/ws/rooms/{foreign_private_room.pk}/") as comm:
        frame = await recv_type(comm, "error")
        assert frame["code"] == "not_found"
        await assert_still_open(comm)


# -------------------------------------------------------- the authenticate frame


async def test_frames_before_authentication_are_unauthenticated(alice_token, own_room):
    async with opened() as comm:
        for frame in (
            {"type": "ping"},
            {"type": "join", "room": own_room.pk},
            {"type": "message", "room": own_room.pk, "content": "sneaky"},
            {"type": "shout"},
        ):
            answer = await request(comm, frame, ref="pre")
            assert answer["type"] == "error", answer
            assert answer["code"] == "unauthenticated"
            assert answer["ref"] == "pre"
        # Still open: it can authenticate now.
        await comm.send_json_to({"type": "authenticate", "token": alice_token})
        await recv_type(comm, "authenticated")
        await assert_still_open(comm)
    assert await message_count(own_room.pk) == 0


async def test_authenticate_frame_with_valid_token(alice_token, user):
    async with opened() as comm:
        assert await comm.receive_nothing(timeout=0.2)
        await comm.send_json_to({"type": "authenticate", "token": alice_token})
        frame = await recv_type(comm, "authenticated")
        assert frame["user"] == {"id": user.pk, "username": "alice", "display_name": "Alice"}
        await assert_still_open(comm)


@pytest.mark.parametrize("token", ["garbage", "", 12345, None, ["a"], "\ud800", "é.é.é"])
async def test_authenticate_frame_with_bad_token_closes_4401(db, token):
    async with opened() as comm:
        await comm.send_json_to({"type": "authenticate", "token": token})
        _, code = await frames_until_close(comm)
        assert code == 4401


async def test_authenticate_frame_with_refresh_token_closes_4401(refresh_token):
    async with opened() as comm:
        await comm.send_json_to({"type": "authenticate", "token": refresh_token})
        await assert_refused_unauthenticated(comm)


async def test_reauthenticate_with_bad_token_is_an_error_not_a_close(alice_token):
    async with signed_in(alice_token) as comm:
        frame = await request(comm, {"type": "authenticate", "token": "garbage"}, ref="re")
        assert (frame["type"], frame["code"], frame["ref"]) == ("error", "unauthenticated", "re")
        await assert_still_open(comm)


async def test_reauthenticate_with_lone_surrogate_token_is_an_error(alice_token):
    async with signed_in(alice_token) as comm:
        await send_raw_text(comm, '{"type": "authenticate", "token": "\\ud800", "ref": "s"}')
        frame = await recv_until(comm, lambda f: f.get("ref") == "s")
        assert (frame["type"], frame["code"]) == ("error", "unauthenticated")
        await assert_still_open(comm)


async def test_reauthenticate_as_another_user_is_forbidden(alice_token, bob_token):
    async with signed_in(alice_token) as comm:
        frame = await request(comm, {"type": "authenticate", "token": bob_token}, ref="swap")
        assert (frame["type"], frame["code"], frame["ref"]) == ("error", "forbidden", "swap")
        await assert_still_open(comm)


async def test_unauthenticated_socket_is_closed_4401_after_auth_timeout(settings, db):
    settings.WEBSOCKET_AUTH_TIMEOUT = 0.3
    started = time.monotonic()
    async with opened() as comm:
        received, code = await frames_until_close(comm, timeout=3)
    elapsed = time.monotonic() - started
    assert code == 4401
    assert received == []
    assert 0.25 <= elapsed < 2.5


async def test_authenticated_socket_outlives_auth_timeout(settings, alice_token):
    settings.WEBSOCKET_AUTH_TIMEOUT = 0.3
    async with signed_in(alice_token) as comm:
        assert await comm.receive_nothing(timeout=0.8)
        await assert_still_open(comm)


async def test_socket_authenticated_by_frame_outlives_auth_timeout(settings, alice_token):
    settings.WEBSOCKET_AUTH_TIMEOUT = 0.3
    async with opened() as comm:
        await comm.send_json_to({"type": "authenticate", "token": alice_token})
        await recv_type(comm, "authenticated")
        assert await comm.receive_nothing(timeout=0.8)
        await assert_still_open(comm)


# ----------------------------------------------------------- token expiry on a socket


async def test_token_expiring_while_connected_closes_4401(user):
    # 2 to 3 s left: enough that a busy machine still connects before the expiry.
    token = short_lived_token(user, seconds=3)
    async with signed_in(token) as comm:
        await assert_still_open(comm)
        received, code = await frames_until_close(comm, timeout=5)
    assert code == 4401
    assert [f.get("code") for f in received if f["type"] == "error"] == ["unauthenticated"]


async def test_token_expiring_while_connected_by_frame_closes_4401(user):
    token = short_lived_token(user, seconds=3)
    async with opened() as comm:
        await comm.send_json_to({"type": "authenticate", "token": token})
        await recv_type(comm, "authenticated")
        _, code = await frames_until_close(comm, timeout=5)
    assert code == 4401


async def test_reauthenticating_before_expiry_keeps_socket_open(user, alice_token):
    token = short_lived_token(user, seconds=3)
    expires = AccessToken(token)["exp"]
    async with signed_in(token) as comm:
        answer = await request(comm, {"type": "authenticate", "token": alice_token}, ref="fresh")
        assert answer["type"] == "authenticated"
        assert answer["ref"] == "fresh"
        # Wait past the first token's expiry: nothing arrives, no close.
        assert await comm.receive_nothing(timeout=max(0.5, expires - time.time() + 1.0))
        await assert_still_open(comm)


async def test_reauthenticating_with_another_short_token_moves_the_deadline(user):
    first = short_lived_token(user, seconds=3)  # 2 to 3 s left
    second = short_lived_token(user, seconds=5)  # 4 to 5 s left
    first_exp, second_exp = AccessToken(first)["exp"], AccessToken(second)["exp"]
    async with signed_in(first) as comm:
        answer = await request(comm, {"type": "authenticate", "token": second})
        assert answer["type"] == "authenticated"
        # Past the first deadline, still open...
        assert await comm.receive_nothing(timeout=first_exp - time.time() + 0.5)
        await assert_still_open(comm)
        # ...and closed at the second.
        _, code = await frames_until_close(comm, timeout=second_exp - time.time() + 2)
        assert time.time() >= second_exp - 0.05
    assert code == 4401


async def test_dispatch_refuses_a_private_handler_name():
    """The consumer's own `dispatch` (it skips Channels' database hop) keeps Channels' rule:
    a message type never names an underscore method."""
    with pytest.raises(ValueError, match="leading underscore"):
        await ChatConsumer().dispatch({"type": "_start"})


async def test_an_attachment_id_beyond_the_databases_integers_is_a_validation_error(
    alice_token, own_room
):
    async with signed_in(alice_token) as comm:
        await request(comm, {"type": "join", "room": own_room.pk}, ref="j")
        frame = {"type": "message", "room": own_room.pk, "content": "x", "attachments": [2**63]}

        answer = await request(comm, frame, ref="m")

        assert (answer["type"], answer["code"]) == ("error", "validation_error"), answer
        assert "attachments" in answer["fields"]
        await assert_still_open(comm)
