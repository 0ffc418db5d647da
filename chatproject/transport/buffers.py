"""Twisted's write buffer, read directly: how many bytes a connection holds that the
kernel would not take yet, and a write that skips the buffer when it is empty.

These read Twisted's private buffer (`dataBuffer`, `offset`, `_tempDataLen`) and
`writeSomeData`; `internals.check_dependencies` makes sure they exist before the server
starts, so a renamed attribute stops the process instead of reading as an empty buffer.
The server listens on plain TCP only (TLS ends at the load balancer): every transport
here is a `twisted.internet.tcp.Server`.
"""

from typing import Protocol


class TCPTransport(Protocol):
    """What these functions read of a Twisted TCP transport (`twisted.internet.tcp`)."""

    dataBuffer: bytes
    offset: int
    _tempDataLen: int
    TLS: bool
    connected: int
    disconnecting: int

    def writeSomeData(self, data: bytes) -> int | BaseException: ...


def pending_bytes(transport: TCPTransport) -> int:
    """Bytes Twisted holds for a connection that the kernel would not take yet: the part
    of `dataBuffer` past `offset`, and the writes queued since (`_tempDataLen`)."""
    return len(transport.dataBuffer) - transport.offset + transport._tempDataLen


def write_now(transport: TCPTransport, data: bytes) -> bytes:
    """Hand `data` to the kernel at once when nothing is queued before it; answer what the
    kernel did not take, for the transport's buffer.

    Twisted's `write` always buffers: it registers the socket for writability and sends
    on the next turn of the loop, which costs two `epoll_ctl` calls and most of a fan-out
    delivery's CPU. A connection that keeps up has an empty buffer and a socket that takes
    the frame; then this is one `send`. TLS connections (framed by Twisted) are left alone.
    """
    if (
        transport.TLS
        or not transport.connected
        or transport.disconnecting
        or pending_bytes(transport)
    ):
        return data
    sent = transport.writeSomeData(data)
    if not isinstance(sent, int):  # the connection is gone: Twisted's buffer finds out
        return data
    return data[sent:]
