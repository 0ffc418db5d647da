"""Who a request comes from behind proxies (`serve --proxy-headers`): the client address
and scheme of an ASGI scope, believed from `X-Forwarded-*` only when the TCP peer is one
of TRUSTED_PROXIES.

A proxy appends the address it received the request from to `X-Forwarded-For`, so the
list reads left to right from the first hop to the last, and only the entries that
trusted proxies added are true: anything to their left is what the client wrote. The
client is therefore the right-most address that is not itself a trusted proxy, found by
walking the list from the right while the hops are trusted. (Daphne takes the left-most
one, which any client can choose.)

Pure functions over the scope's `headers` (lower-case names, as Daphne builds them for
HTTP and WebSocket alike): no Daphne or Twisted import, so they are tested in process.
"""

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Any

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Headers = Iterable[tuple[bytes, bytes]]

FORWARDED_FOR = b"x-forwarded-for"
FORWARDED_PROTO = b"x-forwarded-proto"
FORWARDED_PORT = b"x-forwarded-port"

# The scope scheme for a secure or plain connection, per kind of scope.
SCHEMES = {"http": ("http", "https"), "websocket": ("ws", "wss")}


def parse_address(text: str) -> Address | None:
    """An address as proxies write it (`[v6]` brackets allowed), IPv4-mapped IPv6
    addresses as IPv4; None for anything else (a name, `unknown`, a port suffix)."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_trusted(address: Address | None, trusted: Sequence[Network]) -> bool:
    return address is not None and any(address in network for network in trusted)


def header_items(headers: Headers, name: bytes) -> list[str]:
    """The comma-separated items of every `name` header line, in order (a repeated header
    is one list, as RFC 9110 reads it)."""
    items: list[str] = []
    for key, value in headers:
        if key == name:
            items += [item.strip() for item in value.decode("latin-1").split(",")]
    return [item for item in items if item]


def forwarded_client(peer: Address, chain: list[str], trusted: Sequence[Network]) -> Address:
    """The right-most address of `chain` (X-Forwarded-For) that is not a trusted proxy,
    given that `peer` (the TCP peer) is one. When every hop is trusted, the left-most;
    an entry that is not an address ends the walk at the hop that reported it."""
    client = peer
    for item in reversed(chain):
        address = parse_address(item)
        if address is None:
            break
        client = address
        if not is_trusted(address, trusted):
            break
    return client


def apply_forwarded(scope: dict[str, Any], trusted: Sequence[Network]) -> None:
    """Set the scope's `client` and `scheme` from `X-Forwarded-For`, `-Port` and `-Proto`
    when its TCP peer (the `client` Daphne put there) is a trusted proxy; otherwise leave
    the peer and set the plain scheme, whatever those headers say."""
    plain, secure = SCHEMES[scope["type"]]
    scope.setdefault("scheme", plain)  # Daphne sets it for HTTP only
    peer_pair = scope.get("client")
    peer = parse_address(str(peer_pair[0])) if peer_pair else None
    if peer is None or not is_trusted(peer, trusted):
        return
    headers = scope.get("headers", [])
    chain = header_items(headers, FORWARDED_FOR)
    if chain:
        client = forwarded_client(peer, chain, trusted)
        ports = header_items(headers, FORWARDED_PORT)
        # Daphne's reading of X-Forwarded-Port (the client's port), from the last hop.
        port = int(ports[-1]) if ports and ports[-1].isdigit() else 0
        scope["client"] = [str(client), port]
    protos = header_items(headers, FORWARDED_PROTO)
    if protos:
        proto = protos[-1].lower()  # the nearest proxy's word
        if proto in ("https", "wss"):
            scope["scheme"] = secure
        elif proto in ("http", "ws"):
            scope["scheme"] = plain
