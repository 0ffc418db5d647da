"""A production server behind a TLS-terminating proxy (`serve --proxy-headers`, loopback
trusted: the tests' requests are the proxy's): Strict-Transport-Security on HTTPS answers
only; WebSocket handshakes whose Host is not one of ALLOWED_HOSTS (development adds `*`,
so production shows it) or whose Origin is not the server's own, scheme included, are
accepted and then closed with 4403 before any frame."""

import asyncio
from collections.abc import Iterator

import httpx
import pytest
import websockets

from tests.e2e.test_edge import proxied_server
from tests.live import WAIT, WS, LiveServer, server_environment

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

YEAR = 365 * 24 * 3600


@pytest.fixture(scope="module")
def proxied(django_db_setup) -> Iterator[LiveServer]:
    server = proxied_server(
        server_environment(
            ENV="production",
            DEBUG="false",
            ALLOWED_HOSTS="127.0.0.1",
            TRUSTED_PROXIES="127.0.0.1/32",
        )
    )
    server.start(timeout=60)
    yield server
    server.stop()


def test_hsts_is_sent_on_https_answers_only(proxied):
    tls = httpx.get(f"{proxied.url}/healthz", headers={"X-Forwarded-Proto": "https"}, timeout=WAIT)
    assert tls.headers["Strict-Transport-Security"] == f"max-age={YEAR}"
    plain = httpx.get(f"{proxied.url}/healthz", timeout=WAIT)
    assert "Strict-Transport-Security" not in plain.headers


async def close_code(
    server: LiveServer, token: str, *, host: str = "127.0.0.1", **headers: str
) -> int | None:
    """Open `/ws/` naming `host` in the Host header (the TCP connection still goes to the
    server) and return the close code, or None if it stays open after `authenticated`."""
    origin = headers.pop("origin", None)
    ws = await WS.connect(
        f"ws://{host}:{server.port}/ws/",
        token=token,
        host="127.0.0.1",
        port=server.port,
        origin=origin,
        additional_headers=headers,
    )
    try:
        frame = await ws.recv()
        assert frame["type"] == "authenticated", frame
        assert (await ws.request({"type": "ping"}))["type"] == "pong"
        return None
    except websockets.ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None
    finally:
        await ws.close()


@pytest.mark.asyncio
async def test_host_outside_allowed_hosts_is_closed_4403(proxied, user, alice_token):
    assert await close_code(proxied, alice_token) is None
    assert await close_code(proxied, alice_token, host="rebound.example") == 4403


@pytest.mark.asyncio
async def test_origin_is_the_servers_own_only_with_the_sockets_scheme(proxied, user, alice_token):
    own = f"127.0.0.1:{proxied.port}"
    plain, tls = f"http://{own}", f"https://{own}"
    checks = [
        ({"origin": plain}, None),
        ({"origin": tls}, 4403),  # an https page's socket arrives over TLS, not plain
        ({"origin": tls, "X-Forwarded-Proto": "https"}, None),
        ({"origin": plain, "X-Forwarded-Proto": "https"}, 4403),  # http page, TLS socket
        ({"origin": "https://evil.example", "X-Forwarded-Proto": "https"}, 4403),
    ]
    codes = await asyncio.gather(
        *(close_code(proxied, alice_token, **headers) for headers, _ in checks)
    )
    assert codes == [expected for _, expected in checks]
