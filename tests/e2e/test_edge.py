"""The server's edge against real `manage.py serve` processes: request bodies over
MAX_REQUEST_MB are refused before they are read, request heads have a deadline, one
address may hold only so many connections awaiting a head, and `--proxy-headers` believes
`X-Forwarded-*` from TRUSTED_PROXIES only.

Raw sockets where the HTTP client would hide what is tested (a body not sent, a head sent
line by line, a connection closed without an answer)."""

import asyncio
import contextlib
import json
import os
import select
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from accounts.services import issue_tokens
from tests.live import RUN_ID, WAIT, WS, LiveServer, server_environment

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

MiB = 1024 * 1024
HEAD_TIMEOUT = 2  # REQUEST_HEAD_TIMEOUT of the `edge` server, seconds


def proxied_server(env: dict[str, str]) -> LiveServer:
    """A LiveServer started with `--proxy-headers`."""
    return LiveServer(env, serve_args=("--proxy-headers",))


@contextlib.contextmanager
def running(server: LiveServer) -> Iterator[LiveServer]:
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def edge(django_db_setup) -> Iterator[LiveServer]:
    env = server_environment(MAX_REQUEST_MB="1", REQUEST_HEAD_TIMEOUT=str(HEAD_TIMEOUT))
    with running(LiveServer(env)) as server:
        yield server


# ------------------------------------------------------------------------ raw HTTP


def connect(server: LiveServer, source: str = "127.0.0.1") -> socket.socket:
    conn = socket.socket()
    conn.bind((source, 0))
    conn.settimeout(WAIT)
    conn.connect(("127.0.0.1", server.port))
    return conn


def head(method: str, path: str, server: LiveServer, *headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{server.port}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class Answer:
    def __init__(self, raw: bytes) -> None:
        top, _, self.body = raw.partition(b"\r\n\r\n")
        status_line, *lines = top.decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1])
        self.headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines)}

    def json(self) -> dict:
        return json.loads(self.body)


def read_answer(conn: socket.socket, within: float = WAIT) -> Answer:
    """One whole answer (its head, then Content-Length bytes of body)."""
    deadline = time.monotonic() + within
    raw = b""
    while b"\r\n\r\n" not in raw or len(raw.partition(b"\r\n\r\n")[2]) < length(raw):
        conn.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = conn.recv(65536)
        assert chunk, f"closed after {raw!r}"
        raw += chunk
    return Answer(raw)


def length(raw: bytes) -> int:
    for line in raw.partition(b"\r\n\r\n")[0].split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def read_until_closed(conn: socket.socket, within: float) -> bytes:
    """Everything the server sends until it closes (or resets) the connection; fails if
    it is still open after `within` seconds."""
    deadline = time.monotonic() + within
    received = b""
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"still open after {within} s; received {received!r}"
        conn.settimeout(left)
        try:
            chunk = conn.recv(65536)
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk


# ------------------------------------------------------------- the server process


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def temporary_files(pid: int) -> list[str]:
    """Unlinked files in the temporary directory the server holds open (where Twisted
    buffers a body of 100 KB or more)."""
    found = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith(tempfile.gettempdir()) and target.endswith("(deleted)"):
                found.append(target)
    return found


# ---------------------------------------------------------------- the body limit


def test_a_body_declared_too_large_is_refused_before_it_is_sent(edge):
    pid = edge.process.pid
    before, files_before = rss_bytes(pid), temporary_files(pid)
    declared = 300 * MiB
    with connect(edge) as conn:
        conn.sendall(
            head(
                "POST",
                "/api/auth/login/",
                edge,
                "Content-Type: application/json",
                f"Content-Length: {declared}",
            )
        )
        conn.sendall(b"x" * 65536)  # a little of it: the answer comes without the rest
        answer = read_answer(conn)
        assert answer.status == 413
        assert answer.json() == {
            "detail": "The request body is larger than 1 MB.",
            "code": "too_large",
        }
        assert answer.headers["connection"] == "close"
        assert answer.headers["content-type"] == "application/json"
        # Nothing of the body was buffered, in memory or in a temporary file.
        assert temporary_files(pid) == files_before
        assert rss_bytes(pid) - before < 8 * MiB
        # The server closes its side; what the client still sends is dropped meanwhile.
        conn.sendall(b"x" * 65536)
        assert read_until_closed(conn, within=WAIT) == b""


def test_a_chunked_body_is_cut_with_413_once_it_passes_the_limit(edge):
    with connect(edge) as conn:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        conn.sendall(
            head(
                "POST",
                "/api/auth/login/",
                edge,
                "Content-Type: application/json",
                "Transfer-Encoding: chunked",
            )
        )
        piece = 64 * 1024
        chunk = f"{piece:x}\r\n".encode() + b"x" * piece + b"\r\n"
        planned, sent = 64 * MiB, 0
        while sent < planned:
            readable, _, _ = select.select([conn], [], [], 0)
            if readable:
                break
            conn.sendall(chunk)
            sent += piece
        answer = read_answer(conn)
    assert answer.status == 413
    assert answer.json()["code"] == "too_large"
    # Read up to the limit, then cut long before the body's end.
    assert MiB < sent < planned


def test_bodies_up_to_the_limit_reach_the_application(edge):
    body = b"x" * MiB  # exactly MAX_REQUEST_MB: Django answers (not JSON: 400)
    with connect(edge) as conn:
        conn.sendall(
            head(
                "POST",
                "/api/auth/login/",
                edge,
                "Content-Type: application/json",
                f"Content-Length: {len(body)}",
                "Connection: close",
            )
            + body
        )
        answer = read_answer(conn)
    assert answer.status == 400
    assert answer.json()["code"] != "too_large"


def test_an_upload_within_the_limit_is_stored_and_a_larger_one_refused_at_the_edge(edge, user):
    token = issue_tokens(user=user)["access"]
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=edge.url, timeout=WAIT) as client:
        small = client.post(
            "/api/attachments/",
            files={"file": ("notes.txt", b"n" * (MiB // 2), "text/plain")},
            headers=auth,
        )
        assert small.status_code == 201, small.text
        assert small.json()["size"] == MiB // 2

        # MAX_UPLOAD_MB is 10 here: only the edge refuses 2 MiB, before the view runs.
        large = client.post(
            "/api/attachments/",
            files={"file": ("big.bin", b"\0" * (2 * MiB), "application/octet-stream")},
            headers=auth,
        )
        assert large.status_code == 413
        assert large.json() == {
            "detail": "The request body is larger than 1 MB.",
            "code": "too_large",
        }


def test_the_whole_server_refuses_large_bodies_before_django_routes_them(edge):
    with connect(edge) as conn:
        conn.sendall(head("PUT", "/no/such/page/", edge, f"Content-Length: {2 * MiB}"))
        answer = read_answer(conn)
    assert answer.status == 413  # not Django's 404


# ------------------------------------------------------------------ head deadline


def test_a_head_sent_line_by_line_is_cut_at_the_deadline(edge):
    with connect(edge) as conn:
        began = time.monotonic()
        conn.sendall(b"GET /healthz HTTP/1.1\r\n")
        received = b""
        for n in range(30):  # a header line every 0.5 s, for up to 15 s
            readable, _, _ = select.select([conn], [], [], 0.5)
            if readable:
                received = read_until_closed(conn, within=WAIT)
                break
            conn.sendall(f"X-Slow-{n}: 1\r\n".encode())
        elapsed = time.monotonic() - began
    answer = Answer(received)
    assert answer.status == 408
    assert answer.json() == {
        "detail": f"The request head did not arrive within {HEAD_TIMEOUT} s.",
        "code": "request_timeout",
    }
    assert HEAD_TIMEOUT - 0.5 < elapsed < HEAD_TIMEOUT + 6


def test_an_idle_keep_alive_connection_is_closed_quietly_after_the_deadline(edge):
    with connect(edge) as conn:
        conn.sendall(head("GET", "/healthz", edge))
        assert read_answer(conn).status == 200
        answered = time.monotonic()
        assert read_until_closed(conn, within=HEAD_TIMEOUT + 6) == b""  # no 408
        assert time.monotonic() - answered > HEAD_TIMEOUT - 0.5


@pytest.mark.asyncio
async def test_an_upgraded_websocket_outlives_the_head_deadline(edge, alice_token):
    async with await WS.connect(f"{edge.ws_url}/ws/", token=alice_token) as ws:
        await ws.recv_until("authenticated")
        await asyncio.sleep(HEAD_TIMEOUT + 1)
        assert (await ws.request({"type": "ping"}))["type"] == "pong"


# ----------------------------------------------------- pending connections per address


@pytest.mark.asyncio
async def test_connections_awaiting_a_head_are_capped_per_address(alice_token):
    env = server_environment(MAX_PENDING_CONNECTIONS_PER_ADDRESS="4", REQUEST_HEAD_TIMEOUT="30")
    server = LiveServer(env)
    await asyncio.to_thread(server.start)
    token = alice_token
    try:
        async with contextlib.AsyncExitStack() as stack:
            # Upgraded WebSockets do not count, however many.
            for _ in range(5):
                ws = await stack.enter_async_context(
                    await WS.connect(f"{server.ws_url}/ws/", token=token)
                )
                await ws.recv_until("authenticated")
            await asyncio.to_thread(cap_holds, server)
    finally:
        await asyncio.to_thread(server.stop)


def cap_holds(server: LiveServer) -> None:
    with contextlib.ExitStack() as stack:
        waiting = []
        for _ in range(4):
            conn = stack.enter_context(connect(server))
            conn.sendall(b"GET /healthz HTTP/1.1\r\n")  # a head begun, never finished
            waiting.append(conn)

        # The fifth is accepted after the four (the kernel's queue is in order) and
        # closed at once, without an answer.
        with connect(server) as fifth:
            with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                fifth.sendall(head("GET", "/healthz", server))
            assert read_until_closed(fifth, within=WAIT) == b""

        # Another address is served meanwhile...
        with connect(server, source="127.0.0.2") as other:
            other.sendall(head("GET", "/healthz", server, "Connection: close"))
            assert read_answer(other).status == 200

        # ...and so is a waiting connection that completes its head, which frees a place
        # (kept alive, it would await its next head, and count, again).
        waiting[0].sendall(f"Host: 127.0.0.1:{server.port}\r\nConnection: close\r\n\r\n".encode())
        assert read_answer(waiting[0]).status == 200
        with connect(server) as again:
            again.sendall(head("GET", "/healthz", server, "Connection: close"))
            assert read_answer(again).status == 200


# ------------------------------------------------------------------- proxy headers

METRICS_CLIENT = "5.6.7.8"  # the only address allowed to read /metrics on these servers


def proxied_environment(trusted: str, name: str) -> dict[str, str]:
    return server_environment(
        ENV="production",
        LOG_FORMAT="json",
        LOG_LEVEL="info",
        TRUSTED_PROXIES=trusted,
        METRICS_ALLOWED_NETWORKS=f"{METRICS_CLIENT}/32",
        AUTH_RATE_LIMIT="2/60s",
        # Rate-limit counters of their own (they live under the prefix, in Redis).
        CHANNEL_PREFIX=f"test-{RUN_ID}-{name}",
    )


@pytest.fixture(scope="module")
def behind_trusted_proxy(django_db_setup) -> Iterator[LiveServer]:
    """Loopback is a trusted proxy: the tests' own requests are the proxy's."""
    with running(proxied_server(proxied_environment("127.0.0.1/32", "trusted"))) as server:
        yield server


@pytest.fixture(scope="module")
def untrusted_peer(django_db_setup) -> Iterator[LiveServer]:
    """Only 10.0.0.0/8 is trusted: the tests' requests come from an untrusted peer."""
    with running(proxied_server(proxied_environment("10.0.0.0/8", "untrusted"))) as server:
        yield server


def get(server: LiveServer, path: str, **headers: str) -> httpx.Response:
    return httpx.get(f"{server.url}{path}", headers=headers, timeout=WAIT)


def log_events(server: LiveServer, event: str) -> list[dict]:
    lines = []
    for line in server.log_text().splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if entry.get("event") == event:
                lines.append(entry)
    return lines


def test_the_client_is_the_right_most_address_a_trusted_proxy_did_not_add(
    behind_trusted_proxy,
):
    server = behind_trusted_proxy
    forged_left = get(server, "/metrics", **{"X-Forwarded-For": f"1.2.3.4, {METRICS_CLIENT}"})
    assert forged_left.status_code == 200  # the client is 5.6.7.8: 1.2.3.4 is ignored
    assert "chat_connections" in forged_left.text
    assert (
        get(server, "/metrics", **{"X-Forwarded-For": f"{METRICS_CLIENT}, 1.2.3.4"}).status_code
        == 403
    )
    assert get(server, "/metrics").status_code == 403  # the proxy itself is not allowed


def test_a_forged_forwarded_for_from_an_untrusted_peer_is_ignored(untrusted_peer):
    response = get(untrusted_peer, "/metrics", **{"X-Forwarded-For": METRICS_CLIENT})
    assert response.status_code == 403


def attempt_login(server: LiveServer, forwarded_for: str) -> int:
    response = httpx.post(
        f"{server.url}/api/auth/login/",
        json={"username": "nobody", "password": "wrong-password-1"},
        headers={"X-Forwarded-For": forwarded_for},
        timeout=WAIT,
    )
    return response.status_code


def test_the_login_limit_counts_the_forwarded_client_behind_a_trusted_proxy(
    behind_trusted_proxy,
):
    server = behind_trusted_proxy
    # Changing the forged left-most entries does not make another client.
    assert attempt_login(server, "9.9.9.1, 7.7.7.7") == 401
    assert attempt_login(server, "9.9.9.2, 7.7.7.7") == 401
    assert attempt_login(server, "9.9.9.3, 7.7.7.7") == 429
    assert attempt_login(server, "7.7.7.8") == 401  # another client has its own budget


def test_the_login_limit_counts_the_real_peer_when_it_is_not_trusted(untrusted_peer):
    assert attempt_login(untrusted_peer, "9.9.9.1") == 401
    assert attempt_login(untrusted_peer, "9.9.9.2") == 401
    assert attempt_login(untrusted_peer, "9.9.9.3") == 429  # all three were 127.0.0.1


def first_page_link(server: LiveServer, token: str, proto: str) -> str:
    response = get(
        server,
        "/api/users/?limit=1",
        Authorization=f"Bearer {token}",
        **{"X-Forwarded-Proto": proto},
    )
    assert response.status_code == 200, response.text
    return response.json()["next"]


def test_https_is_believed_from_a_trusted_proxy_only(
    behind_trusted_proxy, untrusted_peer, user, other_user
):
    token = issue_tokens(user=user)["access"]
    # request.is_secure() (and every absolute link) follows the scope's scheme.
    assert first_page_link(behind_trusted_proxy, token, "https").startswith("https://")
    assert first_page_link(behind_trusted_proxy, token, "http").startswith("http://")
    assert first_page_link(untrusted_peer, token, "https").startswith("http://")


@pytest.mark.asyncio
async def test_websocket_handshakes_take_client_and_scheme_from_trusted_proxies_only(
    behind_trusted_proxy, untrusted_peer, alice_token
):
    token = alice_token
    headers = {"X-Forwarded-For": "1.2.3.4, 5.6.7.9", "X-Forwarded-Proto": "https"}

    def https_page(server: LiveServer) -> str:
        return f"https://127.0.0.1:{server.port}"

    # Behind the trusted proxy the socket is wss: the https page's own.
    url = f"{behind_trusted_proxy.ws_url}/ws/"
    async with await WS.connect(
        url, token=token, additional_headers=dict(headers), origin=https_page(behind_trusted_proxy)
    ) as ws:
        await ws.recv_until("authenticated")
    # From an untrusted peer the header is ignored: a plain socket, another origin (4403).
    url = f"{untrusted_peer.ws_url}/ws/"
    refused = await WS.connect(
        url, token=token, additional_headers=dict(headers), origin=https_page(untrusted_peer)
    )
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await refused.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403

    # Daphne's access log names the forwarded client, and the peer when it is untrusted.
    deadline = time.monotonic() + WAIT
    while not log_events(behind_trusted_proxy, "ws_connection_closed"):
        assert time.monotonic() < deadline, behind_trusted_proxy.output()
        await asyncio.sleep(0.05)
    assert log_events(behind_trusted_proxy, "ws_connection_closed")[-1]["client"] == "5.6.7.9:0"
    while not log_events(untrusted_peer, "ws_connection_closed"):
        assert time.monotonic() < deadline, untrusted_peer.output()
        await asyncio.sleep(0.05)
    assert log_events(untrusted_peer, "ws_connection_closed")[-1]["client"].startswith("127.0.0.1:")
