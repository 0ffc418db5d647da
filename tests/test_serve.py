"""Pieces of `manage.py serve` (`chatproject.transport`) that can be checked alone (the
whole server is exercised by the end-to-end tests, which all run against it)."""

import asyncio
import socket
import subprocess
import sys

import pytest

from chatproject.transport.access_log import scrub
from chatproject.transport.buffers import write_now
from chatproject.transport.inbox import Inbox
from tests.live import ROOT, server_environment


@pytest.mark.asyncio
async def test_the_inbox_hands_out_items_in_order_and_wakes_a_waiting_getter():
    inbox = Inbox()
    inbox.put_nowait("a")
    inbox.put_nowait("b")
    assert await inbox.get() == "a"
    assert await inbox.get() == "b"

    waiting = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    assert not waiting.done()
    inbox.put_nowait("c")
    assert await asyncio.wait_for(waiting, 1) == "c"


@pytest.mark.asyncio
async def test_a_getter_cancelled_after_being_woken_leaves_the_item_queued():
    inbox = Inbox()
    getter = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    inbox.put_nowait("kept")  # wakes the getter...
    getter.cancel()  # ...which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await getter
    assert await asyncio.wait_for(inbox.get(), 1) == "kept"


class FakeTransport:
    """The parts of a Twisted TCP transport `write_now` reads, over a real socket pair."""

    TLS = False
    connected = True
    disconnecting = False

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.dataBuffer = b""
        self.offset = 0
        self._tempDataLen = 0

    def writeSomeData(self, data: bytes) -> int:
        try:
            return self.sock.send(data)
        except BlockingIOError:
            return 0


def test_write_now_sends_at_once_and_answers_what_the_kernel_did_not_take():
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    transport = FakeTransport(ours)
    try:
        assert write_now(transport, b"hello") == b""
        assert theirs.recv(16) == b"hello"

        # Something already queued in Twisted's buffer goes first: nothing is sent now.
        transport._tempDataLen = 3
        assert write_now(transport, b"later") == b"later"
        transport._tempDataLen = 0

        # A peer that does not read: the kernel takes what fits, the rest is answered.
        big = b"x" * (4 << 20)
        rest = write_now(transport, big)
        assert 0 < len(rest) < len(big)
        assert big.endswith(rest)

        transport.TLS = True  # Twisted frames TLS itself: left to its buffer
        assert write_now(transport, b"tls") == b"tls"
    finally:
        ours.close()
        theirs.close()


def test_tokens_never_reach_the_access_log():
    assert scrub("/ws/?token=secret&x=1") == "/ws/?token=[redacted]&x=1"
    assert scrub("/ws/rooms/3/") == "/ws/rooms/3/"


def test_serve_exits_non_zero_when_its_port_is_taken(django_db_setup):
    """Daphne logs a listen failure and returns as after a clean stop; `serve` must not
    exit 0 then, or a supervisor would not notice that nothing is serving."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=server_environment(),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"could not listen: Couldn't listen on 127.0.0.1:{port}" in result.stderr


@pytest.mark.e2e
def test_serve_says_which_address_to_open(django_db_setup):
    from tests.live import LiveServer

    server = LiveServer(server_environment(LOG_LEVEL="info"))
    server.start()
    try:
        assert f"http://127.0.0.1:{server.port}/" in server.log_text()
    finally:
        server.stop()
