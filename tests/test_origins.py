"""The WebSocket handshake's Host and Origin checks (messaging/origins.py), through the real
ASGI application: a refused handshake is accepted, then closed with 4403 before any frame.
"""

import pytest
from channels.testing import WebsocketCommunicator
from django.core.exceptions import DisallowedHost
from django.test import RequestFactory

from chatproject.asgi import application
from messaging.origins import host_allowed
from tests.messaging.test_consumer import assert_still_open, decode

pytestmark = [pytest.mark.django_db(transaction=True)]

TIMEOUT = 3.0


async def handshake(
    token: str, *, host: bytes, origin: bytes | None = None, scheme: str | None = None, extra=()
) -> tuple[WebsocketCommunicator, dict]:
    """Open `/ws/` with these headers (and the scope's `scheme`, which a server may set):
    the communicator and the server's first answer after accepting."""
    headers = [(b"host", host), (b"authorization", f"Bearer {token}".encode()), *extra]
    if origin is not None:
        headers.append((b"origin", origin))
    comm = WebsocketCommunicator(application, "/ws/", headers=headers)
    if scheme is not None:
        comm.scope["scheme"] = scheme  # read when the application first runs, at connect
    connected, _ = await comm.connect(timeout=TIMEOUT)
    assert connected, "the server accepts every handshake and closes it if it refuses"
    return comm, await comm.receive_output(timeout=TIMEOUT)


async def refused(token: str, **kwargs) -> None:
    comm, first = await handshake(token, **kwargs)
    try:
        assert first == {"type": "websocket.close", "code": 4403}, first
    finally:
        await comm.disconnect(timeout=1)


async def accepted(token: str, **kwargs) -> None:
    comm, first = await handshake(token, **kwargs)
    try:
        assert first["type"] == "websocket.send", first
        assert decode(first["text"])["type"] == "authenticated"
        await assert_still_open(comm)
    finally:
        await comm.disconnect(timeout=1)


# --------------------------------------------------------------------------- Host


@pytest.mark.parametrize(
    "host",
    [b"evil.example", b"chat.example.evil.example", b"", b"chat.example@evil.example", b"[::1"],
)
@pytest.mark.asyncio
async def test_host_outside_allowed_hosts_is_closed_4403(settings, alice_token, host):
    settings.ALLOWED_HOSTS = ["chat.example", ".team.example"]
    await refused(alice_token, host=host)


@pytest.mark.asyncio
async def test_host_check_holds_for_a_browser_of_an_allowed_origin(settings, alice_token):
    # DNS rebinding: the page's origin is allowed, the host it reached is not.
    settings.ALLOWED_HOSTS = ["chat.example"]
    settings.ALLOWED_ORIGINS = ["https://app.example"]
    await refused(alice_token, host=b"rebound.example", origin=b"https://app.example")


@pytest.mark.parametrize(
    "host", [b"chat.example", b"CHAT.example:8443", b"team.example", b"ws.team.example:80"]
)
@pytest.mark.asyncio
async def test_host_in_allowed_hosts_is_served(settings, alice_token, host):
    settings.ALLOWED_HOSTS = ["chat.example", ".team.example"]
    await accepted(alice_token, host=host)


@pytest.mark.parametrize(
    ("allowed", "debug"),
    [(["chat.example", ".team.example"], False), (["*"], False), ([], True), ([], False)],
)
@pytest.mark.parametrize(
    "host",
    [
        "chat.example",
        "chat.example:8000",
        "chat.example.",
        "a.team.example",
        "team.example.evil",
        "localhost",
        "api.localhost:3000",
        "127.0.0.1",
        "[::1]:8000",
        "bad host",
        "chat.example:port",
        "",
    ],
)
def test_host_check_decides_as_django_does_for_requests(settings, allowed, debug, host):
    settings.ALLOWED_HOSTS = allowed
    settings.DEBUG = debug
    request = RequestFactory().get("/", HTTP_HOST=host)
    try:
        request.get_host()
        django_allows = True
    except DisallowedHost:
        django_allows = False
    assert host_allowed({"headers": [(b"host", host.encode())]}) is django_allows


# ------------------------------------------------------------------ Origin scheme


@pytest.mark.parametrize(
    ("scheme", "extra"),
    [
        ("wss", ()),  # a server that sets the scope's scheme
        (None, ((b"x-forwarded-proto", b"https"),)),  # Daphne behind a TLS proxy
    ],
)
@pytest.mark.asyncio
async def test_http_origin_is_not_the_own_origin_of_a_socket_over_tls(
    settings, alice_token, scheme, extra
):
    settings.ALLOWED_HOSTS = ["chat.example"]
    await refused(
        alice_token, host=b"chat.example", origin=b"http://chat.example", scheme=scheme, extra=extra
    )
    await accepted(
        alice_token,
        host=b"chat.example",
        origin=b"https://chat.example",
        scheme=scheme,
        extra=extra,
    )


@pytest.mark.parametrize(
    ("scheme", "extra"), [("ws", ()), (None, ()), (None, ((b"x-forwarded-proto", b"http"),))]
)
@pytest.mark.asyncio
async def test_https_origin_is_not_the_own_origin_of_a_plain_socket(
    settings, alice_token, scheme, extra
):
    settings.ALLOWED_HOSTS = ["chat.example"]
    await refused(
        alice_token,
        host=b"chat.example",
        origin=b"https://chat.example",
        scheme=scheme,
        extra=extra,
    )
    await accepted(
        alice_token, host=b"chat.example", origin=b"http://chat.example", scheme=scheme, extra=extra
    )


@pytest.mark.asyncio
async def test_allowed_origins_are_taken_as_written_scheme_included(settings, alice_token):
    settings.ALLOWED_HOSTS = ["chat.example"]
    settings.ALLOWED_ORIGINS = ["https://app.example"]
    await accepted(alice_token, host=b"chat.example", origin=b"https://app.example")
    await refused(alice_token, host=b"chat.example", origin=b"http://app.example")


@pytest.mark.parametrize("origin", [b"http://[oops", b"http://chat.example:99999", b"null", b""])
@pytest.mark.asyncio
async def test_malformed_origin_is_refused_not_a_crash(settings, alice_token, origin):
    settings.ALLOWED_HOSTS = ["chat.example"]
    await refused(alice_token, host=b"chat.example", origin=origin)
