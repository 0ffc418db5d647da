"""`POST /api/auth/password/`: a user changes their own password (SPEC 11). Every other
credential is revoked; the caller keeps its session and gets a new token pair."""

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import User
from accounts.services import issue_tokens
from tests.accounts.test_credentials import ME, NEW_PASSWORD, bearer, page_session, works
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

PASSWORD_URL = "/api/auth/password/"


def change(client, old: str, new: str):
    return client.post(PASSWORD_URL, {"old_password": old, "new_password": new}, format="json")


def test_a_wrong_old_password_is_400_and_changes_nothing(user):
    tokens = issue_tokens(user=user)
    answer = change(bearer(tokens["access"]), "not-my-password", NEW_PASSWORD)
    assert answer.status_code == 400
    assert "old_password" in answer.json()
    assert User.objects.get(pk=user.pk).check_password(PASSWORD)
    assert works(tokens) == (True, True)


@pytest.mark.parametrize("weak", ["short", "password123", "12345678901", "alice1234"])
def test_a_weak_new_password_is_400(user, weak):
    answer = change(bearer(issue_tokens(user=user)["access"]), PASSWORD, weak)
    assert answer.status_code == 400, weak
    assert "new_password" in answer.json()
    assert User.objects.get(pk=user.pk).check_password(PASSWORD)


def test_a_missing_field_is_400(user):
    client = bearer(issue_tokens(user=user)["access"])
    answer = client.post(PASSWORD_URL, {"new_password": NEW_PASSWORD}, format="json")
    assert answer.status_code == 400


def test_without_credentials_is_401(api, user):
    assert change(api, PASSWORD, NEW_PASSWORD).status_code == 401


def test_success_revokes_other_credentials_and_answers_a_new_pair(user, broadcasts, committing):
    caller, other = issue_tokens(user=user), issue_tokens(user=user)
    other_session = page_session(user)
    with committing():
        answer = change(bearer(caller["access"]), PASSWORD, NEW_PASSWORD)
    assert answer.status_code == 200, answer.content
    fresh = answer.json()
    assert set(fresh) == {"access", "refresh"}
    assert works(other) == (False, False)
    assert works(caller) == (False, False)  # the old pair too: the answer replaces it
    assert other_session.get(ME).status_code == 401
    assert works(fresh) == (True, True)
    assert User.objects.get(pk=user.pk).check_password(NEW_PASSWORD)
    user.refresh_from_db()
    assert broadcasts == [
        (f"user.{user.pk}", {"type": "credentials_revoked", "generation": user.token_generation})
    ]


def test_the_callers_session_stays_signed_in(user, broadcasts, committing):
    page = Client(enforce_csrf_checks=True)
    page.force_login(user)
    page.get("/")  # the page sets the CSRF cookie
    elsewhere = page_session(user)
    with committing():
        answer = page.post(
            PASSWORD_URL,
            {"old_password": PASSWORD, "new_password": NEW_PASSWORD},
            content_type="application/json",
            headers={"X-CSRFToken": page.cookies["csrftoken"].value},
        )
    assert answer.status_code == 200, answer.content
    assert page.get(ME).status_code == 200
    assert elsewhere.get(ME).status_code == 401
    assert (
        APIClient()
        .post("/api/auth/login/", {"username": "alice", "password": NEW_PASSWORD})
        .status_code
        == 200
    )


def test_a_session_without_its_csrf_token_is_refused(user):
    page = Client(enforce_csrf_checks=True)
    page.force_login(user)
    answer = page.post(
        PASSWORD_URL,
        {"old_password": PASSWORD, "new_password": NEW_PASSWORD},
        content_type="application/json",
    )
    assert answer.status_code == 403
    assert User.objects.get(pk=user.pk).check_password(PASSWORD)
