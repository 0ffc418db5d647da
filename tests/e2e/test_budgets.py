"""Abuse budgets against real servers (SPEC section 10; issue #13, items 7, 8, 12, 13):
WRITE_RATE_LIMIT shared by edits, reactions, joins, leaves and rooms made, over REST and
the socket; typing and presence churn reach others as a few frames a second; the upload
quota, and the sweep each server runs on its own; a crafted post fails only itself."""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from asgiref.sync import sync_to_async

from accounts.models import User
from accounts.presence import ANNOUNCEMENTS
from accounts.services import issue_tokens
from messaging.models import Message, Reaction
from messaging.typists import TYPING_EVERY
from rooms.models import Membership, Room
from tests.factories import UserFactory, add_member, make_room
from tests.live import WAIT, WS, LiveServer, collect, server_environment

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

Frame = dict[str, Any]
WRITES = 5  # WRITE_RATE_LIMIT of the `budgeted` server, per minute


def start(tmp_path_factory, **limits: str) -> LiveServer:
    media = tmp_path_factory.mktemp("media")
    server = LiveServer(server_environment(MEDIA_ROOT=str(media), **limits))
    server.start()
    return server


@pytest.fixture(scope="module")
def budgeted(django_db_setup, tmp_path_factory) -> Iterator[LiveServer]:
    server = start(tmp_path_factory, WRITE_RATE_LIMIT=f"{WRITES}/min", UPLOAD_QUOTA_MB="1")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sweeping(django_db_setup, tmp_path_factory) -> Iterator[LiveServer]:
    """Unused uploads live 1.8 s here (the server sweeps every second)."""
    server = start(tmp_path_factory, UNUSED_UPLOAD_HOURS="0.0005")
    yield server
    server.stop()


def person(*rooms: Room) -> tuple[User, str]:
    """A fresh user (budgets of their own), a member of `rooms`, and an access token."""
    user = UserFactory()
    for room in rooms:
        add_member(room, user)
    return user, issue_tokens(user=user)["access"]


@contextlib.asynccontextmanager
async def socket(server: LiveServer, token: str, *rooms: int) -> AsyncIterator[WS]:
    """A signed-in socket subscribed to `rooms` (each join answered)."""
    async with await WS.connect(f"{server.ws_url}/ws/", token=token) as ws:
        await ws.recv_until("authenticated")
        for room in rooms:
            answer = await ws.request({"type": "join", "room": room})
            assert answer["type"] == "ack", answer
        yield ws


def rest(server: LiveServer, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=WAIT
    )


async def collect_until(ws: WS, *wanted, within: float = WAIT) -> list[Frame]:
    """Frames until each of the predicates `wanted` has matched one, in any order."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    seen: list[Frame] = []
    missing = list(wanted)
    while missing:
        left = deadline - loop.time()
        assert left > 0, f"not all wanted frames within {within} s; saw {seen}"
        frame = await ws.recv(left)
        seen.append(frame)
        missing = [w for w in missing if not w(frame)]
    return seen


def refused(response: httpx.Response) -> bool:
    return (
        response.status_code == 429
        and response.json()["code"] == "rate_limited"
        and 0 < int(response.headers["Retry-After"]) <= 60
    )


# ------------------------------------------------------------------ write budget


async def test_edits_reactions_joins_leaves_and_rooms_made_spend_one_budget(budgeted, general):
    lounge, spender, watcher = await sync_to_async(_budget_scene)(general)
    (spender, spender_token), (watcher, watcher_token) = spender, watcher
    async with (
        socket(budgeted, watcher_token, general.pk, lounge.pk) as watching,
        socket(budgeted, spender_token) as spending,
        rest(budgeted, spender_token) as api,
    ):
        said = await api.post(f"/api/rooms/{general.pk}/messages/", json={"content": "hi"})
        message = said.json()["id"]  # a message: CHAT_RATE_LIMIT, not this budget

        # Five writes others see, over REST and the socket: the budget.
        edit = await api.patch(f"/api/messages/{message}/", json={"content": "hi!"})
        assert edit.status_code == 200
        react = await api.post(f"/api/messages/{message}/reactions/", json={"emoji": "👍"})
        assert react.status_code == 201
        made = await api.post("/api/rooms/", json={"name": f"Mine {uuid.uuid4().hex[:6]}"})
        assert made.status_code == 201
        joined = await spending.request({"type": "join", "room": lounge.pk})
        assert joined["type"] == "ack", joined
        assert (await api.post(f"/api/rooms/{lounge.pk}/leave/")).status_code == 204
        await collect_until(
            watching,
            lambda f: f["type"] == "reaction_added",
            lambda f: (
                f["type"] == "message" and f["message"]["payload"].get("event") == "member_left"
            ),
            lambda f: f["type"] == "user_left",  # the spender's socket, put out of the room
        )

        # The sixth and after, whichever the kind and the way: refused, nothing stored.
        assert refused(await api.patch(f"/api/messages/{message}/", json={"content": "no"}))
        assert refused(await api.post(f"/api/messages/{message}/reactions/", json={"emoji": "🎉"}))
        assert refused(await api.delete(f"/api/messages/{message}/"))
        assert refused(await api.post("/api/rooms/", json={"name": "One Too Many"}))
        assert refused(await api.post(f"/api/rooms/{lounge.pk}/join/"))
        # A room with someone in it would appear in their sidebar: refused too.
        assert refused(await api.post("/api/direct/", json={"user_id": watcher.pk}))
        answer = await spending.request({"type": "join", "room": lounge.pk})
        assert (answer["type"], answer["code"]) == ("error", "rate_limited"), answer
        assert 0 < answer["retry_after"] <= 60

        # ... and nothing sent: the watcher, in both rooms, receives nothing more.
        assert await collect(watching, 1.0) == []

    stored = await sync_to_async(_stored_after_refusals)(message, lounge, spender)
    assert stored == {
        "content": "hi!",
        "deleted": False,
        "emoji": ["👍"],
        "rooms made": 1,
        "in lounge": False,
        "lounge notices": ["member_joined", "member_left"],
        "direct rooms": 0,
    }


def _budget_scene(general: Room) -> tuple[Room, tuple[User, str], tuple[User, str]]:
    watcher = person(general)
    lounge = make_room(owner=watcher[0], name=f"Lounge {uuid.uuid4().hex[:6]}")
    return lounge, person(general), watcher


def _stored_after_refusals(message_id: int, lounge: Room, spender: User) -> dict[str, Any]:
    message = Message.objects.get(pk=message_id)
    notices = Message.objects.filter(room=lounge, type=Message.Type.SYSTEM).order_by("pos")
    return {
        "content": message.content,
        "deleted": message.deleted,
        "emoji": list(Reaction.objects.filter(message=message).values_list("emoji", flat=True)),
        "rooms made": Room.objects.filter(created_by=spender).count(),
        "in lounge": Membership.objects.filter(room=lounge, user=spender).exists(),
        "lounge notices": [n.payload["event"] for n in notices],
        "direct rooms": Room.objects.filter(kind=Room.Kind.DIRECT, created_by=spender).count(),
    }


# ----------------------------------------------------------------- typing, presence


async def test_a_typing_flood_reaches_others_as_one_frame_a_second_and_ends_right(
    chat_server, general
):
    (_, typist_token), (_, watcher_token) = await sync_to_async(
        lambda: (person(general), person(general))
    )()
    async with (
        socket(chat_server, watcher_token, general.pk) as watching,
        socket(chat_server, typist_token, general.pk) as typing,
    ):
        loop = asyncio.get_running_loop()
        began = loop.time()
        for n in range(120):  # true, false, true, ...: each used to be relayed
            await typing.send({"type": "typing", "room": general.pk, "is_typing": n % 2 == 0})
        assert (await typing.request({"type": "ping"}))["type"] == "pong"  # all were read
        span = loop.time() - began

        seen = await collect(watching, span + 2 * TYPING_EVERY + 1)

    typed = [f["is_typing"] for f in seen if f["type"] == "typing"]
    assert typed and typed[-1] is False, seen  # the last state always arrives
    # One frame per TYPING_EVERY (plus the one that ends the flood), not 120.
    assert len(typed) <= int((span + 2 * TYPING_EVERY) / TYPING_EVERY) + 2, (span, typed)


async def test_opening_and_closing_sockets_fast_gives_a_watcher_a_few_presence_frames(
    chat_server, general
):
    (churner, churner_token), (_, watcher_token) = await sync_to_async(
        lambda: (person(), person())
    )()
    count, per = ANNOUNCEMENTS
    async with socket(chat_server, watcher_token) as watching:
        ack = await watching.request({"type": "subscribe_status", "user_id": churner.pk})
        assert ack["is_online"] is False
        loop = asyncio.get_running_loop()
        began = loop.time()
        for _ in range(25):  # 50 transitions: each used to reach every watcher
            async with socket(chat_server, churner_token):
                pass
        span = loop.time() - began

        seen = await collect(watching, 2 * per + 1)

    shown = [f["type"] for f in seen if f.get("user_id") == churner.pk]
    assert shown and shown[-1] == "user_offline", seen  # the last word is right
    assert len(shown) <= count * (int(span / per) + 3), (span, shown)


async def test_joining_and_leaving_a_room_fast_gives_its_members_a_few_frames(chat_server, general):
    (churner, churner_token), (_, watcher_token) = await sync_to_async(
        lambda: (person(general), person(general))
    )()
    count, per = ANNOUNCEMENTS
    async with (
        socket(chat_server, watcher_token, general.pk) as watching,
        socket(chat_server, churner_token) as churning,
    ):
        loop = asyncio.get_running_loop()
        began = loop.time()
        for _ in range(25):
            assert (await churning.request({"type": "join", "room": general.pk}))["type"] == "ack"
            assert (await churning.request({"type": "leave", "room": general.pk}))["type"] == "ack"
        span = loop.time() - began

        seen = await collect(watching, 2 * per + 1)

    shown = [
        f["type"]
        for f in seen
        if f["type"] in ("user_joined", "user_left") and f["user"]["id"] == churner.pk
    ]
    assert shown and shown[-1] == "user_left", seen
    assert len(shown) <= count * (int(span / per) + 3), (span, shown)


# ---------------------------------------------------------------------- uploads


async def upload(api: httpx.AsyncClient, size: int) -> httpx.Response:
    return await api.post("/api/attachments/", files={"file": ("f.bin", b"\x01" * size)})


async def test_unused_uploads_beyond_the_quota_are_refused_413(budgeted):
    _, token = await sync_to_async(person)()
    async with rest(budgeted, token) as api:
        assert (await upload(api, 700 * 1024)).status_code == 201

        over = await upload(api, 700 * 1024)

    assert over.status_code == 413
    assert over.json()["code"] == "quota_exceeded"


async def test_the_server_sweeps_unused_uploads_on_its_own(sweeping, general):
    _, token = await sync_to_async(person)(general)
    async with rest(sweeping, token) as api:
        unused = (await upload(api, 1024)).json()
        kept = (await upload(api, 1024)).json()
        posted = await api.post(
            f"/api/rooms/{general.pk}/messages/", json={"attachments": [kept["id"]]}
        )
        assert posted.status_code == 201

        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while (await api.get(unused["url"])).status_code == 200:
            assert loop.time() < deadline, "the unused upload was never swept"
            await asyncio.sleep(0.2)

        assert (await api.get(unused["url"])).status_code == 404
        assert (await api.get(kept["url"])).status_code == 200  # in a message: kept


# ----------------------------------------------------------- crafted input


async def test_a_crafted_post_fails_alone_in_its_batch(chat_server, general):
    _, token = await sync_to_async(person)(general)
    async with socket(chat_server, token, general.pk) as ws:
        for n in range(6):  # sent together: stored as one batch (or a few)
            frame: Frame = {"type": "message", "room": general.pk, "content": f"b{n}"}
            if n == 3:
                frame["attachments"] = [2**63]  # SQLite cannot even bind it
            await ws.send({**frame, "ref": f"r{n}"})
        answers: dict[str, Frame] = {}
        while len(answers) < 6:
            frame = await ws.recv()
            if frame.get("ref"):
                answers[frame["ref"]] = frame

    assert (answers["r3"]["type"], answers["r3"]["code"]) == ("error", "validation_error")
    assert [answers[f"r{n}"]["type"] for n in (0, 1, 2, 4, 5)] == ["ack"] * 5
    assert [answers[f"r{n}"]["message"]["content"] for n in (0, 1, 2, 4, 5)] == [
        "b0",
        "b1",
        "b2",
        "b4",
        "b5",
    ]


async def test_an_attachment_id_beyond_the_databases_integers_is_400_over_rest(
    chat_server, general
):
    _, token = await sync_to_async(person)(general)
    async with rest(chat_server, token) as api:
        response = await api.post(
            f"/api/rooms/{general.pk}/messages/", json={"content": "x", "attachments": [2**63]}
        )

    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"
    assert "attachments" in response.json()
