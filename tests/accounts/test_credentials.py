"""Revoking what a user holds: a password change (every path), "sign out everywhere" and a
deactivation end every token and session of the user; refresh tokens have an absolute
lifetime; a deleted user's refresh token is a 401; login costs one password hash whether
the username exists or not.

The sockets these credentials opened are closed on the server: tests/e2e/test_sessions.py.
"""

import time
from datetime import timedelta

import pytest
from django.contrib.auth.hashers import MD5PasswordHasher, make_password
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from accounts import services
from accounts.models import User
from accounts.services import issue_tokens
from accounts.tokens import AUTH_TIME_CLAIM, GENERATION_CLAIM
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

LOGIN = "/api/auth/login/"
REFRESH = "/api/auth/refresh/"
LOGOUT = "/api/auth/logout/"
ME = "/api/auth/me/"
NEW_PASSWORD = "violet-Harbor-2719"


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def works(tokens: dict[str, str]) -> tuple[bool, bool]:
    """Whether the access token still authenticates, and the refresh token still refreshes
    (which spends it)."""
    access_ok = bearer(tokens["access"]).get(ME).status_code == 200
    refresh = APIClient().post(REFRESH, {"refresh": tokens["refresh"]}, format="json")
    return access_ok, refresh.status_code == 200


def page_session(user: User) -> Client:
    client = Client()
    client.force_login(user)
    assert client.get(ME).status_code == 200
    return client


def revoked(user: User) -> list[tuple[str, dict]]:
    """What a revocation of `user` broadcasts: one `credentials_revoked` with the new
    generation."""
    user.refresh_from_db()
    return [
        (f"user.{user.pk}", {"type": "credentials_revoked", "generation": user.token_generation})
    ]


# ----------------------------------------------------------- a password change


def test_changing_the_password_revokes_every_token_and_session(user, broadcasts, committing):
    first, second = issue_tokens(user=user), issue_tokens(user=user)
    session = page_session(user)

    with committing():
        services.change_password(user=user, password=NEW_PASSWORD)

    assert works(first) == (False, False)
    assert works(second) == (False, False)
    assert session.get(ME).status_code == 401  # the session signs in nobody any more
    assert broadcasts == revoked(user)
    # Signing in with the new password works, and its tokens do.
    fresh = APIClient().post(LOGIN, {"username": "alice", "password": NEW_PASSWORD})
    assert fresh.status_code == 200
    assert works(fresh.json()) == (True, True)


def test_set_password_and_save_anywhere_revokes_too(user, broadcasts, committing):
    tokens = issue_tokens(user=user)

    with committing():
        user.set_password(NEW_PASSWORD)
        user.save()

    assert works(tokens) == (False, False)
    assert broadcasts == revoked(user)


def test_the_changepassword_command_revokes(user, broadcasts, committing, monkeypatch):
    tokens = issue_tokens(user=user)
    monkeypatch.setattr("getpass.getpass", lambda prompt="": NEW_PASSWORD)

    with committing():
        call_command("changepassword", "alice", stdout=open("/dev/null", "w"))  # noqa: SIM115

    assert works(tokens) == (False, False)
    assert broadcasts == revoked(user)


def test_the_admins_password_form_revokes(admin_client, user, broadcasts, committing):
    tokens = issue_tokens(user=user)

    with committing():
        response = admin_client.post(
            f"/admin/accounts/user/{user.pk}/password/",
            {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"},
        )

    assert response.status_code == 302, response.context["form"].errors
    assert works(tokens) == (False, False)
    assert broadcasts == revoked(user)


def test_an_admin_changing_their_own_password_keeps_their_session(admin_user, broadcasts):
    client = Client()
    client.force_login(admin_user)
    tokens = issue_tokens(user=admin_user)

    response = client.post(
        "/admin/password_change/",
        {"old_password": "password", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )

    assert response.status_code == 302, response.context["form"].errors
    assert client.get("/admin/").status_code == 200  # Django re-signs the session in
    assert works(tokens) == (False, False)


def test_making_the_password_unusable_revokes(user, broadcasts, committing):
    tokens = issue_tokens(user=user)

    with committing():
        user.set_unusable_password()
        user.save()

    assert works(tokens) == (False, False)
    assert broadcasts == revoked(user)


def test_the_first_password_of_a_new_account_and_other_saves_revoke_nothing(broadcasts):
    person = UserFactory()  # created, then its first password set and saved
    tokens = issue_tokens(user=person)
    person.display_name = "Renamed"
    person.save()

    assert person.token_generation == 0
    assert works(tokens) == (True, True)
    assert broadcasts == []


def test_a_hash_upgraded_at_sign_in_is_not_a_password_change(settings, db, broadcasts):
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "django.contrib.auth.hashers.MD5PasswordHasher",
    ]
    person = UserFactory(username="legacy")
    User.objects.filter(pk=person.pk).update(password=make_password(PASSWORD, hasher="md5"))
    tokens = issue_tokens(user=person)

    signed_in = APIClient().post(LOGIN, {"username": "legacy", "password": PASSWORD})

    assert signed_in.status_code == 200
    assert User.objects.get(pk=person.pk).password.startswith("pbkdf2_sha256$")  # upgraded
    assert works(tokens) == (True, True)
    assert broadcasts == []


# --------------------------------------------------------- sign out everywhere


def test_logout_all_revokes_every_token_and_session(user, other_user, broadcasts, committing):
    first, second = issue_tokens(user=user), issue_tokens(user=user)
    session = page_session(user)
    bystander = issue_tokens(user=other_user)

    with committing():
        response = bearer(first["access"]).post(LOGOUT, {"all": True}, format="json")

    assert response.status_code == 205
    assert works(first) == (False, False)
    assert works(second) == (False, False)
    assert session.get(ME).status_code == 401
    assert works(bystander) == (True, True)
    assert broadcasts == revoked(user)


def test_logout_all_with_the_session_needs_its_csrf_token(user, broadcasts):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    tokens = issue_tokens(user=user)

    refused = client.post(LOGOUT, {"all": True}, content_type="application/json")

    assert refused.status_code == 403
    assert works(tokens) == (True, True)
    client.get("/")  # the page sets the CSRF cookie
    accepted = client.post(
        LOGOUT,
        {"all": True},
        content_type="application/json",
        headers={"X-CSRFToken": client.cookies["csrftoken"].value},
    )
    assert accepted.status_code == 205
    assert client.get(ME).status_code == 401


def test_logout_all_without_credentials_is_401(api, user):
    response = api.post(LOGOUT, {"all": True}, format="json")

    assert response.status_code == 401
    assert set(response.json()) >= {"detail", "code"}


def test_logout_of_one_refresh_token_ignores_an_expired_access_token(api, user):
    tokens = issue_tokens(user=user)
    api.credentials(HTTP_AUTHORIZATION="Bearer expired.or.garbage")

    response = api.post(LOGOUT, {"refresh": tokens["refresh"]}, format="json")

    assert response.status_code == 205
    assert works(tokens) == (True, False)  # that refresh token only


# ---------------------------------------------------------------- deactivation


def test_deactivation_revokes_for_good(user, broadcasts, committing):
    tokens = issue_tokens(user=user)

    with committing():
        services.set_active(user=user, active=False)
    services.set_active(user=user, active=True)

    assert works(tokens) == (False, False)
    assert broadcasts == [(f"user.{user.pk}", {"type": "user_deactivated"})]


# -------------------------------------------------------- the refresh lifetime


def refresh_signed_in(user: User, *, days_ago: float, lifetime: timedelta) -> str:
    """A refresh token of a sign-in `days_ago` days ago that a chain of rotations kept
    alive: valid for `lifetime` from now, as every rotation used to hand out."""
    token = RefreshToken()
    token["user_id"] = str(user.pk)
    token[GENERATION_CLAIM] = user.token_generation
    token[AUTH_TIME_CLAIM] = int(time.time() - days_ago * 86400)
    token.set_exp(lifetime=lifetime)
    return str(token)


def test_a_rotated_refresh_token_keeps_the_sign_in_time(api, user, settings):
    first = RefreshToken(issue_tokens(user=user)["refresh"])

    rotated = api.post(REFRESH, {"refresh": str(first)}, format="json").json()["refresh"]

    again = RefreshToken(rotated)
    assert again[AUTH_TIME_CLAIM] == first[AUTH_TIME_CLAIM] == first["iat"]
    assert again["jti"] != first["jti"]
    assert again["exp"] <= first[AUTH_TIME_CLAIM] + settings.JWT_REFRESH_MAX_DAYS * 86400


def test_no_refresh_token_outlives_the_absolute_lifetime(api, user, settings):
    settings.JWT_REFRESH_MAX_DAYS = 30
    old = refresh_signed_in(user, days_ago=30.1, lifetime=timedelta(hours=23))
    recent = refresh_signed_in(user, days_ago=29.9, lifetime=timedelta(hours=23))

    refused = api.post(REFRESH, {"refresh": old}, format="json")
    accepted = api.post(REFRESH, {"refresh": recent}, format="json")

    assert refused.status_code == 401
    assert refused.json()["code"] == "unauthenticated"
    assert "30 days" in refused.json()["detail"]
    assert accepted.status_code == 200
    # The new one ends with the sign-in's 30 days (in about 2.4 hours), not 24 hours on.
    ends = RefreshToken(accepted.json()["refresh"])["exp"]
    assert ends - time.time() < 0.2 * 86400


def test_a_deleted_users_refresh_token_is_401_not_500(api, user):
    tokens = issue_tokens(user=user)
    user.delete()

    response = api.post(REFRESH, {"refresh": tokens["refresh"]}, format="json")

    assert response.status_code == 401
    assert response.json()["code"] == "unauthenticated"
    assert set(response.json()) == {"detail", "code"}


def test_a_refresh_token_is_spent_once(api, user):
    refresh = issue_tokens(user=user)["refresh"]

    answers = [api.post(REFRESH, {"refresh": refresh}, format="json") for _ in range(2)]

    assert [a.status_code for a in answers] == [200, 401]


# ------------------------------------------------------------ login timing


class CountingHasher(MD5PasswordHasher):
    """MD5 (fast), counting the hashes computed: a check of a stored password and the
    dummy hash for an unknown user each cost one `encode`."""

    algorithm = "counting_md5"
    calls = 0

    def encode(self, password: str, salt: str) -> str:
        type(self).calls += 1
        return super().encode(password, salt)


def hashes_for(username: str, password: str) -> int:
    CountingHasher.calls = 0
    response = APIClient().post(LOGIN, {"username": username, "password": password})
    assert response.status_code == 401
    return CountingHasher.calls


def test_an_unknown_username_costs_the_same_hashes_as_a_wrong_password(settings, db):
    settings.PASSWORD_HASHERS = ["tests.accounts.test_credentials.CountingHasher"]
    UserFactory(username="alice")

    unknown = hashes_for("nobody", "wrong-password")
    known = hashes_for("alice", "wrong-password")
    known_other_case = hashes_for("ALICE", "wrong-password")

    assert unknown == known == known_other_case == 1
