"""Integration keys against a real server (SPEC 9.2), as a script would use them: the
seed's `POST /messages` body sent with curl-like HTTP (httpx), seen live on a native
socket with `sender.is_bot`; a Slack-style webhook; and the refusals: another room's key
(403), a revoked key (401), a malformed key (401), a body missing fields (400), a flood
over `CHAT_RATE_LIMIT` (429). The server runs with a small CHAT_RATE_LIMIT; each key's
bot has a budget of its own."""

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from asgiref.sync import sync_to_async

from accounts.integrations import issue_api_key, revoke_api_key
from tests.factories import UserFactory, make_room
from tests.live import WAIT, LiveServer, server_environment, socket_in

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("worker_connections_closed"),
]

RATE = 4


@pytest.fixture(scope="module")
def server(django_db_setup) -> Iterator[LiveServer]:
    # LOG_LEVEL info: the access log, where a webhook's key must never appear.
    live = LiveServer(server_environment(CHAT_RATE_LIMIT=f"{RATE}/60s", LOG_LEVEL="info"))
    live.start()
    yield live
    live.stop()


@pytest.fixture
def setting(db):
    """A room with a member, and a key scoped to it."""
    owner = UserFactory()
    room = make_room(owner=owner)
    key, raw = issue_api_key(name="Deploy bot", room_ids=[room.pk], created_by=None)
    return owner, room, key, raw


def seed_body(room_id: object, **changes: object) -> dict:
    return {
        "room_id": room_id,
        "content": "Hello World",
        "user_id": "system",
        "username": "System",
        "type": "text",
        "title": "Announcement",
        "payload": {"priority": "high"},
        "attachment_urls": ["https://example.com/file.pdf"],
        **changes,
    }


async def post(server: LiveServer, path: str, body: object, key: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as client:
        return await client.post(path, json=body, headers=headers)


@pytest.mark.asyncio
async def test_seed_broadcast_with_a_key_is_delivered_live_marked_as_the_bot(server, setting):
    owner, room, key, raw = setting
    async with socket_in(server, room, owner) as ws:
        response = await post(server, "/messages", seed_body(str(room.pk)), raw)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "ok"

        frame = await ws.recv_until("message", room=room.pk)

    message = frame["message"]
    assert message["id"] == response.json()["message"]["id"]
    assert message["sender"]["id"] == key.bot_id
    assert message["sender"]["is_bot"] is True
    assert message["content"] == "Hello World" and message["title"] == "Announcement"
    assert message["payload"]["display_name"] == "System"
    assert message["attachments"] == [{"url": "https://example.com/file.pdf"}]


@pytest.mark.asyncio
async def test_a_slack_webhook_posts_live_and_answers_ok(server, setting):
    owner, room, _, raw = setting
    log_start = len(server.log_text().encode())
    async with socket_in(server, room, owner) as ws:
        response = await post(server, f"/api/hooks/{raw}/", {"text": "deployed"}, None)
        assert (response.status_code, response.text) == (200, "ok")

        frame = await ws.recv_until("message", room=room.pk)
    assert frame["message"]["content"] == "deployed"
    assert frame["message"]["sender"]["is_bot"] is True

    # The URL is the credential: the access log names the path without it.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while "/api/hooks/[redacted]/" not in server.log_text(log_start):
        assert loop.time() < deadline, server.output(log_start)
        await asyncio.sleep(0.05)
    assert raw not in server.log_text(log_start)


@pytest.mark.asyncio
async def test_keys_are_refused_outside_their_scope_revoked_or_malformed(server, setting):
    owner, room, key, raw = setting
    other = await sync_to_async(make_room)(owner=owner)
    _, other_raw = await sync_to_async(issue_api_key)(
        name="Other", room_ids=[other.pk], created_by=None
    )

    wrong_room = await post(server, "/messages", seed_body(room.pk), other_raw)
    malformed = await post(server, "/messages", seed_body(room.pk), "chat_nope")
    missing = await post(server, "/messages", {"content": "no room"}, raw)
    no_key = await post(server, "/messages", seed_body(room.pk), None)
    await sync_to_async(revoke_api_key)(key=key)
    revoked = await post(server, "/messages", seed_body(room.pk), raw)
    revoked_hook = await post(server, f"/api/hooks/{raw}/", {"text": "x"}, None)

    assert (wrong_room.status_code, wrong_room.json()["code"]) == (403, "forbidden")
    assert (malformed.status_code, malformed.json()["code"]) == (401, "unauthenticated")
    assert (missing.status_code, missing.json()["code"]) == (400, "validation_error")
    assert (no_key.status_code, no_key.json()["code"]) == (401, "unauthenticated")
    assert (revoked.status_code, revoked.json()["code"]) == (401, "unauthenticated")
    assert revoked_hook.status_code == 401


@pytest.mark.asyncio
async def test_a_flood_over_a_key_hits_chat_rate_limit(server, setting):
    _, room, _, raw = setting
    codes = [
        (await post(server, "/messages", seed_body(room.pk, content=f"n{n}"), raw)).status_code
        for n in range(RATE + 2)
    ]
    hook = await post(server, f"/api/hooks/{raw}/", {"text": "over"}, None)

    assert codes == [200] * RATE + [429, 429]
    assert (hook.status_code, hook.json()["code"]) == (429, "rate_limited")
    assert "Retry-After" in hook.headers
