"""`chatproject.transport`: the start-up check of the private names it relies on, the
access log's event names, and its layering.

Importing `daphne.server` installs Twisted's asyncio reactor for the whole process, so
everything that needs Daphne runs in a subprocess (the real `manage.py serve`); the
tests here import only the cheap part of the package.
"""

import ast
import importlib.metadata
import ipaddress
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import pytest

import chatproject.transport
from chatproject.hub import Frame
from chatproject.transport import access_log, deflate, internals
from chatproject.transport.proxies import apply_forwarded, forwarded_client, parse_address
from tests.live import ROOT, server_environment

PACKAGE = ROOT / "chatproject" / "transport"


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env=server_environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def serve_with(patch: str) -> subprocess.CompletedProcess[str]:
    """`manage.py serve` in a process where `patch` ran first (a dependency upgrade that
    renamed or reshaped something)."""
    return run_python(
        patch
        + textwrap.dedent(
            """
            import runpy, sys
            sys.argv = ["manage.py", "serve", "--host", "127.0.0.1", "--port", "0"]
            runpy.run_path("manage.py", run_name="__main__")
            """
        )
    )


def test_the_check_passes_on_the_installed_versions():
    result = run_python(
        """
        import django
        django.setup()
        from chatproject.transport import check_dependencies
        check_dependencies()
        print("compatible")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "compatible"


RENAMED_TEMP_DATA_LEN = """
from twisted.internet import abstract
init = abstract.FileDescriptor.__init__
def renamed(self, *args, **kwargs):
    init(self, *args, **kwargs)
    self._tempDataLength = self.__dict__.pop("_tempDataLen")
abstract.FileDescriptor.__init__ = renamed
"""

NO_SEND_CLOSE_FRAME = """
from autobahn.websocket.protocol import WebSocketProtocol
del WebSocketProtocol.sendCloseFrame
"""

RESHAPED_PROTOCOL_OPTIONS = """
from autobahn.websocket.protocol import WebSocketServerFactory
def setProtocolOptions(self, versions=None, failByDrop=None):
    pass
WebSocketServerFactory.setProtocolOptions = setProtocolOptions
"""

NO_PFORMAT = """
import autobahn.websocket.protocol
del autobahn.websocket.protocol.pformat
"""

NO_ASYNCIO_LOOP = """
import daphne.server
from twisted.internet import reactor
del reactor._asyncioEventloop
"""

RESHAPED_LISTEN_ERROR = """
import daphne.server
def listen_error(self, reason, port):
    pass
daphne.server.Server.listen_error = listen_error
"""

NO_DISPATCH = """
from channels.consumer import AsyncConsumer
del AsyncConsumer.dispatch
"""

NO_ALL_HEADERS_RECEIVED = """
from twisted.web.http import HTTPChannel
del HTTPChannel.allHeadersReceived
"""

RESHAPED_CONTENT_CHUNK = """
from twisted.web.http import Request
def handleContentChunk(self, chunk, final=False):
    pass
Request.handleContentChunk = handleContentChunk
"""

REQUEST_WITHOUT_CLIENT_ADDR = """
import linecache
import daphne.http_protocol
# The check reads the method's source: give the replacement one (linecache) to read.
source = "def process(self):\\n    self.client_address = None\\n"
linecache.cache["<reshaped>"] = (len(source), None, source.splitlines(True), "<reshaped>")
namespace = {}
exec(compile(source, "<reshaped>", "exec"), namespace)
daphne.http_protocol.WebRequest.process = namespace["process"]
"""

RESHAPED_DEFLATE_ACCEPT = """
from autobahn.websocket import compress_deflate
init = compress_deflate.PerMessageDeflateOfferAccept.__init__
def reshaped(self, offer, request_no_context_takeover=False, request_max_window_bits=0,
             no_context_takeover=None, window_bits=None, mem_level=None):
    init(self, offer, request_no_context_takeover, request_max_window_bits,
         no_context_takeover, window_bits, mem_level)
compress_deflate.PerMessageDeflateOfferAccept.__init__ = reshaped
"""

RENAMED_DEFLATE_WINDOW = """
from autobahn.websocket import compress_deflate
init = compress_deflate.PerMessageDeflate.__init__
def renamed(self, *args, **kwargs):
    init(self, *args, **kwargs)
    self.server_window_bits = self.__dict__.pop("server_max_window_bits")
compress_deflate.PerMessageDeflate.__init__ = renamed
"""


@pytest.mark.parametrize(
    ("patch", "dependency", "distribution", "problem"),
    [
        (
            RENAMED_TEMP_DATA_LEN,
            "Twisted",
            "Twisted",
            "has no twisted.internet.abstract.FileDescriptor._tempDataLen",
        ),
        (
            NO_SEND_CLOSE_FRAME,
            "autobahn",
            "autobahn",
            "has no autobahn.websocket.protocol.WebSocketProtocol.sendCloseFrame",
        ),
        (
            RESHAPED_PROTOCOL_OPTIONS,
            "autobahn",
            "autobahn",
            "changed autobahn.websocket.protocol.WebSocketServerFactory.setProtocolOptions "
            "(it takes no keyword argument closeHandshakeTimeout, perMessageCompressionAccept)",
        ),
        (
            NO_PFORMAT,
            "autobahn",
            "autobahn",
            "has no autobahn.websocket.protocol.pformat",
        ),
        (
            NO_ASYNCIO_LOOP,
            "Twisted",
            "Twisted",
            "has no twisted.internet.asyncioreactor.AsyncioSelectorReactor._asyncioEventloop",
        ),
        (
            RESHAPED_LISTEN_ERROR,
            "Daphne",
            "daphne",
            "changed daphne.server.Server.listen_error (expected parameters (failure, ...)",
        ),
        (NO_DISPATCH, "Channels", "channels", "has no channels.consumer.AsyncConsumer.dispatch"),
        (
            NO_ALL_HEADERS_RECEIVED,
            "Twisted",
            "Twisted",
            "has no twisted.web.http.HTTPChannel.allHeadersReceived",
        ),
        (
            RESHAPED_CONTENT_CHUNK,
            "Twisted",
            "Twisted",
            "changed twisted.web.http.Request.handleContentChunk "
            "(expected parameters (data, ...), found ['chunk', 'final'])",
        ),
        (
            REQUEST_WITHOUT_CLIENT_ADDR,
            "Daphne",
            "daphne",
            "has no daphne.http_protocol.WebRequest.client_addr",
        ),
        (
            RESHAPED_DEFLATE_ACCEPT,
            "autobahn",
            "autobahn",
            "changed autobahn.websocket.compress_deflate.PerMessageDeflateOfferAccept.__init__ "
            "(it takes no keyword argument max_message_size)",
        ),
        (
            RENAMED_DEFLATE_WINDOW,
            "autobahn",
            "autobahn",
            "has no autobahn.websocket.compress_deflate.PerMessageDeflate.server_max_window_bits",
        ),
    ],
    ids=[
        "twisted-attribute",
        "autobahn-method",
        "autobahn-signature",
        "autobahn-global",
        "reactor",
        "daphne",
        "channels",
        "twisted-http-hook",
        "twisted-http-signature",
        "daphne-request",
        "autobahn-deflate-signature",
        "autobahn-deflate-attribute",
    ],
)
def test_serve_refuses_to_start_when_a_private_name_is_gone_or_changed(
    patch, dependency, distribution, problem
):
    result = serve_with(patch)
    version = importlib.metadata.version(distribution)
    assert result.returncode != 0
    assert f"refusing to start: {dependency} {version} {problem}" in result.stderr
    assert "which chatproject.transport relies on" in result.stderr
    assert "chatproject/transport/__init__.py" in result.stderr
    # One message, no traceback, and nothing served.
    refusals = [line for line in result.stderr.splitlines() if "refusing to start" in line]
    assert len(refusals) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "server_starting" not in result.stdout + result.stderr


# -------------------------------------------------------- the check's own pieces


class Old:
    STATE_OPEN = 3

    def __init__(self) -> None:
        self.buffered = 0

    def close(self, code=None, isReply=False):
        pass

    async def handle(self, protocol, message):
        pass


def outcome(requirement: internals.Requirement) -> str:
    try:
        requirement.check()
    except internals.Gone:
        return "gone"
    except internals.Changed as changed:
        return f"changed: {changed}"
    return "ok"


def test_each_kind_of_check_tells_present_from_gone_from_changed():
    here = f"{__name__}.Old"
    assert outcome(internals.method("x", f"{here}.close", keywords=("code", "isReply"))) == "ok"
    assert outcome(internals.method("x", f"{here}.shut", keywords=("code",))) == "gone"
    assert outcome(internals.method("x", f"{here}.close", keywords=("reason",))) == (
        "changed: it takes no keyword argument reason"
    )
    handle = internals.method("x", f"{here}.handle", positional=("protocol", "message"))
    assert outcome(handle) == "ok"
    assert outcome(internals.method("x", f"{here}.handle", positional=("message",))).startswith(
        "changed: expected parameters (message, ...)"
    )
    assert outcome(internals.method("x", f"{here}.close", coroutine=True)) == (
        "changed: it is no longer a coroutine function"
    )
    assert outcome(internals.class_attribute("x", f"{here}.STATE_OPEN", int)) == "ok"
    assert outcome(internals.class_attribute("x", f"{here}.STATE_OPEN", bytes)).startswith(
        "changed: expected bytes"
    )
    assert outcome(internals.assigned_in("x", here, "buffered", by="__init__")) == "ok"
    assert outcome(internals.assigned_in("x", here, "_buffered", by="__init__")) == "gone"
    assert outcome(internals.instance_attribute("x", here, "buffered", int, build=Old)) == "ok"
    assert outcome(internals.instance_attribute("x", here, "_buffered", int, build=Old)) == "gone"
    assert outcome(internals.method("x", "no_such_module.Thing.method")) == "gone"


def test_the_refusal_names_the_dependency_its_version_and_the_name():
    requirement = internals.Requirement("Twisted", "twisted.Thing._gone", lambda: None)
    message = internals.refusal(requirement, internals.Gone())
    version = importlib.metadata.version("Twisted")
    assert message == (
        f"refusing to start: Twisted {version} has no twisted.Thing._gone, which "
        "chatproject.transport relies on (see the list in chatproject/transport/__init__.py)"
    )


def test_the_header_lists_every_name_the_check_checks():
    header = chatproject.transport.__doc__ or ""
    for requirement in internals.REQUIREMENTS:
        short = ".".join(requirement.name.split(".")[-2:])  # e.g. FileDescriptor.offset
        assert short in header, f"{requirement.name} is checked but not listed"
        assert requirement.dependency in internals.DISTRIBUTIONS


# ---------------------------------------------------------------- the module rules


def modules() -> list[Path]:
    return sorted(PACKAGE.glob("*.py"))


def test_the_transport_imports_no_app_of_the_project():
    """An import-linter contract says the same; this keeps the rule next to the code."""
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in {"messaging", "rooms", "accounts"}, (
                    f"{path.name} imports {name}"
                )


def test_the_transport_never_reads_an_attribute_with_a_silent_default():
    """Past the start-up check, private names are read directly: `getattr(x, name,
    default)` would turn a renamed attribute into a wrong value instead of an error."""
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "getattr":
                assert len(node.args) < 3, f"{path.name}:{node.lineno} getattr with a default"


def test_importing_the_transport_interface_stays_cheap():
    result = run_python(
        """
        import sys
        from chatproject.transport import CLOSE_RESTARTING, is_draining
        assert not is_draining() and CLOSE_RESTARTING == 1012
        heavy = [m for m in ("daphne", "twisted", "autobahn") if m in sys.modules]
        print(heavy)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# ---------------------------------------------------------------- the access log


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []

    def info(self, event: str, **fields) -> None:
        self.events.append((event, fields))


def test_a_socket_close_is_logged_under_its_own_name(monkeypatch):
    """The consumer logs `ws_disconnected` (with the user); the access log's line for the
    same close has another name, so one close is never two `ws_disconnected` lines."""
    recorder = Recorder()
    monkeypatch.setattr(access_log, "access_log", recorder)
    details = {"path": "/ws/?token=secret", "client": "127.0.0.1:5000"}
    access_log.log_action("websocket", "disconnected", details)
    access_log.log_action("websocket", "rejected", details)
    access_log.log_action("websocket", "connected", details)  # the consumer logs this one
    assert recorder.events == [
        ("ws_connection_closed", {"path": "/ws/?token=[redacted]", "client": "127.0.0.1:5000"}),
        ("ws_rejected", {"path": "/ws/?token=[redacted]", "client": "127.0.0.1:5000"}),
    ]


# ------------------------------------------------------------ X-Forwarded-* (proxies)

TRUSTED = [ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.0.0.0/8")]


def scope_from(peer: str, *headers: tuple[bytes, bytes], kind: str = "http") -> dict:
    scope = {"type": kind, "client": [peer, 50000], "headers": list(headers)}
    if kind == "http":
        scope["scheme"] = "http"  # Daphne sets it for HTTP only
    apply_forwarded(scope, TRUSTED)
    return scope


def client_of(peer: str, *headers: tuple[bytes, bytes]) -> list:
    return scope_from(peer, *headers)["client"]


XFF = b"x-forwarded-for"


@pytest.mark.parametrize(
    ("chain", "client"),
    [
        ("5.6.7.8", "5.6.7.8"),
        ("1.2.3.4, 5.6.7.8", "5.6.7.8"),  # the left-most entry is the client's own word
        ("1.2.3.4, 5.6.7.8, 10.0.0.2", "5.6.7.8"),  # trusted hops are skipped
        ("10.0.0.3, 10.0.0.2", "10.0.0.3"),  # every hop trusted: the first
        ("1.2.3.4, not-an-address, 10.0.0.2", "10.0.0.2"),  # ends at who reported it
        ("2001:db8::1", "2001:db8::1"),
        ("[2001:db8::2]", "2001:db8::2"),
        ("::ffff:5.6.7.8", "5.6.7.8"),
    ],
)
def test_the_client_is_the_right_most_untrusted_forwarded_address(chain, client):
    assert client_of("127.0.0.1", (XFF, chain.encode())) == [client, 0]


def test_repeated_forwarded_for_lines_read_as_one_list():
    headers = ((XFF, b"1.2.3.4"), (b"x-forwarded-port", b"443"), (XFF, b"5.6.7.8, 10.0.0.1"))
    assert client_of("10.0.0.9", *headers) == ["5.6.7.8", 443]


def test_an_untrusted_peer_is_the_client_whatever_it_forwards():
    headers = ((XFF, b"5.6.7.8"), (b"x-forwarded-port", b"1"), (b"x-forwarded-proto", b"https"))
    scope = scope_from("192.0.2.1", *headers)
    assert (scope["client"], scope["scheme"]) == (["192.0.2.1", 50000], "http")
    websocket = scope_from("192.0.2.1", *headers, kind="websocket")
    assert (websocket["client"], websocket["scheme"]) == (["192.0.2.1", 50000], "ws")


def test_a_trusted_proxy_without_forwarded_for_is_the_client():
    assert client_of("127.0.0.1") == ["127.0.0.1", 50000]


@pytest.mark.parametrize(
    ("kind", "proto", "scheme"),
    [
        ("http", b"https", "https"),
        ("http", b"HTTP", "http"),
        ("http", b"gopher", "http"),
        ("http", b"http, https", "https"),  # the nearest proxy's word
        ("websocket", b"https", "wss"),
        ("websocket", b"wss", "wss"),
        ("websocket", b"http", "ws"),
    ],
)
def test_the_scheme_follows_a_trusted_proxys_forwarded_proto(kind, proto, scheme):
    assert scope_from("127.0.0.1", (b"x-forwarded-proto", proto), kind=kind)["scheme"] == scheme


def test_addresses_are_parsed_strictly():
    assert parse_address("unknown") is None
    assert parse_address("1.2.3.4:80") is None
    assert str(parse_address(" ::ffff:10.1.2.3 ")) == "10.1.2.3"
    peer = ipaddress.ip_address("127.0.0.1")
    assert str(forwarded_client(peer, [], TRUSTED)) == "127.0.0.1"


# ------------------------------------------------------------- permessage-deflate


def inflate(frame: bytes, window_bits: int = 15) -> bytes:
    """A compressed server frame's message, inflated alone (RFC 7692 7.2.2)."""
    assert frame[0] == 0xC1  # FIN, RSV1, text
    length, start = frame[1], 2
    if length == 126:
        length, start = int.from_bytes(frame[2:4], "big"), 4
    elif length == 127:
        length, start = int.from_bytes(frame[2:10], "big"), 10
    assert len(frame) - start == length
    inflater = zlib.decompressobj(-window_bits)
    return inflater.decompress(frame[start:] + b"\x00\x00\xff\xff")


@pytest.mark.parametrize("size", [300, 5_000, 700_000])  # the three header lengths
def test_a_deflated_frame_inflates_to_the_message_with_the_window_it_names(size):
    text = ('{"type":"message","content":"' + "see you at the standup " * size)[:size] + '"}'
    frame = deflate.deflated(Frame(text).wire, 9)
    assert len(frame) < len(text) // 2
    # Compressed with a 512-byte window: a client held to 9 bits reads it.
    assert inflate(frame, 9) == text.encode()


def test_one_event_is_compressed_once_for_every_socket_with_the_same_window():
    text = '{"type":"message","content":"' + "hello there " * 40 + '"}'
    wire = Frame(text).wire
    first = deflate.deflated(wire, 11)
    assert deflate.deflated(wire, 11) is first  # the next socket: no second compression
    assert deflate.deflated(Frame(text).wire, 11) is not first  # another event, same text
    assert deflate.deflated(wire, 9) is not first  # a client that asked for a smaller window
    assert inflate(deflate.deflated(wire, 9)) == inflate(first)


def test_a_frame_compression_would_not_shrink_is_sent_plain():
    wire = Frame('{"type":"ack"}').wire
    assert deflate.deflated(wire, 11) is wire  # RSV1 clear: a valid uncompressed message


def test_autobahns_debug_values_are_formatted_only_when_shown():
    import pprint

    import autobahn.websocket.protocol

    from chatproject.transport.protocol import DeferredFormat, defer_debug_formatting

    options = {"autoPingInterval": 0, "failByDrop": False, "openHandshakeTimeout": 5}
    eager = autobahn.websocket.protocol.pformat
    try:
        defer_debug_formatting()
        deferred = autobahn.websocket.protocol.pformat(options)
        assert isinstance(deferred, DeferredFormat)  # nothing formatted yet
        assert str(deferred) == pprint.pformat(options)  # the same text when shown
    finally:
        autobahn.websocket.protocol.pformat = eager
