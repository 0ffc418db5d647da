"""The accounts API: registration, JWT login/refresh/logout, the current user, the user list."""

import pytest
from rest_framework.test import APIClient

from accounts.models import User
from accounts.presence import presence, user_key
from accounts.services import issue_tokens
from tests.conftest import client_for
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


REGISTER = "/api/auth/register/"
LOGIN = "/api/auth/login/"
REFRESH = "/api/auth/refresh/"
LOGOUT = "/api/auth/logout/"
ME = "/api/auth/me/"
USERS = "/api/users/"

GOOD_PASSWORD = "violet-Harbor-2719"


def _bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


# ---------------------------------------------------------------------- register


def test_register_creates_the_user_and_answers_a_token_pair(api):
    response = api.post(
        REGISTER,
        {
            "username": "carol",
            "password": GOOD_PASSWORD,
            "email": "carol@example.com",
            "display_name": "Carol",
        },
        format="json",
    )

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"user", "access", "refresh"}
    assert body["user"]["username"] == "carol"
    assert body["user"]["display_name"] == "Carol"
    assert body["user"]["email"] == "carol@example.com"
    assert "password" not in body["user"]
    stored = User.objects.get(username="carol")
    assert stored.check_password(GOOD_PASSWORD)
    assert body["user"]["id"] == stored.pk
    # The access token works straight away.
    me = _bearer(body["access"]).get(ME)
    assert me.status_code == 200
    assert me.json()["username"] == "carol"


def test_register_without_optional_fields_succeeds(api):
    response = api.post(REGISTER, {"username": "dave", "password": GOOD_PASSWORD}, format="json")

    assert response.status_code == 201
    assert response.json()["user"]["display_name"] == ""
    assert User.objects.filter(username="dave").exists()


@pytest.mark.parametrize(
    "password",
    [
        "Xy7!",  # too short
        "password",  # too common
        "8213749560321",  # entirely numeric
        "carol1984",  # too similar to the username
    ],
)
def test_register_applies_django_password_validators(api, password):
    response = api.post(REGISTER, {"username": "carol", "password": password}, format="json")

    assert response.status_code == 400
    assert "password" in response.json()
    assert not User.objects.filter(username__iexact="carol").exists()


def test_register_refuses_a_taken_username(api, user):
    response = api.post(REGISTER, {"username": "alice", "password": GOOD_PASSWORD}, format="json")

    assert response.status_code == 400
    assert "username" in response.json()
    assert User.objects.filter(username__iexact="alice").count() == 1


def test_register_refuses_a_taken_username_in_another_case(api, user):
    response = api.post(REGISTER, {"username": "ALICE", "password": GOOD_PASSWORD}, format="json")

    assert response.status_code == 400
    assert "username" in response.json()
    assert User.objects.filter(username__iexact="alice").count() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"password": GOOD_PASSWORD}, "username"),
        ({"username": "carol"}, "password"),
        ({"username": "", "password": GOOD_PASSWORD}, "username"),
        ({"username": "has space", "password": GOOD_PASSWORD}, "username"),
        ({"username": "x" * 33, "password": GOOD_PASSWORD}, "username"),
        ({"username": "carol", "password": GOOD_PASSWORD, "email": "not-an-email"}, "email"),
        (
            {"username": "carol", "password": GOOD_PASSWORD, "display_name": "d" * 65},
            "display_name",
        ),
    ],
)
def test_register_refuses_bad_or_missing_fields(api, body, field):
    before = User.objects.count()

    response = api.post(REGISTER, body, format="json")

    assert response.status_code == 400
    assert field in response.json()
    assert User.objects.count() == before


# ------------------------------------------------------------------------- login


def test_login_answers_the_user_and_a_token_pair(api, user):
    response = api.post(LOGIN, {"username": "alice", "password": PASSWORD}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"user", "access", "refresh"}
    assert body["user"]["id"] == user.pk
    assert _bearer(body["access"]).get(ME).json()["id"] == user.pk


def test_login_with_a_wrong_password_is_401(api, user):
    response = api.post(
        LOGIN, {"username": "alice", "password": "wrong-" + PASSWORD}, format="json"
    )

    assert response.status_code == 401
    assert "access" not in response.json()


def test_login_of_an_unknown_user_is_401(api, db):
    response = api.post(LOGIN, {"username": "nobody", "password": PASSWORD}, format="json")

    assert response.status_code == 401


def test_login_of_an_inactive_user_is_401(api, db):
    UserFactory(username="gone", is_active=False)

    response = api.post(LOGIN, {"username": "gone", "password": PASSWORD}, format="json")

    assert response.status_code == 401


def test_login_username_is_case_insensitive(api, user):
    response = api.post(LOGIN, {"username": "ALiCe", "password": PASSWORD}, format="json")

    assert response.status_code == 200
    assert response.json()["user"]["id"] == user.pk


def test_login_without_a_password_is_400(api, user):
    response = api.post(LOGIN, {"username": "alice"}, format="json")

    assert response.status_code == 400
    assert "password" in response.json()


# ----------------------------------------------------------------------- refresh


def test_refresh_rotates_the_token_pair(api, user):
    tokens = issue_tokens(user=user)

    response = api.post(REFRESH, {"refresh": tokens["refresh"]}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access", "refresh"}
    assert body["refresh"] != tokens["refresh"]
    assert _bearer(body["access"]).get(ME).json()["id"] == user.pk
    # The new refresh token works in turn.
    assert api.post(REFRESH, {"refresh": body["refresh"]}, format="json").status_code == 200


def test_a_rotated_refresh_token_is_blacklisted(api, user):
    old = issue_tokens(user=user)["refresh"]
    assert api.post(REFRESH, {"refresh": old}, format="json").status_code == 200

    again = api.post(REFRESH, {"refresh": old}, format="json")

    assert again.status_code == 401
    assert "access" not in again.json()


def test_an_access_token_is_not_accepted_as_refresh(api, user):
    access = issue_tokens(user=user)["access"]

    response = api.post(REFRESH, {"refresh": access}, format="json")

    assert response.status_code == 401


def test_a_garbage_refresh_token_is_401(api, db):
    response = api.post(REFRESH, {"refresh": "not.a.token"}, format="json")

    assert response.status_code == 401


# ------------------------------------------------------------------------ logout


def test_logout_answers_205_and_the_refresh_token_stops_working(api, user):
    refresh = issue_tokens(user=user)["refresh"]

    response = api.post(LOGOUT, {"refresh": refresh}, format="json")

    assert response.status_code == 205
    assert api.post(REFRESH, {"refresh": refresh}, format="json").status_code == 401


def test_logout_leaves_other_sessions_working(api, user):
    first = issue_tokens(user=user)["refresh"]
    second = issue_tokens(user=user)["refresh"]

    assert api.post(LOGOUT, {"refresh": first}, format="json").status_code == 205

    assert api.post(REFRESH, {"refresh": second}, format="json").status_code == 200


def test_logout_with_an_invalid_token_is_401(api, db):
    response = api.post(LOGOUT, {"refresh": "not.a.token"}, format="json")

    assert response.status_code == 401


def test_logout_without_a_token_is_400(api, db):
    response = api.post(LOGOUT, {}, format="json")

    assert response.status_code == 400
    assert "refresh" in response.json()


# ---------------------------------------------------------------------------- me


def test_me_answers_the_current_user(alice_api, user):
    response = alice_api.get(ME)

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == user.pk
    assert body["username"] == "alice"
    assert body["display_name"] == "Alice"
    assert body["is_staff"] is False
    assert "password" not in body


def test_me_patch_changes_the_display_name(alice_api, user):
    response = alice_api.patch(ME, {"display_name": "Alice Liddell"}, format="json")

    assert response.status_code == 200
    assert response.json()["display_name"] == "Alice Liddell"
    user.refresh_from_db()
    assert user.display_name == "Alice Liddell"


def test_me_patch_cannot_change_username_or_staff_flag(alice_api, user):
    response = alice_api.patch(
        ME, {"display_name": "A", "username": "mallory", "is_staff": True}, format="json"
    )

    assert response.status_code == 200
    user.refresh_from_db()
    assert user.username == "alice"
    assert user.is_staff is False


def test_me_patch_refuses_a_too_long_display_name(alice_api, user):
    response = alice_api.patch(ME, {"display_name": "x" * 65}, format="json")

    assert response.status_code == 400
    user.refresh_from_db()
    assert user.display_name == "Alice"


def test_me_without_a_token_is_401(api, db):
    assert api.get(ME).status_code == 401


def test_me_with_a_tampered_token_is_401(user):
    access = issue_tokens(user=user)["access"]
    header, payload, signature = access.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]

    response = _bearer(f"{header}.{payload}.{flipped}").get(ME)

    assert response.status_code == 401


def test_me_with_a_refresh_token_as_bearer_is_401(user):
    refresh = issue_tokens(user=user)["refresh"]

    response = _bearer(refresh).get(ME)

    assert response.status_code == 401


def test_me_of_a_deactivated_user_is_401(user):
    client = client_for(user)
    user.is_active = False
    user.save(update_fields=["is_active"])

    assert client.get(ME).status_code == 401


# ------------------------------------------------------------------------- users


def test_user_list_is_paginated(alice_api, user, other_user):
    UserFactory(username="carol")

    first = alice_api.get(USERS, {"limit": 2})

    assert first.status_code == 200
    body = first.json()
    assert set(body) == {"results", "next", "previous"}
    assert [u["username"] for u in body["results"]] == ["alice", "bob"]
    assert body["previous"] is None
    assert body["next"]
    second = alice_api.get(body["next"]).json()
    assert [u["username"] for u in second["results"]] == ["carol"]
    assert second["next"] is None


def test_user_list_shows_the_public_fields_only(alice_api, user):
    response = alice_api.get(USERS)

    assert response.status_code == 200
    [alice] = response.json()["results"]
    assert set(alice) == {
        "id",
        "username",
        "display_name",
        "is_online",
        "last_seen",
        "is_guest",
        "is_bot",
        "avatar",
    }
    assert alice["avatar"] is None


def test_user_list_search_matches_username_and_display_name(alice_api, user, other_user):
    UserFactory(username="carol", display_name="Bobby Tables")

    by_username = alice_api.get(USERS, {"search": "ALI"}).json()["results"]
    by_display_name = alice_api.get(USERS, {"search": "bob"}).json()["results"]

    assert [u["username"] for u in by_username] == ["alice"]
    assert sorted(u["username"] for u in by_display_name) == ["bob", "carol"]


def test_user_list_hides_inactive_users(alice_api, user):
    UserFactory(username="ghost", is_active=False)

    names = [u["username"] for u in alice_api.get(USERS).json()["results"]]

    assert "ghost" not in names
    assert names == ["alice"]


def test_user_list_shows_and_filters_by_presence(alice_api, user, other_user):
    presence().enter(user_key(other_user.pk), "socket-1")

    everyone = {u["username"]: u["is_online"] for u in alice_api.get(USERS).json()["results"]}
    online = alice_api.get(USERS, {"online": "true"}).json()["results"]
    offline = alice_api.get(USERS, {"online": "false"}).json()["results"]

    assert everyone == {"alice": False, "bob": True}
    assert [u["username"] for u in online] == ["bob"]
    assert [u["username"] for u in offline] == ["alice"]


def test_user_list_needs_a_token(api, user):
    assert api.get(USERS).status_code == 401


def test_a_search_the_database_cannot_take_is_a_400_not_a_500(alice_api, settings):
    # PostgreSQL refuses NUL characters in text (SQLite takes them); schemathesis found
    # this as a 500.
    response = alice_api.get("/api/users/", {"search": "a\x00b"})
    if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        assert response.status_code == 400, response.content[:200]
        assert response.json()["code"] == "validation_error"
    else:
        assert response.status_code == 200, response.content[:200]
