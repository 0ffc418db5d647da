"""The real-time transport: Daphne, Twisted and autobahn adapted to the project.

PRIVATE NAMES RELIED ON (checked at start-up by `internals.check_dependencies`; `serve`
refuses to start if one is missing or changed shape):

Twisted (TCP transport `twisted.internet.tcp.Server`, a FileDescriptor; buffers.py)
  twisted.internet.abstract.FileDescriptor.dataBuffer     bytes written, not yet sent
  twisted.internet.abstract.FileDescriptor.offset         sent part of dataBuffer
  twisted.internet.abstract.FileDescriptor._tempDataLen   bytes queued since (set in __init__)
  twisted.internet.abstract.FileDescriptor.connected      \
  twisted.internet.abstract.FileDescriptor.disconnecting  / write_now writes only when open
  twisted.internet.tcp.Server                             is a FileDescriptor
  twisted.internet.tcp.Connection.writeSomeData(data)     write_now's direct send
  twisted.internet.tcp.Connection.TLS                     write_now leaves TLS alone
  twisted.internet.asyncioreactor.AsyncioSelectorReactor._asyncioEventloop   the drain's loop
Twisted (HTTP/1.1, `twisted.web.http`; edge.py)
  twisted.internet.protocol.Factory.buildProtocol  builds self.protocol: our HTTPChannel
  twisted.web.http.HTTPChannel.allHeadersReceived  the head is complete, no body read yet
                                                    (called by HTTPChannel.lineReceived)
  twisted.web.http.HTTPChannel.rawDataReceived(data)   the body, through its decoder
  twisted.web.http.HTTPChannel.requestDone(request)    an answer ended: the next head
  twisted.web.http.HTTPChannel.requests                the requests, the current last
  twisted.web.http.HTTPChannel.persistent              keep-alive after this answer
  twisted.web.http.HTTPChannel._command, HTTPChannel._path   the request line, logged with a 413
  twisted.web.http.Request.handleContentChunk(data)    each decoded piece of body
autobahn (autobahn.websocket.protocol; protocol.py, server.py)
  WebSocketProtocol.sendCloseFrame(code, isReply)         1012/1013, which sendClose refuses
  WebSocketProtocol._perMessageCompress                   compressed sockets are framed apart
  WebSocketProtocol.STATE_OPEN, WebSocketProtocol.STATE_CLOSED
  WebSocketProtocol.dropConnection(abort)                 a slow client's buffer is freed
  autobahn.websocket.protocol.pformat (called by WebSocketProtocol._connectionMade)
                                                          deferred until a debug line shows
  WebSocketServerFactory.setProtocolOptions(failByDrop, closeHandshakeTimeout,
      perMessageCompressionAccept)                        permessage-deflate (deflate.py)
autobahn (autobahn.websocket.compress_deflate; deflate.py, protocol.py)
  PerMessageDeflateOfferAccept.__init__(offer, request_no_context_takeover,
      request_max_window_bits, no_context_takeover, window_bits, mem_level,
      max_message_size)                                   the parameters accepted
  PerMessageDeflateOffer.accept_no_context_takeover  \
  PerMessageDeflateOffer.accept_max_window_bits       > what the client's offer allows
  PerMessageDeflateOffer.request_max_window_bits     /
  PerMessageDeflate.server_no_context_takeover   send_wire shares a compressed frame only then
  PerMessageDeflate.server_max_window_bits       and compresses it with this window
Daphne (daphne.server, daphne.http_protocol, daphne.ws_protocol; server.py, drain.py, edge.py)
  daphne.server.Server.create_application(protocol, scope)   overridden by a copy of 4.2's
  daphne.server.Server.connections      {protocol: {"application_instance", "disconnected"}}
  daphne.server.Server.application      read by the copy
  daphne.server.Server.handle_reply(protocol, message)       coroutine, used by the copy
  daphne.server.Server.application_checker   reaps connections by those two keys (the drain)
  daphne.server.Server.listen_error(failure)  overridden: exit 1 when the port is taken
  daphne.server.Server.ws_factory       set by run() before it calls the ready callable
  daphne.server.Server.http_factory     set by run() before it listens: ours replaces it
  daphne.http_protocol.WebRequest.client_addr   logged: set to the forwarded client
  daphne.ws_protocol.WebSocketProtocol.serverSend(content, binary)   overridden
  daphne.ws_protocol.WebSocketProtocol.serverClose(code)             overridden
  daphne.ws_protocol.WebSocketProtocol.handle_reply    sends websocket.close to serverClose
  daphne.ws_protocol.WebSocketProtocol.client_addr     logged for a slow client
Channels (channels.consumer; overridden or read by messaging.consumers.ChatConsumer)
  channels.consumer.AsyncConsumer.dispatch(message)    overridden (skips a database hop)
  channels.consumer.AsyncConsumer.__call__             dispatches through self.dispatch
  channels.consumer.get_handler_name                   "a.b" is handled by a_b
  channels.consumer.AsyncConsumer.base_send            the consumer's raw ASGI send

Modules: `state` (draining flag, close codes: no Daphne or Twisted import), `internals`
(the check), `buffers` (Twisted's write buffer), `protocol` (the WebSocket protocol),
`inbox` (the application input queue), `server` (Daphne's server, run, heap tuning),
`drain` (the graceful stop), `deflate` (permessage-deflate: the accept, frames compressed
once per event), `access_log` (Daphne's action logger), `edge` (the HTTP
channel: body limit, head deadline, pending connections per address), `proxies` (the
client and scheme from trusted proxies' `X-Forwarded-*`; no Daphne or Twisted import).

Importing this package stays cheap (no Daphne, Twisted or autobahn): `serve` imports
the server only after the check. This package must not import `messaging`, `rooms` or
`accounts`.
"""

from .internals import IncompatibleDependency, check_dependencies
from .state import CLOSE_RESTARTING, CLOSE_TOO_SLOW, CLOSE_TRY_AGAIN, is_draining

__all__ = [
    "CLOSE_RESTARTING",
    "CLOSE_TOO_SLOW",
    "CLOSE_TRY_AGAIN",
    "IncompatibleDependency",
    "ListenFailed",
    "check_dependencies",
    "is_draining",
    "serve",
]


class ListenFailed(RuntimeError):
    """The server could not bind its endpoint (the message is Twisted's)."""


def serve(*, host: str, port: int, proxy_headers: bool = False) -> None:
    """Check the private names above, then serve HTTP and WebSockets until a SIGTERM or
    SIGINT drains the process. Raises IncompatibleDependency (before anything starts) or
    ListenFailed."""
    check_dependencies()
    from .server import run  # imports daphne.server, which installs Twisted's reactor

    run(host=host, port=port, proxy_headers=proxy_headers)
