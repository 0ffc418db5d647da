"""The HTTP edge: what a connection may cost before Django sees a request.

- A request body over MAX_REQUEST_MB is answered 413 (`too_large`) before it is read: from
  its `Content-Length` as soon as the head is complete, and while reading a chunked one
  once it passes the limit. Twisted would otherwise buffer the whole body (a temporary
  file past 100 KB) and Daphne would then hand it to Django in memory.
- A connection must complete each request head within REQUEST_HEAD_TIMEOUT of starting
  to wait for it (the connection's start, or the end of the previous answer on a
  keep-alive connection). Twisted's own timeout restarts at every byte, so a client that
  sends a header line every 25 s was held for ever. Partly sent heads get 408
  (`request_timeout`); idle connections are closed quietly.
- One address may hold MAX_PENDING_CONNECTIONS_PER_ADDRESS connections awaiting a head;
  a new connection beyond that is closed as soon as it is accepted. Peers in
  TRUSTED_PROXIES are not counted under `--proxy-headers`: every client behind the proxy
  shares its address, and the proxy reads heads itself before it forwards them.

WebSocket connections leave all this once their handshake head is complete (Daphne hands
the TCP connection to autobahn). Twisted's `HTTPChannel` parses HTTP/1.1 for Daphne; this
module subclasses it, Daphne's factory and Daphne's request, relying on the Twisted hooks
listed in `__init__.py` (checked at start-up by `internals`).

Imported only by `server` (after `internals.check_dependencies`).
"""

import json
from dataclasses import dataclass
from typing import Any

from daphne.http_protocol import HTTPFactory, WebRequest
from django.conf import settings
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel

from .access_log import access_log
from .proxies import Network, is_trusted, parse_address

# The code of the project's other 413 answers (messaging.attachments.UploadTooLarge,
# DRF's through chatproject.api), so a client switches on one code whoever refused.
TOO_LARGE = "too_large"
REQUEST_TIMEOUT = "request_timeout"

# Seconds a refused connection is still read after its answer, the bytes dropped: a client
# still sending its body then reads the answer instead of a reset (closing a socket with
# unread data resets it, and the peer may lose the answer). Then the connection is cut.
LINGER = 5.0

# Twisted's idle timeout: seconds without a byte while a body is being read. (Heads and
# idle keep-alive connections have the stricter head deadline.)
BODY_IDLE_TIMEOUT = 60


@dataclass(frozen=True)
class EdgeLimits:
    max_body: int  # bytes
    head_timeout: float  # seconds
    max_pending: int  # connections per address awaiting a head
    trusted_proxies: tuple[Network, ...]  # empty without --proxy-headers

    @classmethod
    def from_settings(cls, *, proxy_headers: bool) -> "EdgeLimits":
        return cls(
            max_body=settings.MAX_REQUEST_MB * 1024 * 1024,
            head_timeout=settings.REQUEST_HEAD_TIMEOUT,
            max_pending=settings.MAX_PENDING_CONNECTIONS_PER_ADDRESS,
            trusted_proxies=tuple(settings.TRUSTED_PROXIES) if proxy_headers else (),
        )


class BodyTooLarge(Exception):
    """Raised out of Twisted's body decoder once a body passes the limit, which ends the
    decoder's loop over the bytes it holds."""


class PendingHeads:
    """How many connections each address holds that await a request head."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.counts: dict[str, int] = {}
        self.refused: dict[str, int] = {}  # refusals since the address was last at zero

    def full(self, address: str) -> bool:
        """True (and the refusal counted) when `address` is at the limit. Logged once per
        episode, so a flood of connections does not flood the log."""
        if self.counts.get(address, 0) < self.limit:
            return False
        self.refused[address] = self.refused.get(address, 0) + 1
        if self.refused[address] == 1:
            access_log.info("http_connections_refused", client=address, pending=self.limit)
        return True

    def add(self, address: str) -> None:
        self.counts[address] = self.counts.get(address, 0) + 1

    def remove(self, address: str) -> None:
        left = self.counts[address] - 1
        if left:
            self.counts[address] = left
            return
        del self.counts[address]
        refused = self.refused.pop(address, 0)
        if refused:
            access_log.info("http_connections_refused_total", client=address, refused=refused)


def json_answer(status: int, reason: str, detail: str, code: str) -> bytes:
    """A whole HTTP/1.1 answer that ends the connection, in the API's error shape."""
    body = json.dumps({"detail": detail, "code": code}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n"
        "\r\n"
    )
    return head.encode() + body


def declared_length(request: Any) -> int | None:
    """The request's Content-Length (Twisted has refused a malformed or repeated one)."""
    values = request.requestHeaders.getRawHeaders(b"content-length")
    return int(values[0]) if values else None


class ChatRequest(WebRequest):
    """Daphne's request, counting the body bytes Twisted decodes (chunked bodies have no
    length to check in advance)."""

    body_received = 0

    def handleContentChunk(self, data: bytes) -> None:
        self.body_received += len(data)
        channel: Any = self.channel
        if self.body_received > channel.factory.limits.max_body:
            raise BodyTooLarge
        super().handleContentChunk(data)


class ChatHTTPChannel(HTTPChannel):
    """Twisted's HTTP/1.1 channel with the head deadline, the pending count and the body
    limit. One per TCP connection, until a WebSocket handshake takes the connection."""

    factory: "ChatHTTPFactory"
    counted: str | None = None  # the address this connection counts against, if any
    head_deadline: Any = None  # the DelayedCall while a head is awaited
    head_begun = False  # bytes of the awaited head have arrived
    closing = False  # answered for the last time: what arrives is dropped
    cut: Any = None  # the DelayedCall that ends the linger

    def connectionMade(self) -> None:
        super().connectionMade()
        self._await_head()

    def dataReceived(self, data: bytes) -> None:
        if self.closing:
            return
        if self.head_deadline is not None:
            self.head_begun = True
        super().dataReceived(data)

    def allHeadersReceived(self) -> None:
        # Called once the head is complete, before any of the body is read; Twisted's own
        # version opens the body's buffer (Request.gotLength) and may send `100 Continue`.
        self._head_arrived()
        request = self.requests[-1]
        length = declared_length(request)
        if length is not None and length > self.factory.limits.max_body:
            self._refuse_too_large(request)
            return
        super().allHeadersReceived()

    def rawDataReceived(self, data: bytes) -> None:
        if self.closing:
            return
        try:
            super().rawDataReceived(data)
        except BodyTooLarge:
            self._refuse_too_large(self.requests[-1])

    def requestDone(self, request: Any) -> None:
        # Before Twisted's version: it goes on parsing pipelined bytes at once, which may
        # complete the next head within this call.
        if self.persistent:
            self._await_head()
        super().requestDone(request)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._head_arrived()
        if self.cut is not None and self.cut.active():
            self.cut.cancel()
        super().connectionLost(reason)

    # ------------------------------------------------------------------ the deadline

    def _await_head(self) -> None:
        if self.head_deadline is not None or self.closing:
            return
        if self.counted is not None:
            self.factory.pending.add(self.counted)
        self.head_begun = False
        self.head_deadline = self.callLater(self.factory.limits.head_timeout, self._head_timed_out)

    def _head_arrived(self) -> None:
        """The awaited head is complete (or will never be): stop its clock and count."""
        if self.head_deadline is None:
            return
        if self.head_deadline.active():
            self.head_deadline.cancel()
        self.head_deadline = None
        if self.counted is not None:
            self.factory.pending.remove(self.counted)

    def _head_timed_out(self) -> None:
        begun = self.head_begun
        self._head_arrived()
        if not begun:  # idle (never used, or kept alive after an answer): no one waits
            self.closing = True
            self.loseConnection()
            return
        timeout = self.factory.limits.head_timeout
        access_log.info("http_head_timeout", client=self._peer(), seconds=timeout)
        self._answer_and_close(
            json_answer(
                408,
                "Request Timeout",
                f"The request head did not arrive within {timeout:g} s.",
                REQUEST_TIMEOUT,
            )
        )

    # ------------------------------------------------------------------ refusals

    def _refuse_too_large(self, request: Any) -> None:
        limit_mb = self.factory.limits.max_body // (1024 * 1024)
        answer = json_answer(
            413,
            "Content Too Large",
            f"The request body is larger than {limit_mb} MB.",
            TOO_LARGE,
        )
        self._answer_and_close(answer)
        path: Any = self._path  # bytes (Twisted's annotation says otherwise)
        self.factory.server.log_action(
            "http",
            "complete",
            {
                "path": path.decode("ascii", "replace"),
                "status": 413,
                "method": self._command.decode("ascii", "replace"),
                "client": self._peer(),
                "time_taken": 0,
                "size": len(answer),
            },
        )

    def _answer_and_close(self, answer: bytes) -> None:
        """Send `answer`, close our side, and drop what the client still sends for up to
        LINGER seconds (so it reads the answer), then cut the connection."""
        self.closing = True
        tcp = self.tcp
        tcp.write(answer)
        tcp.loseWriteConnection()
        self.cut = self.callLater(LINGER, tcp.abortConnection)

    @property
    def tcp(self) -> Any:
        """The TCP transport (a `twisted.internet.tcp.Server`; Twisted types it loosely)."""
        return self.transport

    def _peer(self) -> str:
        peer = self.tcp.getPeer()
        return f"{peer.host}:{peer.port}" if isinstance(peer, IPv4Address | IPv6Address) else "-"


class ChatHTTPFactory(HTTPFactory):
    """Daphne's HTTP factory building ChatHTTPChannel and ChatRequest, which refuses a
    connection at once when its address already has MAX_PENDING_CONNECTIONS_PER_ADDRESS
    connections awaiting a head."""

    # Plain HTTP/1.1 only: TLS and HTTP/2 end at the load balancer (Twisted's default
    # protocol is a wrapper that switches to HTTP/2 after a TLS negotiation).
    protocol = ChatHTTPChannel

    def __init__(self, server: Any, limits: EdgeLimits) -> None:
        super().__init__(server)
        self.limits = limits
        self.pending = PendingHeads(limits.max_pending)
        self.timeOut = BODY_IDLE_TIMEOUT

    def counted_address(self, peer: Any) -> str | None:
        """The address a connection from `peer` counts against; None for a trusted proxy
        (under --proxy-headers) and for peers without one (Unix sockets)."""
        if not isinstance(peer, IPv4Address | IPv6Address):
            return None
        if is_trusted(parse_address(peer.host), self.limits.trusted_proxies):
            return None
        return peer.host

    def buildProtocol(self, addr: Any) -> ChatHTTPChannel | None:
        address = self.counted_address(addr)
        if address is not None and self.pending.full(address):
            return None  # Twisted closes the accepted socket at once
        channel: ChatHTTPChannel = super().buildProtocol(addr)
        channel.requestFactory = ChatRequest
        channel.counted = address
        return channel
