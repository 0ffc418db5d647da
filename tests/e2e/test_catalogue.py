"""Every frame of a real session against the event catalogue (`chatproject/events.py`).

One session on a real `manage.py serve` process, with four users and an admin, makes the
server send every frame type `CLIENT_FRAMES` declares. Every frame any socket receives
is recorded (at the connection, so frames skipped while waiting for another are kept
too), held to its TypedDict with typeguard (exact keys, every nested object and list
item), and no control event (`CONTROL_EVENTS`) may reach a client.

Every change goes through the server (its sockets, its REST API, its admin over HTTP
with a staff session), so no test-process channel layer is involved and the session runs
the same with or without Redis.
"""

import asyncio
import contextlib
import json
import re
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import websockets
from django.conf import settings
from django.contrib.auth.hashers import make_password

from accounts.models import User
from accounts.services import issue_tokens
from chatproject.events import CLIENT_FRAMES, CONTROL_EVENTS
from tests.factories import PASSWORD, UserFactory, add_member
from tests.live import WAIT, WS, LiveServer
from tests.test_event_catalogue import check_frame

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

Frame = dict[str, Any]

# Frame types the session does not make the server send, with the reason.
NOT_COVERED: dict[str, str] = {
    "room_presence": "big rooms only (more than ROOM_USERS_MAX present): tests/e2e/test_bigroom.py",
}

# The exact keys of each kind of `ack` (README: "client → server").
ACK_KEYS = {
    "join": {"type", "ref", "room", "pos"},
    "leave": {"type", "ref", "room"},
    "typing": {"type", "ref", "room"},
    "message": {"type", "ref", "room", "message"},
    "read": {"type", "ref", "room", "last_read_seq", "unread_count", "mention_count"},
    "subscribe_status": {"type", "ref", "user_id", "username", "is_online", "last_seen"},
    "unsubscribe_status": {"type", "ref", "user_id"},
}
ERROR_CODES = {"invalid_json", "unknown_type", "validation_error", "not_found", "rate_limited"}


# ------------------------------------------------------------------------ recording


class Tape:
    """A WebSocket connection that records every frame it hands out (WS reads through it,
    whether in `recv`, `request` or `recv_until`)."""

    def __init__(self, conn: websockets.ClientConnection, frames: list[Frame]) -> None:
        self._conn = conn
        self._frames = frames

    async def recv(self, *args: Any, **kwargs: Any) -> str | bytes:
        data = await self._conn.recv(*args, **kwargs)
        self._frames.append(json.loads(data))
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


class Peer:
    """One recorded socket."""

    def __init__(self, name: str, ws: WS, frames: list[Frame]) -> None:
        self.name, self.ws, self.frames = name, ws, frames
        self.open = True

    def mark(self) -> int:
        """Where the frames from now on start (for `expect`'s `since`)."""
        return len(self.frames)


class Session:
    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.peers: list[Peer] = []
        self.acks: dict[str, list[Frame]] = {}

    async def connect(self, name: str, token: str | None = None) -> Peer:
        ws = await WS.connect(f"{self.server.ws_url}/ws/", token=token)
        frames: list[Frame] = []
        ws.conn = Tape(ws.conn, frames)  # type: ignore[assignment]
        peer = Peer(name, ws, frames)
        self.peers.append(peer)
        return peer

    async def ask(self, peer: Peer, frame: Frame) -> Frame:
        """Send a frame with a fresh `ref`; its answer (an ack is filed by frame type)."""
        answer = await peer.ws.request(frame)
        if answer["type"] == "ack":
            self.acks.setdefault(frame["type"], []).append(answer)
        return answer

    def rest(self, token: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.server.url, headers={"Authorization": f"Bearer {token}"}, timeout=WAIT
        )


def matches(frame: Frame, kind: str, match: dict[str, Any]) -> bool:
    return frame.get("type") == kind and all(frame.get(k) == v for k, v in match.items())


async def expect(
    peer: Peer,
    kind: str,
    since: int = 0,
    where: Callable[[Frame], bool] = lambda f: True,
    **match: Any,
) -> Frame:
    """The first frame of type `kind` (with fields `match`, and `where`) that `peer`
    received from index `since` on, reading on until it arrives."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while True:
        for frame in peer.frames[since:]:
            if matches(frame, kind, match) and where(frame):
                return frame
        left = deadline - loop.time()
        if left <= 0:
            raise AssertionError(
                f"{peer.name}: no {kind} {match} within {WAIT}s; got {peer.frames[since:]}"
            )
        with contextlib.suppress(TimeoutError):
            await peer.ws.recv(left)


async def settle(peer: Peer) -> None:
    """Read everything the server sent `peer` so far: a ping's pong comes after it."""
    assert (await peer.ws.request({"type": "ping"}))["type"] == "pong"


async def until_closed(peer: Peer) -> int | None:
    """Read until the server closes the socket; its close code."""
    try:
        while True:
            await peer.ws.recv()
    except websockets.ConnectionClosed:
        peer.open = False
        return peer.ws.conn.close_code


async def leave_and_close(peer: Peer) -> None:
    await settle(peer)
    await peer.ws.close()
    peer.open = False


def brief(user: User) -> Frame:
    return {"id": user.pk, "username": user.username, "display_name": user.display_name}


async def admin_session(server: LiveServer, user: User) -> httpx.AsyncClient:
    """An HTTP client signed in to the admin through its login form (a staff session)."""
    client = httpx.AsyncClient(base_url=server.url, timeout=WAIT)
    page = await client.get("/admin/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token, page.text
    login = await client.post(
        "/admin/login/?next=/admin/",
        data={
            "username": user.username,
            "password": PASSWORD,
            "csrfmiddlewaretoken": token.group(1),
            "next": "/admin/",
        },
    )
    assert login.status_code == 302, login.text
    return client


async def admin_action(client: httpx.AsyncClient, changelist: str, **form: Any) -> None:
    """Post a changelist action as its form does (the CSRF token rotated at login)."""
    data = {"index": "0", "csrfmiddlewaretoken": client.cookies["csrftoken"], **form}
    response = await client.post(changelist, data=data)
    assert response.status_code == 302, response.text


# ------------------------------------------------------------------------- the test


@pytest.fixture
def cast(general, user, other_user) -> dict[str, Any]:
    """alice, bob and carol, members of General; dave; and root, a superuser."""
    carol = UserFactory(username="carol", display_name="Carol")
    for member in (user, other_user, carol):
        add_member(general, member)
    dave = UserFactory(username="dave", display_name="Dave")
    # The server checks passwords with its own hashers (the tests' MD5 is not among them).
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    root.password = make_password(PASSWORD, hasher="pbkdf2_sha256")
    root.save(update_fields=["password"])
    people = {"alice": user, "bob": other_user, "carol": carol, "dave": dave, "root": root}
    return {
        "general": general.pk,
        **people,
        "token": {name: issue_tokens(user=u)["access"] for name, u in people.items()},
    }


async def test_a_session_sends_every_declared_frame_and_only_declared_frames(chat_server, cast):
    s = Session(chat_server)
    alice, bob, carol, dave, root = (cast[n] for n in ("alice", "bob", "carol", "dave", "root"))
    token, general = cast["token"], cast["general"]
    a_rest, b_rest = s.rest(token["alice"]), s.rest(token["bob"])
    run = uuid.uuid4().hex[:6]

    # authenticated: by header, and as the answer to an `authenticate` frame (with ref).
    a = await s.connect("alice", token["alice"])
    await expect(a, "authenticated", user=brief(alice))
    b = await s.connect("bob")
    answer = await b.ws.request({"type": "authenticate", "token": token["bob"]})
    assert answer["type"] == "authenticated" and answer["user"] == brief(bob), answer

    # Status of a user, then their socket: user_online.
    status = await s.ask(a, {"type": "subscribe_status", "user_id": carol.pk})
    assert status["is_online"] is False, status
    c = await s.connect("carol", token["carol"])
    await expect(c, "authenticated")
    await expect(a, "user_online", user_id=carol.pk)

    # Joins: room_users, user_joined.
    joined = await s.ask(a, {"type": "join", "room": general})
    await expect(a, "room_users", room=general)
    since = a.mark()
    await s.ask(b, {"type": "join", "room": general})
    await expect(b, "room_users", room=general)
    await expect(a, "user_joined", since, room=general, user=brief(bob))

    # message, typing; reactions, an edit and a delete over REST.
    m1 = (await s.ask(a, {"type": "message", "room": general, "content": "hi", "client_id": "m1"}))[
        "message"
    ]
    await expect(b, "message", room=general, pos=m1["pos"])
    await s.ask(b, {"type": "typing", "room": general, "is_typing": True})
    await expect(a, "typing", room=general, user=brief(bob), is_typing=True)
    for emoji in ("👍", "🎉"):
        response = await b_rest.post(f"/api/messages/{m1['id']}/reactions/", json={"emoji": emoji})
        assert response.status_code == 201, response.text
        await expect(a, "reaction_added", message_id=m1["id"], emoji=emoji, user_id=bob.pk)
    response = await b_rest.delete(f"/api/messages/{m1['id']}/reactions/{quote('👍')}/")
    assert response.status_code == 200, response.text
    await expect(a, "reaction_removed", message_id=m1["id"], emoji="👍", user_id=bob.pk)
    response = await a_rest.patch(f"/api/messages/{m1['id']}/", json={"content": "hi, edited"})
    assert response.status_code == 200, response.text
    await expect(b, "message_updated", room=general, where=lambda f: f["message"]["id"] == m1["id"])
    m2 = (await s.ask(b, {"type": "message", "room": general, "content": "soon gone"}))["message"]
    await expect(a, "message", room=general, pos=m2["pos"])
    response = await b_rest.delete(f"/api/messages/{m2['id']}/")
    assert response.status_code == 200, response.text
    await expect(a, "message_deleted", room=general, message_id=m2["id"])
    read = await s.ask(a, {"type": "read", "room": general, "message_id": m1["id"]})
    assert read["type"] == "ack", read

    # Recovery with `after`: the edited message as message_updated, the deleted one too.
    await s.ask(c, {"type": "join", "room": general, "after": joined["pos"]})
    updated = await expect(c, "message_updated", room=general)
    assert updated["message"]["id"] == m1["id"]
    assert updated["message"]["reactions"] == [
        {"emoji": "🎉", "count": 1, "user_ids": [bob.pk], "me": False}
    ]
    await expect(c, "message_deleted", room=general, message_id=m2["id"])
    await expect(a, "user_joined", room=general, user=brief(carol))

    # pong, with and without ref; errors.
    assert (await a.ws.request({"type": "ping"}))["type"] == "pong"
    since = a.mark()
    await a.ws.send({"type": "ping"})
    assert "ref" not in await expect(a, "pong", since)
    assert (await a.ws.request({"type": "nonsense"}))["code"] == "unknown_type"
    await a.ws.send("not json")
    await expect(a, "error", code="invalid_json")
    assert (await a.ws.request({"type": "join"}))["fields"] == {"room": ["Required."]}
    missing = await a.ws.request({"type": "read", "room": general, "message_id": 10**9})
    assert missing["code"] == "not_found", missing

    # The last socket of a user closes: user_left, user_offline.
    since = a.mark()
    await leave_and_close(c)
    await expect(a, "user_left", since, room=general, user=brief(carol))
    await expect(a, "user_offline", since, user_id=carol.pk)
    await s.ask(a, {"type": "unsubscribe_status", "user_id": carol.pk})

    # A private room: room_added (an invitation), leave, room_removed (and user_left),
    # room_updated, membership_changed, room_read, room_deleted.
    response = await a_rest.post("/api/rooms/", json={"name": f"Cat {run}", "kind": "private"})
    assert response.status_code == 201, response.text
    private = response.json()["id"]
    invite = await a_rest.post(f"/api/rooms/{private}/members/", json={"user_id": bob.pk})
    assert invite.status_code == 200, invite.text
    await expect(b, "room_added", room=private)
    await s.ask(a, {"type": "join", "room": private})
    since = a.mark()
    await s.ask(b, {"type": "join", "room": private})
    await expect(a, "user_joined", since, room=private, user=brief(bob))
    since = a.mark()
    await s.ask(b, {"type": "leave", "room": private})
    await expect(a, "user_left", since, room=private, user=brief(bob))
    since_a, since_b = a.mark(), b.mark()
    await s.ask(b, {"type": "join", "room": private})
    await expect(a, "user_joined", since_a, room=private, user=brief(bob))
    response = await a_rest.patch(f"/api/rooms/{private}/", json={"description": "Cat topic"})
    assert response.status_code == 200, response.text
    await expect(b, "room_updated", since_b, room=private, description="Cat topic")
    promote = {"user_id": bob.pk, "role": "admin"}
    response = await a_rest.post(f"/api/rooms/{private}/members/", json=promote)
    assert response.status_code == 200, response.text
    await expect(b, "membership_changed", since_b, room=private, role="admin")
    said = await s.ask(a, {"type": "message", "room": private, "content": "read me"})
    await s.ask(b, {"type": "read", "room": private, "message_id": said["message"]["id"]})
    await expect(b, "room_read", since_b, room=private, unread_count=0)
    response = await b_rest.post(f"/api/rooms/{private}/leave/")
    assert response.status_code == 204, response.text
    await expect(b, "user_left", since_b, room=private, user=brief(bob))
    await expect(b, "room_removed", since_b, room=private)
    response = await a_rest.delete(f"/api/rooms/{private}/")
    assert response.status_code == 204, response.text
    await expect(a, "room_deleted", room=private)

    # A direct room another user opens: room_added.
    response = await b_rest.post("/api/direct/", json={"user_id": alice.pk})
    assert response.status_code == 201, response.text
    await expect(a, "room_added", room=response.json()["id"])

    # A message with a file, a link and a reply, then the admin's purge: room_purged.
    response = await a_rest.post("/api/rooms/", json={"name": f"Purged {run}"})
    assert response.status_code == 201, response.text
    purged = response.json()["id"]
    upload = await a_rest.post(
        "/api/attachments/", files={"file": ("notes.txt", b"some notes\n", "text/plain")}
    )
    assert upload.status_code == 201, upload.text
    await s.ask(a, {"type": "join", "room": purged})
    first = await s.ask(a, {"type": "message", "room": purged, "content": "first"})
    rich = await s.ask(
        a,
        {
            "type": "message",
            "room": purged,
            "content": "files",
            "attachments": [upload.json()["id"]],
            "attachment_urls": ["https://example.com/a.png"],
            "reply_to": first["message"]["id"],
        },
    )
    assert [set(f) for f in rich["message"]["attachments"]] == [
        {"id", "url", "name", "size", "content_type"},
        {"url"},
    ]
    await expect(a, "message", room=purged, pos=rich["message"]["pos"])
    admin = await admin_session(chat_server, root)
    since = a.mark()
    await admin_action(
        admin, "/admin/rooms/room/", action="purge_messages", _selected_action=purged, apply="1"
    )
    await expect(a, "room_purged", since, room=purged)
    await expect(a, "message", since, where=lambda f: f["message"]["type"] == "system")

    # One socket more than MAX_SOCKETS_PER_USER: rate_limited and 4429. Then the admin
    # deactivates the user: their sockets get an error and 4401, never `user_deactivated`.
    daves = []
    for n in range(settings.MAX_SOCKETS_PER_USER):
        daves.append(await s.connect(f"dave-{n}", token["dave"]))
        await expect(daves[-1], "authenticated")
    extra = await s.connect("dave-extra", token["dave"])
    refused = await expect(extra, "error", code="rate_limited")
    assert refused["retry_after"] >= 1, refused
    assert await until_closed(extra) == 4429
    await admin_action(
        admin, "/admin/accounts/user/", action="deactivate", _selected_action=dave.pk
    )
    codes = await asyncio.gather(*(until_closed(peer) for peer in daves))
    assert codes == [4401] * len(daves)
    for peer in daves:
        await expect(peer, "error", code="unauthenticated")

    # Everything sent so far is read; then the sockets close.
    for peer in s.peers:
        if peer.open:
            await leave_and_close(peer)
    for client in (a_rest, b_rest, admin):
        await client.aclose()

    # ------------------------------------------------------------------ the record
    frames = [frame for peer in s.peers for frame in peer.frames]
    for frame in frames:
        check_frame(frame)  # declared, exactly its fields, no control event
    seen = {frame["type"] for frame in frames}
    assert not seen & set(CONTROL_EVENTS)
    missing, undeclared = set(CLIENT_FRAMES) - seen, seen - set(CLIENT_FRAMES)
    assert seen == set(CLIENT_FRAMES) - set(NOT_COVERED), (missing, undeclared)
    assert {kind: {frozenset(ack) for ack in acks} for kind, acks in s.acks.items()} == {
        kind: {frozenset(keys)} for kind, keys in ACK_KEYS.items()
    }
    errors = {frame["code"] for frame in frames if frame["type"] == "error"}
    assert errors >= ERROR_CODES | {"unauthenticated"}, errors
    with_ref = {frame["type"] for frame in frames if "ref" in frame}
    assert with_ref == {"authenticated", "ack", "error", "pong"}
