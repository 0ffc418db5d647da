"""Shared fixtures: users, API clients, broadcast capture, and a real Daphne server."""

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from channels.layers import channel_layers
from django.conf import settings
from django.db import connections
from rest_framework.test import APIClient

from accounts.models import User
from accounts.presence import presence
from accounts.services import issue_tokens
from chatproject.hub import hub
from chatproject.throttle import counters
from tests.factories import UserFactory
from tests.live import RUN_ID, LiveServer, server_environment

# Redis keys of this run (channel layer, presence, throttles) live under a prefix of
# their own, shared with the servers it starts, so parallel runs never meet. Settings are
# loaded before this file; nothing has read the prefix yet.
if settings.REDIS_URL:
    settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = f"test-{RUN_ID}"


@pytest.fixture(autouse=True)
def _isolated(settings) -> Iterator[None]:
    # The default hasher costs ~0.25 s per user; tests are not about hashing.
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.MD5PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    ]
    # Limits get tests of their own (tests/test_limits.py); elsewhere they stay out of the way.
    settings.CHAT_RATE_LIMIT = settings.AUTH_RATE_LIMIT = settings.WRITE_RATE_LIMIT = (100_000, 1)
    yield
    presence().clear()
    counters().clear()
    # Each test's event loop gets channel layers of its own: a layer keeps per-loop state
    # (channels-redis refuses receives from two loops), and a test's loop ends with it.
    channel_layers.backends.clear()


@pytest_asyncio.fixture(autouse=True)
async def _hub_stopped() -> AsyncIterator[None]:
    yield
    # A test's sockets started this process's fan-out tasks in the test's event loop:
    # stop them while it runs (a loop that is gone leaves them to `hub._abandon`).
    await hub.stop()


@pytest.fixture
def user(db) -> User:
    return UserFactory(username="alice", display_name="Alice")


@pytest.fixture
def other_user(db) -> User:
    return UserFactory(username="bob", display_name="Bob")


@pytest.fixture
def staff_user(db) -> User:
    return UserFactory(username="root", is_staff=True)


@pytest.fixture
def api() -> APIClient:
    return APIClient()


def client_for(user: User) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_tokens(user=user)['access']}")
    return client


@pytest.fixture
def alice_api(user) -> APIClient:
    return client_for(user)


@pytest.fixture
def bob_api(other_user) -> APIClient:
    return client_for(other_user)


@pytest.fixture
def broadcasts(monkeypatch) -> list[tuple[str, dict]]:
    """Every (group, event) the code under test broadcasts after its commit.

    Zulip's `capture_send_event_calls`. A test runs in one transaction that never commits,
    so wrap the action in `with committing():` to run its on-commit callbacks.
    """
    sent: list[tuple[str, dict]] = []
    monkeypatch.setattr(
        "chatproject.broadcast._send", lambda group, event: sent.append((group, event))
    )
    return sent


@pytest.fixture
def committing(django_capture_on_commit_callbacks):
    """`with committing(): action()` runs the action's on-commit callbacks at the block's
    end, as a request's commit would."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture(scope="session")
def chat_server(django_db_setup, django_db_blocker) -> Iterator[LiveServer]:
    """One real `manage.py serve` process on the test database, for the whole session."""
    server = LiveServer(server_environment())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def general(db):
    from rooms.services import ensure_general_room

    return ensure_general_room()[0]


@pytest.fixture
def alice_token(user) -> str:
    return issue_tokens(user=user)["access"]


@pytest.fixture
def bob_token(other_user) -> str:
    return issue_tokens(user=other_user)["access"]


@pytest_asyncio.fixture
async def worker_connections_closed() -> AsyncIterator[None]:
    yield
    # Code under test ran in asgiref's worker thread: close that thread's database
    # connection, or it outlives the test (and PostgreSQL refuses to drop the test database).
    await sync_to_async(connections.close_all)()


@pytest.fixture
def server_via_redis(request, worker_connections_closed) -> LiveServer:
    """The `chat_server` process, for tests whose broadcasts start in this process (the
    admin): they reach the server's sockets only through Redis (same prefix as the server)."""
    if not settings.REDIS_URL:
        pytest.skip(
            "REDIS_URL is unset: the admin's broadcasts stay in this process's in-memory "
            "channel layer and cannot reach the separate server process (the broadcast "
            "itself is asserted by the tests above)"
        )
    return request.getfixturevalue("chat_server")
