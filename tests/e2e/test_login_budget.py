"""AUTH_RATE_LIMIT against a real server started with a small budget: the admin's login
and the API's share it with every other login form, and once it is spent even the right
password is refused (429 with Retry-After), on the admin's own login page."""

import re
from collections.abc import Iterator

import httpx
import pytest
from django.contrib.auth.hashers import make_password

from accounts.models import User
from tests.factories import PASSWORD, UserFactory
from tests.live import WAIT, LiveServer, server_environment

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

BUDGET = 5


@pytest.fixture
def budget_server(django_db_setup) -> Iterator[LiveServer]:
    """A server of its own: the budget is per client address, and every test here comes
    from 127.0.0.1."""
    server = LiveServer(server_environment(AUTH_RATE_LIMIT=f"{BUDGET}/60s"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def root(db) -> User:
    staff = UserFactory(username="root", is_staff=True, is_superuser=True)
    # The server checks passwords with its own hashers (the tests' MD5 is not one).
    User.objects.filter(pk=staff.pk).update(
        password=make_password(PASSWORD, hasher="pbkdf2_sha256")
    )
    return staff


async def admin_login(client: httpx.AsyncClient, password: str) -> httpx.Response:
    page = await client.get("/admin/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token, page.text
    return await client.post(
        "/admin/login/?next=/admin/",
        data={
            "username": "root",
            "password": password,
            "csrfmiddlewaretoken": token.group(1),
            "next": "/admin/",
        },
    )


async def api_login(client: httpx.AsyncClient, password: str) -> httpx.Response:
    return await client.post("/api/auth/login/", json={"username": "root", "password": password})


async def test_admin_and_api_logins_share_one_budget(budget_server, root):
    async with httpx.AsyncClient(base_url=budget_server.url, timeout=WAIT) as client:
        for _ in range(3):
            wrong = await admin_login(client, "wrong-password")
            assert wrong.status_code == 200  # the form again
            assert "Please enter the correct username and password" in wrong.text
        for _ in range(BUDGET - 3):
            assert (await api_login(client, "wrong-password")).status_code == 401

        # The budget is spent: the right password is refused, on both.
        refused = await admin_login(client, PASSWORD)
        assert refused.status_code == 429
        assert 0 < int(refused.headers["Retry-After"]) <= 60
        assert "Too many sign-in attempts" in refused.text
        assert "Chat server administration" in refused.text  # the admin's own page
        assert "Please enter the correct" not in refused.text

        api = await api_login(client, PASSWORD)
        assert api.status_code == 429
        assert api.json()["code"] == "rate_limited"

        index = await client.get("/admin/")
        assert index.status_code == 302  # not signed in
        assert index.headers["Location"].startswith("/admin/login/")


async def test_spending_the_budget_on_the_admin_refuses_the_api(budget_server, root):
    async with httpx.AsyncClient(base_url=budget_server.url, timeout=WAIT) as client:
        for _ in range(BUDGET):
            assert (await admin_login(client, "wrong-password")).status_code == 200

        assert (await api_login(client, PASSWORD)).status_code == 429
