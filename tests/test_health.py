import httpx
import pytest

from tests.live import LiveServer, free_port, server_environment


def test_healthz_and_health_answer_ok(client):
    for path in ("/healthz", "/health"):
        response = client.get(path)
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}


def test_a_page_on_an_allowed_origin_may_poll_healthz(client, settings):
    origin = settings.ALLOWED_ORIGINS[0]
    for path in ("/healthz", "/health"):
        response = client.get(path, HTTP_ORIGIN=origin)
        assert response["Access-Control-Allow-Origin"] == origin
    assert "Access-Control-Allow-Origin" not in client.get(
        "/healthz", HTTP_ORIGIN="https://elsewhere.example"
    )


@pytest.mark.django_db
def test_readyz_checks_the_database_and_the_channel_layer(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "channel_layer": "ok"},
    }


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_readyz_is_503_with_the_reason_when_redis_is_unreachable(chat_server):
    dead = f"redis://127.0.0.1:{free_port()}/0"
    server = LiveServer(server_environment(REDIS_URL=dead))
    server.start()
    try:
        response = httpx.get(f"{server.url}/readyz", timeout=10)
        assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200
    finally:
        server.stop()
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["channel_layer"].startswith("error")


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_readyz_is_503_with_the_reason_when_the_database_is_unreachable(chat_server):
    dead = f"postgres://postgres@127.0.0.1:{free_port()}/nothing"
    server = LiveServer(server_environment(DATABASE_URL=dead, DATABASE_POOL="false"))
    server.start()
    try:
        response = httpx.get(f"{server.url}/readyz", timeout=15)
    finally:
        server.stop()
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["database"].startswith("error")
    assert body["checks"]["channel_layer"] == "ok"
