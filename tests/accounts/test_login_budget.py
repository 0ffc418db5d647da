"""AUTH_RATE_LIMIT covers every login form, the admin's first: an attempt beyond it is
refused (429 with Retry-After) before any password is checked, so that beyond the budget
a right password and a wrong one get the same answer. Against a real server:
tests/e2e/test_login_budget.py."""

import pytest
from django.test import Client
from rest_framework.test import APIClient

from tests.accounts.test_credentials import CountingHasher
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def budget_of_three(settings):
    settings.AUTH_RATE_LIMIT = (3, 60)
    settings.PASSWORD_HASHERS = ["tests.accounts.test_credentials.CountingHasher"]


@pytest.fixture
def staff(budget_of_three):
    return UserFactory(username="root", is_staff=True, is_superuser=True)


def admin_login(client: Client, password: str):
    return client.post(
        "/admin/login/?next=/admin/",
        {"username": "root", "password": password, "next": "/admin/"},
    )


def test_the_admin_login_is_refused_beyond_the_budget_without_checking_the_password(staff):
    client = Client()
    for _ in range(3):
        wrong = admin_login(client, "wrong-password")
        assert wrong.status_code == 200  # the form again, "Please enter the correct…"

    CountingHasher.calls = 0
    right = admin_login(client, PASSWORD)
    wrong = admin_login(client, "wrong-password")

    for refused in (right, wrong):
        assert refused.status_code == 429
        assert 0 < int(refused["Retry-After"]) <= 60
        page = refused.content.decode()
        assert "Too many sign-in attempts" in page
        assert "Chat server administration" in page  # the admin's own login page
        assert 'name="username"' in page and "root" in page
        assert "Please enter the correct" not in page
    assert CountingHasher.calls == 0
    assert client.get("/admin/").status_code == 302  # not signed in


def test_the_admin_login_works_within_the_budget(staff):
    client = Client()

    response = admin_login(client, PASSWORD)

    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200


def test_the_admin_login_and_the_api_login_share_one_budget(staff):
    api, client = APIClient(), Client()
    assert api.post("/api/auth/login/", {"username": "root", "password": "x"}).status_code == 401
    assert admin_login(client, "wrong-password").status_code == 200
    assert api.post("/api/auth/login/", {"username": "root", "password": "x"}).status_code == 401

    assert admin_login(client, PASSWORD).status_code == 429
    assert (
        api.post("/api/auth/login/", {"username": "root", "password": PASSWORD}).status_code == 429
    )


def test_the_login_page_refuses_without_telling_right_from_wrong(staff):
    client = Client()
    for _ in range(3):
        client.post("/login/", {"username": "root", "password": "wrong-password"})

    CountingHasher.calls = 0
    right = client.post("/login/", {"username": "root", "password": PASSWORD})
    wrong = client.post("/login/", {"username": "root", "password": "wrong-password"})

    for refused in (right, wrong):
        assert refused.status_code == 429
        assert 0 < int(refused["Retry-After"]) <= 60
        assert b"Too many sign-in attempts" in refused.content
        assert b"Please enter a correct" not in refused.content
    assert CountingHasher.calls == 0
    assert client.get("/").status_code == 302  # not signed in


def test_the_register_page_shares_the_budget(budget_of_three):
    for n in range(3):  # each a new visitor from the same address
        Client().post("/register/", {"username": f"u{n}", "password": PASSWORD})

    refused = Client().post("/register/", {"username": "late", "password": PASSWORD})

    assert refused.status_code == 429
    assert "Too many sign-in attempts" in refused.content.decode()
    assert 'value="late"' in refused.content.decode()
