"""The WebSocket protocol: Daphne's, with a bounded send buffer, a direct write for
frames the fan-out framed once, and the close codes 1012 and 1013.

Imported only by `server` (after `internals.check_dependencies`): it subclasses Daphne's
protocol and reads autobahn's private `sendCloseFrame`, `_perMessageCompress` (and the
negotiated `server_no_context_takeover`, `server_max_window_bits` of its deflate) and states.
"""

import pprint
from typing import Any

from daphne.ws_protocol import WebSocketProtocol
from django.conf import settings

from chatproject import metrics

from .access_log import access_log
from .buffers import pending_bytes, write_now
from .deflate import deflated
from .state import CLOSE_RESTARTING, CLOSE_TOO_SLOW, CLOSE_TRY_AGAIN

# Seconds a client closed for being too slow gets to answer the close frame before its
# connection (and the buffer it holds) is dropped.
DROP_SLOW_CLIENT_AFTER = 2


class DeferredFormat:
    """`pprint.pformat(value)`, made only when a log line shows it. autobahn formats the
    options of every new connection for a debug line (`_connectionMade`), whether or not
    debug lines are shown: ~0.1 ms of CPU per socket (`timeit`), for nothing."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __str__(self) -> str:
        return pprint.pformat(self.value)

    __repr__ = __str__


def defer_debug_formatting() -> None:
    """Make autobahn's protocol module format its debug values lazily (`serve` calls this
    after the start-up check of autobahn's private names)."""
    import autobahn.websocket.protocol

    autobahn.websocket.protocol.pformat = DeferredFormat  # type: ignore[assignment]


class ChatWebSocketProtocol(WebSocketProtocol):
    """Daphne's WebSocket protocol with two additions:

    - a bounded outgoing buffer: Daphne buffers frames for a client that does not read
      without limit; past WEBSOCKET_SEND_BUFFER bytes this one stops queueing, closes
      the socket with 4408 (the client reconnects and recovers with `after`) and drops
      the connection if the close handshake does not finish within two seconds;
    - close codes 1012 ("service restart") and 1013 ("try again later"), in the IANA
      WebSocket close code registry, which autobahn's `sendClose` refuses (it takes only
      1000 and 3000-4999).
    """

    too_slow = False

    def serverSend(self, content: Any, binary: bool = False) -> None:
        if self.too_slow:
            return  # closing: nothing more is queued
        if self.state == self.STATE_OPEN and self._over_limit():
            return
        super().serverSend(content, binary)

    def send_wire(self, wire: bytes, text: str) -> None:
        """Write a text frame the fan-out framed once for all its sockets (the
        `chat.send_wire` scope extension), past ASGI, Daphne and autobahn's framing;
        compressed (once for all sockets with the same window) where permessage-deflate
        was negotiated."""
        if self.too_slow or self.state != self.STATE_OPEN:
            return
        compression = self._perMessageCompress
        if compression is not None:
            if not compression.server_no_context_takeover:  # never, as `deflate` accepts
                self.serverSend(text)  # compressed per socket, in autobahn's context
                return
            # Compressed once per event for every socket with this window (`deflate`).
            wire = deflated(wire, compression.server_max_window_bits)
        rest = write_now(self.transport, wire)
        if rest and not self._over_limit():
            self.transport.write(rest)

    def _over_limit(self) -> bool:
        if pending_bytes(self.transport) <= settings.WEBSOCKET_SEND_BUFFER:
            return False
        self.too_slow = True
        metrics.SLOW_CLIENT_CLOSES.inc()
        access_log.info("ws_slow_client_closed", client=str(self.client_addr))
        self.sendClose(code=CLOSE_TOO_SLOW)
        # The asyncio reactor, installed by daphne.server (imported before this module);
        # Twisted types it by its zope interfaces, which mypy reads without `self`.
        from twisted.internet import reactor

        reactor_: Any = reactor
        reactor_.callLater(DROP_SLOW_CLIENT_AFTER, self._drop_if_open)
        return True

    def _drop_if_open(self) -> None:
        if self.state != self.STATE_CLOSED:
            self.dropConnection(abort=True)  # frees the buffer at once

    def serverClose(self, code: int | None = None) -> None:
        if code in (CLOSE_RESTARTING, CLOSE_TRY_AGAIN):
            # sendCloseFrame takes any code, and ignores a socket already closing or
            # closed (the drain may have closed it before its consumer asks to).
            if self.state == self.STATE_OPEN:
                self.sendCloseFrame(code=code, isReply=False)
            return
        super().serverClose(code)
