"""permessage-deflate (RFC 7692): which client offers are accepted, with which parameters,
and the fan-out's frames compressed once per event for every socket that negotiated it.

The server never keeps a compression context between messages (`server_no_context_takeover`,
set on every accepted offer, announced when the client asks for it): each compressed
message stands alone, so one compressed frame is valid on every socket whose window is at
least the one it was compressed with, and the frames autobahn compresses itself (frames
not sent through `send_wire`) never refer to data the client did not get from them.

Memory per socket stays small: frames sent through `send_wire` need no compressor of the
socket's own (autobahn makes one only for a frame it compresses itself, and keeps it: 16 KiB
with the parameters below), and the client is asked for a small window without context
takeover where its offer allows, so the server's decompressor needs a 2 KiB window.

Nothing here imports autobahn: `server` builds the accept from autobahn's classes.
"""

import zlib
from collections.abc import Callable, Sequence
from typing import Any

# Window bits of the frames the server compresses (9..15; at most what the client asked
# for). Chat frames are a few hundred bytes: a larger window finds nothing more.
SERVER_WINDOW_BITS = 11
# Window bits asked of the client (when its offer allows setting them), which size the
# server's decompressor for that socket.
CLIENT_WINDOW_BITS = 11
# zlib's memLevel for the compressors (1..9). A compressor takes (1 << (window bits + 2))
# + (1 << (memLevel + 9)) bytes: 16 KiB with these two, 256 KiB at zlib's defaults (15, 8).
MEM_LEVEL = 4
# Frames shorter than this are sent plain without trying (acks, typing notices): deflate's
# block header and the 4-byte trailer RFC 7692 strips leave nothing to save.
MIN_SIZE = 64
# Frames compressed once, kept for the other sockets of the same event: the fan-out writes
# one event to all its sockets before the next, with at most a few direct frames between.
CACHED_FRAMES = 8


def accept_deflate(
    offer_class: type[Any], accept_class: Callable[..., Any], *, max_message_size: int
) -> Callable[[Sequence[Any]], Any]:
    """autobahn's `perMessageCompressionAccept`: the first permessage-deflate offer,
    accepted without server context takeover, with bounded windows and memory and a
    bound on the size of a decompressed client message (a deflate bomb is closed 1009)."""

    def accept(offers: Sequence[Any]) -> Any:
        for offer in offers:
            if not isinstance(offer, offer_class):
                continue
            asked = offer.request_max_window_bits  # 0: the client named no bound
            return accept_class(
                offer,
                request_no_context_takeover=offer.accept_no_context_takeover,
                request_max_window_bits=CLIENT_WINDOW_BITS if offer.accept_max_window_bits else 0,
                no_context_takeover=True,
                window_bits=min(SERVER_WINDOW_BITS, asked) if asked else SERVER_WINDOW_BITS,
                mem_level=MEM_LEVEL,
                max_message_size=max_message_size,
            )
        return None

    return accept


_cache: dict[tuple[int, int], tuple[bytes, bytes]] = {}


def deflated(wire: bytes, window_bits: int) -> bytes:
    """The text frame `wire` (unmasked, unfragmented, as `hub.Frame` builds it) as a
    compressed frame (RSV1 set) with a window of `window_bits`; `wire` itself when
    compressing does not make it smaller (RFC 7692 allows an uncompressed message).
    The same `wire` object with the same window is compressed once."""
    if len(wire) < MIN_SIZE:
        return wire
    key = (id(wire), window_bits)
    cached = _cache.get(key)
    if cached is not None and cached[0] is wire:
        return cached[1]
    frame = _compress(wire, window_bits)
    if len(_cache) >= CACHED_FRAMES:
        del _cache[next(iter(_cache))]
    _cache[key] = (wire, frame)  # holding `wire` keeps its id from being reused
    return frame


def _compress(wire: bytes, window_bits: int) -> bytes:
    length = wire[1] & 0x7F
    start = 2 if length < 126 else 4 if length == 126 else 10
    compressor = zlib.compressobj(
        zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -window_bits, MEM_LEVEL
    )
    payload = compressor.compress(memoryview(wire)[start:])
    payload += compressor.flush(zlib.Z_SYNC_FLUSH)
    payload = payload[:-4]  # the empty stored block's 00 00 ff ff (RFC 7692 7.2.1)
    size = len(payload)
    first = 0xC0 | (wire[0] & 0x0F)  # FIN, RSV1 (compressed), the opcode
    if size < 126:
        header = bytes((first, size))
    elif size < 1 << 16:
        header = bytes((first, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((first, 127)) + size.to_bytes(8, "big")
    if len(header) + size >= len(wire):
        return wire
    return header + payload
