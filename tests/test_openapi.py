import pytest
from django.core.management import call_command


def test_schema_generates_without_warnings(tmp_path):
    target = tmp_path / "schema.yml"
    call_command("spectacular", "--fail-on-warn", "--file", str(target))
    text = target.read_text()
    for path in (
        "/api/auth/register/",
        "/api/auth/login/",
        "/api/auth/refresh/",
        "/api/auth/logout/",
        "/api/auth/me/",
        "/api/users/",
        "/api/rooms/",
        "/api/rooms/{id}/members/{user_id}/",
        "/api/rooms/{room_id}/messages/",
    ):
        assert f"  {path}:" in text


@pytest.mark.django_db
def test_schema_and_docs_are_served(client):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"openapi: 3" in schema.content
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"swagger-ui" in docs.content


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "path", "headers", "status", "code"),
    [
        ("get", "/api/auth/me/", {}, 401, "unauthenticated"),
        (
            "get",
            "/api/auth/me/",
            {"HTTP_AUTHORIZATION": "Bearer not-a-token"},
            401,
            "unauthenticated",
        ),
        ("delete", "/api/auth/login/", {}, 405, "method_not_allowed"),
        ("post", "/api/auth/login/", {"content_type": "text/plain"}, 415, "unsupported_media_type"),
    ],
)
def test_the_frameworks_own_refusals_carry_a_code(client, method, path, headers, status, code):
    response = getattr(client, method)(path, **headers)
    assert response.status_code == status
    body = response.json()
    assert body["code"] == code
    assert isinstance(body["detail"], str) and body["detail"]
