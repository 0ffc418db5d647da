"""Structured logs from a real server: one JSON object per line, connects and disconnects
with user and duration, and never a token or message content."""

import asyncio
import json

import httpx
import pytest

from tests.live import WAIT, WS, LiveServer, server_environment

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CONTENT = "a-very-private-sentence"
SEARCHED = "what-alice-looks-for"  # searches are as private as what they find


@pytest.mark.asyncio
async def test_json_logs_carry_context_and_never_secrets(general, user, alice_token):
    server = LiveServer(server_environment(LOG_FORMAT="json", LOG_LEVEL="info"))
    await asyncio.to_thread(server.start, 60)
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            response = await client.get(
                f"/api/rooms/?token={alice_token}",
                headers={"Authorization": f"Bearer {alice_token}", "X-Request-ID": "req-42"},
            )
            assert response.status_code == 200
            assert response.headers["X-Request-ID"] == "req-42"
            made_up = (await client.get("/healthz")).headers["X-Request-ID"]
            assert len(made_up) == 32
            bearer = {"Authorization": f"Bearer {alice_token}"}
            for path in (
                f"/api/messages/search/?q={SEARCHED}&room={general.pk}",
                f"/api/users/?search={SEARCHED}",
                f"/api/users/?%53EARCH={SEARCHED}",  # any case, percent-encoded: the same name
            ):
                assert (await client.get(path, headers=bearer)).status_code == 200, path
        ws = await WS.connect(f"{server.ws_url}/ws/rooms/{general.pk}/?token={alice_token}")
        await ws.recv_until("room_users")
        message = {"type": "message", "room": general.pk, "content": CONTENT}
        ack = await ws.request(message)
        assert ack["type"] == "ack"
        await ws.close()
        # The server logs the disconnect once it has run `disconnect`: wait for that line.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while '"ws_disconnected"' not in server.log_text():
            assert loop.time() < deadline, f"no ws_disconnected within {WAIT}s:\n{server.output()}"
            await asyncio.sleep(0.1)
    finally:
        server.stop()

    text = server.log_text()
    assert alice_token not in text
    assert alice_token.split(".")[2] not in text  # not even the signature
    assert CONTENT not in text
    assert SEARCHED not in text
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    for line in lines:
        assert {"timestamp", "level", "logger", "event"} <= line.keys(), line
    requests = [line for line in lines if line["event"] == "http_request"]
    assert any(r["path"] == "/api/rooms/?token=[redacted]" for r in requests), requests
    paths = {r["path"] for r in requests}
    assert f"/api/messages/search/?q=[redacted]&room={general.pk}" in paths, paths
    assert "/api/users/?search=[redacted]" in paths, paths
    assert all({"status", "duration_ms", "method"} <= r.keys() for r in requests)
    ours = [line for line in lines if line["logger"] == "messaging.consumers"]
    connected = [line for line in ours if line["event"] == "ws_connected"]
    assert connected and connected[0]["user_id"] == user.pk and connected[0]["socket_id"]
    gone = [line for line in ours if line["event"] == "ws_disconnected"]
    assert gone and gone[0]["user_id"] == user.pk and gone[0]["duration_ms"] >= 0
