"""Paths nobody serves (SPEC 9.4): a WebSocket is closed with 4404, an `/api/` path answers
JSON 404, and an `/api/` path without its trailing slash is a clear answer, never a 500 or
a traceback (Django's APPEND_SLASH raises for a POST in DEBUG)."""

import httpx
import pytest
import websockets

from tests.live import WAIT, LiveServer

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.mark.asyncio
@pytest.mark.parametrize("path", ["/nope", "/ws/nope/", "/ws/rooms/abc/", "/socket/", "/ws/x"])
async def test_a_websocket_to_a_path_nobody_serves_is_closed_with_4404(
    chat_server: LiveServer, path
):
    since = len(chat_server.log_text())
    async with websockets.connect(f"{chat_server.ws_url}{path}", open_timeout=WAIT) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4404
    assert "Traceback" not in chat_server.log_text(since)


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/api/nope/"), ("GET", "/api/nope"), ("POST", "/api/nope/x"), ("DELETE", "/api/x")],
)
def test_an_unknown_api_path_answers_json_404(chat_server: LiveServer, method, path):
    response = httpx.request(method, f"{chat_server.url}{path}", json={}, timeout=WAIT)

    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"detail": "Not found.", "code": "not_found"}


def test_a_post_to_an_api_path_without_its_slash_is_redirected_with_its_method(
    chat_server: LiveServer,
):
    since = len(chat_server.log_text())
    response = httpx.post(
        f"{chat_server.url}/api/auth/login?x=1", json={"username": "a", "password": "b"}
    )

    assert response.status_code == 308  # a 308 keeps the method and the body
    assert response.headers["location"] == "/api/auth/login/?x=1"
    assert response.json()["code"] == "moved"
    assert "Traceback" not in chat_server.log_text(since)


def test_a_post_to_api_rooms_without_its_slash_is_not_a_500(chat_server: LiveServer, alice_token):
    since = len(chat_server.log_text())
    response = httpx.post(
        f"{chat_server.url}/api/rooms",
        json={"name": "x"},
        headers={"Authorization": f"Bearer {alice_token}"},
    )

    # `/api/rooms` is seed 003's room list (GET): a POST is 405, in JSON.
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"
    assert "Traceback" not in chat_server.log_text(since)


def test_the_native_paths_with_their_slash_still_answer(chat_server: LiveServer, alice_token):
    headers = {"Authorization": f"Bearer {alice_token}"}
    with httpx.Client(base_url=chat_server.url, headers=headers, timeout=WAIT) as client:
        assert client.get("/api/users/").json()["results"][0]["username"] == "alice"
        assert "connections" in client.get("/api/stats/").json()
        assert client.get("/api/rooms/").status_code == 200
