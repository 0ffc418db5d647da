"""Live features end to end: real `manage.py serve` processes, real sockets.

Presence (who is in a room, who is online, across tabs and processes), typing, live
edits, deletes and reactions, recovery of changed messages with `after`, read markers.
Users and rooms are made in the test process (committed: transactional tests); every
change that others must see live goes through a server (its socket or its REST API), so
that server's channel layer carries it.

Absence is asserted two ways: with a barrier (a later frame that travels the same road
and so must arrive after the unwanted one would have), or with a short quiet window.
What must arrive is awaited with generous bounds (WAIT): a busy machine may be slow, and
a bound that only a broken server reaches costs nothing when the server works.
"""

import asyncio
import contextlib
import functools
import signal
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from channels.db import database_sync_to_async
from django.conf import settings

from accounts.models import User
from accounts.services import issue_tokens
from messaging.typists import TYPING_EVERY
from tests.factories import UserFactory, add_member
from tests.live import RUN_ID, WAIT, WS, LiveServer, collect, server_environment

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

Frame = dict[str, Any]
STREAM = {"message", "message_updated", "message_deleted", "reaction_added", "reaction_removed"}
START = 60.0  # seconds for a server process to start answering
NO_REDIS = (
    "needs REDIS_URL: without Redis every server process keeps its own channel layer and "
    "presence, so nothing can cross from one process to another (SPEC section 5)"
)


# ------------------------------------------------------------------------ helpers


@contextlib.asynccontextmanager
async def signed_in(server: LiveServer, token: str, path: str = "/ws/") -> AsyncIterator[WS]:
    """A socket that has received `authenticated`; closed afterwards."""
    ws = await WS.connect(f"{server.ws_url}{path}", token=token)
    try:
        await ws.recv_until("authenticated")
        yield ws
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(), 5)


async def read_until(ws: WS, wanted: Callable[[Frame], bool], timeout: float = WAIT) -> list[Frame]:
    """Every frame up to and including the first one that is `wanted`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    seen: list[Frame] = []
    while True:
        left = deadline - loop.time()
        try:
            if left <= 0:
                raise TimeoutError
            frame = await ws.recv(left)
        except TimeoutError:
            raise AssertionError(f"wanted frame not seen within {timeout}s; saw {seen}") from None
        seen.append(frame)
        if wanted(frame):
            return seen


def kind(name: str, **fields: Any) -> Callable[[Frame], bool]:
    return lambda f: f.get("type") == name and all(f.get(k) == v for k, v in fields.items())


def by(name: str, user_id: int, **fields: Any) -> Callable[[Frame], bool]:
    """A frame of type `name` about or from user `user_id` (`user` or `user_id` field)."""

    def match(f: Frame) -> bool:
        who = f.get("user", {}).get("id") if isinstance(f.get("user"), dict) else f.get("user_id")
        return kind(name, **fields)(f) and who == user_id

    return match


def count(frames: list[Frame], wanted: Callable[[Frame], bool]) -> int:
    return sum(1 for f in frames if wanted(f))


async def join(ws: WS, room_id: int, **extra: Any) -> tuple[Frame, Frame]:
    """Join a room: (ack, room_users). The replay of `after`, if any, comes next."""
    ref = f"join-{uuid.uuid4().hex[:8]}"
    await ws.send({"type": "join", "room": room_id, "ref": ref, **extra})
    seen = await read_until(ws, lambda f: f.get("ref") == ref)
    ack = seen[-1]
    assert ack["type"] == "ack", ack
    assert ack["room"] == room_id
    users = (await read_until(ws, kind("room_users", room=room_id)))[-1]
    return ack, users


async def say(ws: WS, room_id: int, content: str) -> Frame:
    """Send a message over the socket; the stored message from its ack."""
    ack = await ws.request({"type": "message", "room": room_id, "content": content})
    assert ack["type"] == "ack", ack
    return ack["message"]


async def typing(ws: WS, room_id: int, is_typing: bool) -> None:
    await ws.send({"type": "typing", "room": room_id, "is_typing": is_typing})


async def stream(ws: WS, room_id: int, n: int, timeout: float = WAIT) -> list[Frame]:
    """The next `n` frames of the room's stream (others skipped)."""
    got: list[Frame] = []
    while len(got) < n:
        seen = await read_until(
            ws, lambda f: f.get("type") in STREAM and f.get("room") == room_id, timeout
        )
        got.append(seen[-1])
    return got


async def no_stream(ws: WS, room_id: int, within: float = 0.7) -> None:
    frames = await collect(ws, within)
    assert [f for f in frames if f.get("type") in STREAM and f.get("room") == room_id] == []


def rest(server: LiveServer, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


def brief(user: User) -> Frame:
    return {"id": user.pk, "username": user.username, "display_name": user.display_name}


@database_sync_to_async
def last_seen_of(user_id: int) -> Any:
    """Read in a worker thread that closes its connection afterwards (an open one would
    keep PostgreSQL from dropping the test database)."""
    return User.objects.values_list("last_seen", flat=True).get(pk=user_id)


async def start(env: dict[str, str]) -> LiveServer:
    server = LiveServer(env)
    await asyncio.to_thread(functools.partial(server.start, timeout=START))
    return server


async def stop(server: LiveServer, sig: int = signal.SIGTERM) -> None:
    await asyncio.to_thread(server.stop, sig)


# ----------------------------------------------------------------------- fixtures


@pytest.fixture
def room_of_two(general, user, other_user):
    """General with alice and bob already members: joining sockets store no notices,
    so the room's positions are exactly the changes a test makes."""
    add_member(general, user)
    add_member(general, other_user)
    general.refresh_from_db()
    return general


@pytest.fixture
def carol(db, general) -> User:
    """A third user, a member of General."""
    carol = UserFactory(username="carol", display_name="Carol")
    add_member(general, carol)
    return carol


@pytest.fixture
def carol_token(carol) -> str:
    return issue_tokens(user=carol)["access"]


@pytest.fixture
def redis_required() -> None:
    if not settings.REDIS_URL:
        pytest.skip(NO_REDIS)


@pytest.fixture(scope="module")
def second_server(chat_server) -> Any:
    """Another server process beside `chat_server`, sharing its database and Redis."""
    if not settings.REDIS_URL:
        pytest.skip(NO_REDIS)
    server = LiveServer(server_environment())
    server.start(timeout=START)
    yield server
    server.stop()


# --------------------------------------------------------------- who is in a room


async def test_room_users_after_join_lists_the_users_present(
    chat_server, room_of_two, user, other_user, carol, alice_token, bob_token, carol_token
):
    """carol is a member too, but not connected until the end."""
    room = room_of_two.pk
    async with signed_in(chat_server, alice_token) as alice:
        _, alone = await join(alice, room)
        assert alone["users"] == [brief(user)]

        async with signed_in(chat_server, bob_token) as bob:
            _, both = await join(bob, room)
            assert sorted(both["users"], key=lambda u: u["id"]) == [brief(user), brief(other_user)]
            assert (await bob.request({"type": "leave", "room": room}))["type"] == "ack"

            async with signed_in(chat_server, carol_token) as carol_ws:
                _, now = await join(carol_ws, room)
                assert {u["id"] for u in now["users"]} == {user.pk, carol.pk}


async def test_user_joined_once_per_user_not_per_socket(
    chat_server, room_of_two, other_user, alice_token, bob_token
):
    room = room_of_two.pk
    async with signed_in(chat_server, alice_token) as alice:
        await join(alice, room)
        async with signed_in(chat_server, bob_token) as bob:
            await join(bob, room)
            seen = await read_until(alice, by("user_joined", other_user.pk, room=room))
            assert seen[-1]["user"] == brief(other_user)

            async with signed_in(chat_server, bob_token) as bob_tab:
                await join(bob_tab, room)
                # Barrier: the tab's typing leaves after any user_joined it caused.
                await typing(bob_tab, room, False)
                seen = await read_until(alice, by("typing", other_user.pk))
                seen += await collect(alice, 0.5)
                assert count(seen, kind("user_joined")) == 0, seen


async def test_user_left_only_after_the_users_last_socket_leaves(
    chat_server, room_of_two, other_user, alice_token, bob_token
):
    room = room_of_two.pk
    async with signed_in(chat_server, alice_token) as alice:
        await join(alice, room)
        async with (
            signed_in(chat_server, bob_token) as bob,
            signed_in(chat_server, bob_token) as bob_tab,
        ):
            await join(bob, room)
            await join(bob_tab, room)
            await read_until(alice, by("user_joined", other_user.pk, room=room))

            assert (await bob.request({"type": "leave", "room": room}))["type"] == "ack"
            await typing(bob_tab, room, False)  # barrier, as above
            seen = await read_until(alice, by("typing", other_user.pk))
            seen += await collect(alice, 0.5)
            assert count(seen, kind("user_left")) == 0, seen

            await bob_tab.close()  # the last one goes: by closing, not by leaving
            seen = await read_until(alice, by("user_left", other_user.pk, room=room))
            assert seen[-1]["user"] == brief(other_user)


# ------------------------------------------------------------------ online status


async def test_two_tabs_give_one_user_online_and_one_user_offline(
    chat_server, user, other_user, alice_token, bob_token
):
    async with signed_in(chat_server, alice_token) as watcher:
        ack = await watcher.request({"type": "subscribe_status", "user_id": other_user.pk})
        assert ack == {
            "type": "ack",
            "ref": ack["ref"],
            "user_id": other_user.pk,
            "username": "bob",
            "is_online": False,
            "last_seen": None,
        }
        seen: list[Frame] = []

        async with contextlib.AsyncExitStack() as tabs:
            first = await tabs.enter_async_context(signed_in(chat_server, bob_token))
            seen += await read_until(watcher, by("user_online", other_user.pk))
            assert seen[-1]["is_online"] is True
            assert seen[-1]["username"] == "bob"

            second = await tabs.enter_async_context(signed_in(chat_server, bob_token))
            seen += await collect(watcher, 1.0)

            await first.close()
            seen += await collect(watcher, 1.0)
            assert count(seen, by("user_offline", other_user.pk)) == 0, seen

            await second.close()
            seen += await read_until(watcher, by("user_offline", other_user.pk))
        offline = seen[-1]
        assert offline["is_online"] is False
        assert offline["last_seen"] is not None
        seen += await collect(watcher, 0.5)

        assert count(seen, by("user_online", other_user.pk)) == 1, seen
        assert count(seen, by("user_offline", other_user.pk)) == 1, seen
        assert await last_seen_of(other_user.pk) is not None
        again = await watcher.request({"type": "subscribe_status", "user_id": other_user.pk})
        assert again["is_online"] is False
        assert again["last_seen"] == offline["last_seen"]


async def test_room_members_hear_a_member_come_online_and_go_offline(
    chat_server, room_of_two, other_user, alice_token, bob_token
):
    async with signed_in(chat_server, alice_token) as alice:
        await join(alice, room_of_two.pk)  # no status subscription: the room carries it

        async with signed_in(chat_server, bob_token):
            online = (await read_until(alice, by("user_online", other_user.pk)))[-1]
            assert online["username"] == "bob"
            assert online["is_online"] is True

        offline = (await read_until(alice, by("user_offline", other_user.pk)))[-1]
        assert offline["is_online"] is False
        assert offline["last_seen"] is not None


async def test_unsubscribed_status_is_no_longer_reported(
    chat_server, user, other_user, alice_token, bob_token
):
    async with signed_in(chat_server, alice_token) as watcher:
        await watcher.request({"type": "subscribe_status", "user_id": other_user.pk})
        ack = await watcher.request({"type": "unsubscribe_status", "user_id": other_user.pk})
        assert (ack["type"], ack["user_id"]) == ("ack", other_user.pk)

        async with signed_in(chat_server, bob_token):
            seen = await collect(watcher, 1.0)

        assert count(seen, by("user_online", other_user.pk)) == 0, seen


async def test_subscribe_status_of_an_unknown_user_is_not_found(chat_server, user, alice_token):
    async with signed_in(chat_server, alice_token) as ws:
        answer = await ws.request({"type": "subscribe_status", "user_id": 987654321})

        assert answer["type"] == "error"
        assert answer["code"] == "not_found"
        assert (await ws.request({"type": "ping"}))["type"] == "pong"  # still open


# ------------------------------------------------------------------------- typing


async def test_typing_reaches_others_but_never_the_typists_own_sockets(
    chat_server, room_of_two, user, other_user, alice_token, bob_token
):
    room = room_of_two.pk
    async with (
        signed_in(chat_server, alice_token) as alice,
        signed_in(chat_server, alice_token) as alice_tab,
        signed_in(chat_server, bob_token) as bob,
    ):
        for ws in (alice, alice_tab, bob):
            await join(ws, room)

        await typing(alice, room, True)

        got = (await read_until(bob, by("typing", user.pk)))[-1]
        assert got == {"type": "typing", "room": room, "user": brief(user), "is_typing": True}
        await typing(bob, room, False)  # barrier: leaves after alice's typing was relayed
        for ws in (alice, alice_tab):
            seen = await read_until(ws, by("typing", other_user.pk))
            assert count(seen, by("typing", user.pk)) == 0, seen
            assert seen[-1]["is_typing"] is False
        seen = await collect(bob, 0.5)
        assert count(seen, by("typing", other_user.pk)) == 0, seen


async def test_typing_flood_is_throttled_and_the_last_state_always_arrives(
    chat_server, room_of_two, user, alice_token, bob_token
):
    room = room_of_two.pk
    async with (
        signed_in(chat_server, alice_token) as alice,
        signed_in(chat_server, bob_token) as bob,
    ):
        await join(alice, room)
        await join(bob, room)

        loop = asyncio.get_running_loop()
        began = loop.time()
        for _ in range(20):
            await typing(alice, room, True)
        for _ in range(3):
            await typing(alice, room, False)

        seen = await read_until(bob, by("typing", user.pk, is_typing=False))
        # One typing frame per TYPING_EVERY: the first start at once, the frames after it
        # held, the latest state (stopped) when the window opens. A loaded server that
        # took longer to read the 23 frames may rightly have let one more through per
        # window it spanned.
        span = loop.time() - began
        seen += await collect(bob, TYPING_EVERY + 0.5)
        typed = [f["is_typing"] for f in seen if by("typing", user.pk)(f)]
        assert 2 <= len(typed) <= 2 + int(span // TYPING_EVERY), (span, seen)
        assert typed[0] is True and typed[-1] is False, seen


async def test_typing_in_a_room_not_joined_is_forbidden(
    chat_server, room_of_two, user, alice_token
):
    async with signed_in(chat_server, alice_token) as alice:
        answer = await alice.request({"type": "typing", "room": room_of_two.pk, "is_typing": True})

        assert (answer["type"], answer["code"]) == ("error", "forbidden")
        await join(alice, room_of_two.pk)
        assert (await alice.request({"type": "leave", "room": room_of_two.pk}))["type"] == "ack"
        answer = await alice.request({"type": "typing", "room": room_of_two.pk, "is_typing": False})
        assert (answer["type"], answer["code"]) == ("error", "forbidden")


# ----------------------------------------------------------- changes, live and missed


async def test_rest_edit_reactions_and_delete_arrive_live_in_pos_order(
    chat_server, room_of_two, user, other_user, alice_token, bob_token
):
    room = room_of_two.pk
    async with (
        signed_in(chat_server, alice_token) as alice,
        signed_in(chat_server, bob_token) as bob,
    ):
        await join(alice, room)
        await join(bob, room)
        sent = await say(alice, room, "first take")
        for ws in (bob, alice):  # the sender's socket gets it too
            (arrived,) = await stream(ws, room, 1)
            assert (arrived["type"], arrived["pos"]) == ("message", sent["pos"])
        url = f"/api/messages/{sent['id']}/"

        async with (
            rest(chat_server, alice_token) as as_alice,
            rest(chat_server, bob_token) as as_bob,
        ):
            edited = await as_alice.patch(url, json={"content": "second take"})
            assert edited.status_code == 200, edited.text
            added = await as_bob.post(f"{url}reactions/", json={"emoji": "👍"})
            assert added.status_code == 201, added.text
            removed = await as_bob.delete(f"{url}reactions/{quote('👍')}/")
            assert removed.status_code == 200, removed.text
            deleted = await as_alice.delete(url)
            assert deleted.status_code == 200, deleted.text

        for ws in (bob, alice):
            updated, reacted, unreacted, gone = await stream(ws, room, 4)
            assert [f["type"] for f in (updated, reacted, unreacted, gone)] == [
                "message_updated",
                "reaction_added",
                "reaction_removed",
                "message_deleted",
            ]
            assert [f["pos"] for f in (updated, reacted, unreacted, gone)] == [
                sent["pos"] + 1,
                sent["pos"] + 2,
                sent["pos"] + 3,
                sent["pos"] + 4,
            ]
            assert updated["message"]["id"] == sent["id"]
            assert updated["message"]["content"] == "second take"
            assert updated["message"]["edited_at"] is not None
            assert updated["message"]["pos"] == updated["pos"]
            for frame in (reacted, unreacted):
                assert frame["message_id"] == sent["id"]
                assert frame["emoji"] == "👍"
                assert frame["user_id"] == other_user.pk
            assert gone == {
                "type": "message_deleted",
                "room": room,
                "pos": sent["pos"] + 4,
                "message_id": sent["id"],
            }


async def test_recovery_returns_each_changed_message_once_in_its_current_state(
    chat_server, room_of_two, user, other_user, alice_token, bob_token
):
    room = room_of_two.pk
    async with signed_in(chat_server, alice_token) as alice:
        start_ack, _ = await join(alice, room)
        seen_up_to = start_ack["pos"]
        m1, m2, m3, m4, m5 = [await say(alice, room, f"m{n}") for n in range(1, 6)]
        async with (
            rest(chat_server, alice_token) as as_alice,
            rest(chat_server, bob_token) as as_bob,
        ):
            changes = [
                (as_alice.patch, f"/api/messages/{m1['id']}/", {"content": "m1 v2"}),
                (as_bob.post, f"/api/messages/{m2['id']}/reactions/", {"emoji": "👍"}),
                (as_alice.delete, f"/api/messages/{m3['id']}/", None),
                (as_alice.patch, f"/api/messages/{m1['id']}/", {"content": "m1 v3"}),
                (as_bob.post, f"/api/messages/{m5['id']}/reactions/", {"emoji": "🎉"}),
                (as_bob.delete, f"/api/messages/{m5['id']}/reactions/{quote('🎉')}/", None),
            ]
            for method, url, body in changes:  # one after another: each takes the next pos
                response = await (method(url, json=body) if body else method(url))
                assert response.status_code in (200, 201), response.text

    final = seen_up_to + 11
    async with signed_in(chat_server, bob_token) as bob:
        ack, _ = await join(bob, room, after=seen_up_to)
        assert ack["pos"] == final
        replay = await stream(bob, room, 5)
        await no_stream(bob, room)

    assert [(f["type"], f["pos"]) for f in replay] == [
        ("message", seen_up_to + 4),  # m4: never changed
        ("message_updated", seen_up_to + 7),  # m2: reacted to
        ("message_deleted", seen_up_to + 8),  # m3
        ("message_updated", seen_up_to + 9),  # m1: edited twice, shown once, as it is now
        ("message_updated", seen_up_to + 11),  # m5: reaction added and taken back
    ]
    shown = {f.get("message", {}).get("id", f.get("message_id")): f for f in replay}
    assert list(shown) == [m4["id"], m2["id"], m3["id"], m1["id"], m5["id"]]
    assert shown[m4["id"]]["message"]["content"] == "m4"
    assert shown[m2["id"]]["message"]["reactions"] == [
        {"emoji": "👍", "count": 1, "user_ids": [other_user.pk], "me": True}
    ]
    assert shown[m1["id"]]["message"]["content"] == "m1 v3"
    assert shown[m1["id"]]["message"]["seq"] == m1["seq"]
    assert shown[m5["id"]]["message"]["reactions"] == []
    assert "m3" not in str(shown[m3["id"]])

    # From a later position, only what changed after it.
    async with signed_in(chat_server, bob_token) as bob:
        await join(bob, room, after=seen_up_to + 9)
        (only,) = await stream(bob, room, 1)
        await no_stream(bob, room)
    assert (only["type"], only["pos"], only["message"]["id"]) == (
        "message_updated",
        final,
        m5["id"],
    )


async def test_read_frame_acks_with_the_unread_count(
    chat_server, room_of_two, user, other_user, alice_token, bob_token
):
    room = room_of_two.pk
    async with (
        signed_in(chat_server, alice_token) as alice,
        signed_in(chat_server, bob_token) as bob,
    ):
        await join(alice, room)
        await join(bob, room)
        said = [await say(alice, room, f"unread {n}") for n in range(3)]

        first = await bob.request({"type": "read", "room": room, "message_id": said[0]["id"]})
        assert first == {
            "type": "ack",
            "ref": first["ref"],
            "room": room,
            "last_read_seq": said[0]["seq"],
            "unread_count": 2,
            "mention_count": 0,
        }
        last = await bob.request({"type": "read", "room": room, "message_id": said[2]["id"]})
        assert (last["last_read_seq"], last["unread_count"]) == (said[2]["seq"], 0)
        back = await bob.request({"type": "read", "room": room, "message_id": said[0]["id"]})
        assert (back["last_read_seq"], back["unread_count"]) == (said[2]["seq"], 0)
        missing = await bob.request({"type": "read", "room": room, "message_id": 987654321})
        assert (missing["type"], missing["code"]) == ("error", "not_found")

    async with rest(chat_server, bob_token) as as_bob:
        rooms = (await as_bob.get("/api/rooms/")).json()["results"]
    assert [r["unread_count"] for r in rooms if r["id"] == room] == [0]


# ------------------------------------------------------------- several processes


async def test_message_sent_on_one_process_reaches_a_socket_on_another(
    chat_server, second_server, room_of_two, user, other_user, alice_token, bob_token
):
    room = room_of_two.pk
    async with (
        signed_in(chat_server, alice_token) as alice,
        signed_in(second_server, bob_token) as bob,
    ):
        await join(alice, room)
        await join(bob, room)

        sent = await say(alice, room, "across processes")
        (got,) = await stream(bob, room, 1)
        assert (got["type"], got["pos"], got["message"]["id"]) == (
            "message",
            sent["pos"],
            sent["id"],
        )

        reply = await say(bob, room, "and back")
        got = (await read_until(alice, kind("message", room=room, pos=reply["pos"])))[-1]
        assert got["message"]["content"] == "and back"

        await typing(bob, room, True)
        got = (await read_until(alice, by("typing", other_user.pk)))[-1]
        assert got["is_typing"] is True


async def test_a_retry_on_another_process_stores_and_delivers_once(
    chat_server, second_server, room_of_two, user, other_user, alice_token, bob_token
):
    """The sender lost its ack on one process and resends the same client_id on the other
    (a load balancer may send the reconnect anywhere): one message, delivered once."""
    room = room_of_two.pk
    frame = {"type": "message", "room": room, "content": "once", "client_id": "retry-x1"}
    async with (
        signed_in(chat_server, alice_token) as first,
        signed_in(second_server, alice_token) as retry,
        signed_in(second_server, bob_token) as bob,
    ):
        await join(bob, room)
        sent = await first.request(frame)
        again = await retry.request(frame)
        assert sent["type"] == again["type"] == "ack"
        assert again["message"]["id"] == sent["message"]["id"]
        (delivered,) = await stream(bob, room, 1)  # crosses Redis: waited for, not hoped for
        later = await collect(bob, 1.0)
    assert (delivered["type"], delivered["message"]["id"]) == ("message", sent["message"]["id"])
    assert [f for f in later if f.get("type") in STREAM and f.get("room") == room] == []
    async with rest(chat_server, alice_token) as client:
        history = (await client.get(f"/api/rooms/{room}/messages/", params={"after": 0})).json()
    assert [m["content"] for m in history["results"]].count("once") == 1


async def test_many_sockets_on_two_processes_each_get_every_message_in_order(
    chat_server, second_server, room_of_two, user, other_user, alice_token, bob_token
):
    room = room_of_two.pk
    async with contextlib.AsyncExitStack() as sockets:
        listeners = []
        for n in range(10):  # five tabs of each user on each process
            server = (chat_server, second_server)[n % 2]
            token = (alice_token, bob_token)[n // 5]
            ws = await sockets.enter_async_context(signed_in(server, token))
            await join(ws, room)
            listeners.append(ws)
        async with signed_in(chat_server, alice_token) as sender:
            sent = [await say(sender, room, f"fan-out {n}") for n in range(20)]
        for ws in listeners:
            got = await stream(ws, room, len(sent))
            assert [f["pos"] for f in got] == [m["pos"] for m in sent]


async def test_user_online_on_one_process_is_online_on_another(
    chat_server, second_server, user, other_user, alice_token, bob_token
):
    async def bob_as_seen_from_the_first_server() -> Frame:
        async with rest(chat_server, alice_token) as client:
            response = await client.get("/api/users/", params={"search": "bob"})
        assert response.status_code == 200, response.text
        [bob] = [u for u in response.json()["results"] if u["id"] == other_user.pk]
        return bob

    assert (await bob_as_seen_from_the_first_server())["is_online"] is False
    async with signed_in(second_server, bob_token):
        assert (await bob_as_seen_from_the_first_server())["is_online"] is True
        async with rest(chat_server, alice_token) as client:
            online = (await client.get("/api/users/", params={"online": "true"})).json()
        assert other_user.pk in {u["id"] for u in online["results"]}

    # Well within PRESENCE_TTL (45 s): going offline is the socket's `disconnect` at
    # work, not its presence entry expiring.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while (await bob_as_seen_from_the_first_server())["is_online"]:
        assert loop.time() < deadline, f"bob still online {WAIT} s after his socket closed"
        await asyncio.sleep(0.1)


async def test_users_of_a_killed_process_go_offline_and_leave_their_rooms(
    redis_required, chat_server, room_of_two, user, other_user, alice_token, bob_token
):
    """Presence survives a crash: the killed process never runs `disconnect`, its
    entries stop being renewed and expire, and the other process's sweep reports it."""
    # A prefix of their own: one process per period sweeps presence, and a server with
    # the default TTL (the session's) must not hold that claim for 13 s. A short TTL, but
    # not so short that a live process, renewing every TTL/3, loses its entries to a stall
    # of a loaded machine.
    env = server_environment(PRESENCE_TTL="6", CHANNEL_PREFIX=f"test-{RUN_ID}-ttl6")
    # One after the other: two `free_port()` calls made before either server binds may
    # answer the same port, and the second server's /healthz would be the first's.
    first = await start(env)
    try:
        doomed = await start(env)
    except BaseException:
        await stop(first)
        raise
    try:
        bob = await WS.connect(f"{doomed.ws_url}/ws/", token=bob_token)
        await bob.recv_until("authenticated")
        await join(bob, room_of_two.pk)
        async with signed_in(first, alice_token) as watcher:  # keeps its heartbeat going
            ack = await watcher.request({"type": "subscribe_status", "user_id": other_user.pk})
            assert ack["is_online"] is True  # the other process's socket counts
            _, present = await join(watcher, room_of_two.pk)
            assert other_user.pk in {u["id"] for u in present["users"]}

            assert await asyncio.to_thread(doomed.stop, signal.SIGKILL) == -signal.SIGKILL

            # TTL 6 s, a sweep every 2 s: offline within seconds; the bound is for a
            # loaded machine (the default TTL is 45 s).
            seen = await read_until(watcher, by("user_offline", other_user.pk), timeout=30)
            offline = seen[-1]
            assert offline["is_online"] is False
            assert offline["last_seen"] is not None
            if not any(by("user_left", other_user.pk, room=room_of_two.pk)(f) for f in seen):
                await read_until(watcher, by("user_left", other_user.pk, room=room_of_two.pk))
            async with rest(first, alice_token) as client:
                users = (await client.get("/api/users/", params={"search": "bob"})).json()
            assert [u["is_online"] for u in users["results"] if u["id"] == other_user.pk] == [False]
        with contextlib.suppress(Exception):
            await asyncio.wait_for(bob.close(), 5)
    finally:
        await asyncio.gather(stop(first), stop(doomed))


async def test_stats_count_the_connections_of_every_process(
    chat_server, second_server, user, other_user, alice_token, bob_token
):
    async def stats() -> Frame:
        async with rest(chat_server, alice_token) as client:
            response = await client.get("/api/stats/")
        assert response.status_code == 200, response.text
        return response.json()

    def counts(figures: Frame) -> tuple[int, int]:
        return figures["connections"], figures["online_users"]

    # A baseline that has settled: sockets closed just before (an earlier test's) leave
    # the figures only once their server has run `disconnect`, maybe after `before`.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    before = await stats()
    while loop.time() < deadline:
        await asyncio.sleep(0.5)
        again = await stats()
        if counts(again) == counts(before):
            break
        before = again
    async with (
        signed_in(chat_server, alice_token),
        signed_in(second_server, bob_token),
        signed_in(second_server, bob_token),
    ):
        # Each process publishes its count within half a second of a change.
        deadline = loop.time() + WAIT
        during = await stats()
        while during["connections"] - before["connections"] < 3 and loop.time() < deadline:
            await asyncio.sleep(0.2)
            during = await stats()
    assert during["connections"] - before["connections"] == 3
    assert during["online_users"] - before["online_users"] == 2


async def test_a_user_hears_of_a_room_they_were_added_to(
    chat_server, user, other_user, alice_token, bob_token
):
    async with signed_in(chat_server, bob_token) as bob, rest(chat_server, alice_token) as alice:
        created = await alice.post("/api/direct/", json={"user_id": other_user.pk})
        assert created.status_code == 201
        room = created.json()["id"]
        added = await read_until(bob, kind("room_added", room=room))
        assert {**added[-1], "user_pos": 0} == {"type": "room_added", "room": room, "user_pos": 0}

        private = await alice.post("/api/rooms/", json={"name": "Inner", "kind": "private"})
        invited = await alice.post(
            f"/api/rooms/{private.json()['id']}/members/", json={"user_id": other_user.pk}
        )
        assert invited.status_code == 200
        await read_until(bob, kind("room_added", room=private.json()["id"]))
