"""Deeply nested JSON against a real server: a clear 400 over REST (`{"detail", "code"}`,
the unauthenticated login included) and an `error` frame over the socket, never a 500,
a crash or a closed socket."""

import httpx
import pytest

from chatproject.api import MAX_JSON_DEPTH
from tests.live import WS

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

FRAME_LIMIT = 64 * 1024 - 100  # under the socket's frame limit (64 KiB, then 1009)

BODIES = {
    # Too deep for Python's decoder: it raised RecursionError, which DRF let through.
    "brackets": "[" * FRAME_LIMIT,
    "objects": '{"a":' * 10_000 + "1" + "}" * 10_000,
    # Decodes, but deeper than the limit.
    "just_too_deep": '{"a":' * (MAX_JSON_DEPTH + 1) + "1" + "}" * (MAX_JSON_DEPTH + 1),
}


@pytest.mark.parametrize("body", BODIES.values(), ids=BODIES.keys())
def test_deep_body_is_a_400_with_a_code_even_before_signing_in(chat_server, body):
    answer = httpx.post(
        f"{chat_server.url}/api/auth/login/",
        content=body,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert answer.status_code == 400, answer.text
    error = answer.json()
    assert set(error) == {"detail", "code"}
    assert error["code"] in {"invalid_json", "validation_error"}


def test_malformed_body_names_its_code(chat_server):
    answer = httpx.post(
        f"{chat_server.url}/api/auth/login/",
        content="{nope",
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert answer.status_code == 400
    assert answer.json()["code"] == "invalid_json"


def test_message_payload_nested_at_the_limit_is_stored_and_deeper_refused(
    chat_server, general, alice_token
):
    url = f"{chat_server.url}/api/rooms/{general.pk}/messages/"
    headers = {"Authorization": f"Bearer {alice_token}"}
    httpx.post(f"{chat_server.url}/api/rooms/{general.pk}/join/", headers=headers, timeout=10)

    def payload(levels: int) -> dict:
        value: dict = {}
        for _ in range(levels - 1):
            value = {"a": value}
        return value

    # The body is one level, the payload the rest.
    fits = httpx.post(
        url, json={"content": "fits", "payload": payload(MAX_JSON_DEPTH - 1)}, headers=headers
    )
    assert fits.status_code == 201, fits.text
    deeper = httpx.post(
        url, json={"content": "deeper", "payload": payload(MAX_JSON_DEPTH)}, headers=headers
    )
    assert deeper.status_code == 400, deeper.text
    assert deeper.json()["code"] == "validation_error"


@pytest.mark.asyncio
async def test_deep_frames_get_an_error_frame_and_the_socket_stays(chat_server, user, alice_token):
    async with await WS.connect(f"{chat_server.ws_url}/ws/", token=alice_token) as ws:
        await ws.recv_until("authenticated")
        for name, text in BODIES.items():
            await ws.send(text)
            error = await ws.recv_until("error")
            assert error["code"] in {"invalid_json", "validation_error"}, (name, error)
        pong = await ws.request({"type": "ping"})
        assert pong["type"] == "pong"
