"""The start-up check of the private names listed at the top of
`chatproject/transport/__init__.py`.

Daphne, Twisted, autobahn and Channels do not promise these names; an upgrade may rename
one, and code that reads it through `getattr(..., default)` would go on silently wrong
(the 4408 bound never tripping, frames written ahead of queued bytes). So `serve` checks
each name before the server starts and refuses to start if one is gone or has another
shape; past the check the transport reads them directly.

Each entry of REQUIREMENTS names one private name and how it is checked: a method by its
parameters (`inspect.signature`), a class-level default on the class, an attribute set in
`__init__` on an instance built cheaply, and one set in another method (where no instance
can be built without a running server) by reading that method's source.

Nothing here imports Daphne, Twisted or autobahn until `check_dependencies` runs (importing
`daphne.server` installs Twisted's asyncio reactor).
"""

import ast
import asyncio
import importlib
import importlib.metadata
import inspect
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

LISTED_IN = "chatproject/transport/__init__.py"

# The dependency as the message names it, and its distribution for importlib.metadata.
DISTRIBUTIONS = {
    "Twisted": "Twisted",
    "autobahn": "autobahn",
    "Daphne": "daphne",
    "Channels": "channels",
}


class IncompatibleDependency(RuntimeError):
    """An installed dependency lacks, or changed, a private name the transport uses."""


class Gone(Exception):
    """The name does not exist."""


class Changed(Exception):
    """The name exists with another shape; the argument says which."""


@dataclass(frozen=True)
class Requirement:
    dependency: str  # a key of DISTRIBUTIONS
    name: str  # the dotted name, as listed in __init__.py
    check: Callable[[], None]  # raises Gone or Changed


def resolve(dotted: str) -> Any:
    """The object named `dotted`: the longest importable module, then attributes."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            found: Any = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        break
    else:
        raise Gone
    for attr in parts[split:]:
        try:
            found = getattr(found, attr)
        except AttributeError:
            raise Gone from None
    return found


# ------------------------------------------------------------------ kinds of check


def method(
    dependency: str,
    path: str,
    *,
    positional: tuple[str, ...] = (),
    keywords: tuple[str, ...] = (),
    coroutine: bool = False,
) -> Requirement:
    """A method called with `positional` first (in that order, after `self`) and/or with
    `keywords` by name."""

    def check() -> None:
        func = resolve(path)
        if not callable(func):
            raise Changed("it is no longer callable")
        parameters = inspect.signature(func).parameters
        names = [name for name in parameters if name != "self"]
        if names[: len(positional)] != list(positional):
            raise Changed(f"expected parameters ({', '.join(positional)}, ...), found {names}")
        by_name = [
            k
            for k in keywords
            if k not in parameters or parameters[k].kind is inspect.Parameter.POSITIONAL_ONLY
        ]
        if by_name:
            raise Changed(f"it takes no keyword argument {', '.join(by_name)}")
        if coroutine and not inspect.iscoroutinefunction(func):
            raise Changed("it is no longer a coroutine function")

    return Requirement(dependency, path, check)


def class_attribute(dependency: str, path: str, kind: type) -> Requirement:
    """A class-level default (Twisted and autobahn define several so)."""

    def check() -> None:
        value = resolve(path)
        if not isinstance(value, kind):
            raise Changed(f"expected {kind.__name__}, found {type(value).__name__}")

    return Requirement(dependency, path, check)


def subclass(dependency: str, path: str, base: str) -> Requirement:
    def check() -> None:
        cls, parent = resolve(path), resolve(base)
        if not (isinstance(cls, type) and issubclass(cls, parent)):
            raise Changed(f"it is no longer a {base}")

    return Requirement(dependency, path, check)


def instance_attribute(
    dependency: str, cls: str, attr: str, kind: type, *, build: Callable[[], Any]
) -> Requirement:
    """An attribute read on instances, set in `__init__` or a class-level default: checked
    on a real instance, built cheaply by `build`."""

    def check() -> None:
        instance = build()
        try:
            value = getattr(instance, attr)
        except AttributeError:
            raise Gone from None
        if not isinstance(value, kind):
            raise Changed(f"expected {kind.__name__}, found {type(value).__name__}")

    return Requirement(dependency, f"{cls}.{attr}", check)


def _file_descriptor() -> Any:
    """A Twisted FileDescriptor (the base of its TCP transports), built without a socket.
    Any truthy object stands for the reactor: `__init__` only stores it."""
    cls = resolve(FD)
    try:
        return cls(reactor=object())
    except Exception as exc:
        raise Changed(f"could not build a FileDescriptor to check it: {exc!r}") from exc


def _syntax(path: str) -> ast.AST:
    try:
        return ast.parse(textwrap.dedent(inspect.getsource(resolve(path))))
    except (OSError, TypeError) as exc:
        raise Changed(f"cannot read the source of {path} to check it") from exc


def _self_attributes(tree: ast.AST, *, stored: bool) -> Iterator[ast.Attribute]:
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "self"
            and isinstance(node.ctx, ast.Store) == stored
        ):
            yield node


def assigned_in(dependency: str, cls: str, attr: str, *, by: str) -> Requirement:
    """An instance attribute set in method `by` of `cls`, which runs only with a live
    server or connection: no instance can be built to look, so its source is read."""

    def check() -> None:
        stores = _self_attributes(_syntax(f"{cls}.{by}"), stored=True)
        if not any(a.attr == attr for a in stores):
            raise Gone

    return Requirement(dependency, f"{cls}.{attr}", check)


def used_in(dependency: str, path: str, attr: str) -> Requirement:
    """Method `path` reads or calls `self.<attr>`: the framework goes through our override."""

    def check() -> None:
        if not any(a.attr == attr for a in _self_attributes(_syntax(path), stored=False)):
            raise Changed(f"it no longer goes through self.{attr}")

    return Requirement(dependency, path, check)


def assigned_before_call(
    dependency: str, cls: str, attr: str, *, by: str, call: str
) -> Requirement:
    """Method `by` sets `self.<attr>` before it calls `<call>()`."""

    def check() -> None:
        tree = _syntax(f"{cls}.{by}")
        stores = [a.lineno for a in _self_attributes(tree, stored=True) if a.attr == attr]
        calls = [
            node.lineno
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == call
        ]
        if not stores:
            raise Gone
        if not calls or min(stores) > min(calls):
            raise Changed(f"{by} no longer sets it before calling {call}()")

    return Requirement(dependency, f"{cls}.{attr}", check)


def global_called_in(dependency: str, module: str, name: str, *, by: str) -> Requirement:
    """`module` has a callable global `name`, and method `by` calls it by that name (so
    replacing the global changes what `by` calls)."""

    def check() -> None:
        if not callable(resolve(f"{module}.{name}")):
            raise Gone
        calls = [
            node
            for node in ast.walk(_syntax(by))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        ]
        if not any(node.func.id == name for node in calls):  # type: ignore[attr-defined]
            raise Changed(f"{by} no longer calls {name}()")

    return Requirement(dependency, f"{module}.{name}", check)


def strings_in(dependency: str, path: str, *keys: str) -> Requirement:
    """Method `path` uses the string constants `keys` (dictionary keys)."""

    def check() -> None:
        found = {
            node.value
            for node in ast.walk(_syntax(path))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
        }
        missing = [key for key in keys if key not in found]
        if missing:
            raise Changed(f"it no longer uses the connection keys {missing}")

    return Requirement(dependency, path, check)


def _reactor_loop() -> None:
    # `daphne.server` installs the asyncio reactor when imported; `serve` imports it anyway.
    importlib.import_module("daphne.server")
    from twisted.internet import reactor

    try:
        loop = reactor._asyncioEventloop
    except AttributeError:
        raise Gone from None
    if not isinstance(loop, asyncio.AbstractEventLoop):
        raise Changed(f"expected an asyncio event loop, found {type(loop).__name__}")


def _handler_names() -> None:
    get_handler_name = resolve("channels.consumer.get_handler_name")
    name = get_handler_name({"type": "websocket.receive"})
    if name != "websocket_receive":
        raise Changed(f"'websocket.receive' is now handled by {name!r}")


def _deflate() -> Any:
    """A server's permessage-deflate as autobahn builds it from an accepted offer."""
    offer = resolve(f"{DEFLATE}.PerMessageDeflateOffer")()
    accept = resolve(f"{DEFLATE}.PerMessageDeflateOfferAccept")(
        offer, no_context_takeover=True, window_bits=11, mem_level=4
    )
    return resolve(f"{DEFLATE}.PerMessageDeflate").create_from_offer_accept(True, accept)


# ------------------------------------------------------------------ the list

FD = "twisted.internet.abstract.FileDescriptor"
TCP = "twisted.internet.tcp"
WSP = "autobahn.websocket.protocol.WebSocketProtocol"
WSF = "autobahn.websocket.protocol.WebSocketServerFactory"
DEFLATE = "autobahn.websocket.compress_deflate"
SERVER = "daphne.server.Server"
DAPHNE_WS = "daphne.ws_protocol.WebSocketProtocol"
DAPHNE_REQUEST = "daphne.http_protocol.WebRequest"
CHANNEL = "twisted.web.http.HTTPChannel"
CONSUMER = "channels.consumer.AsyncConsumer"

REQUIREMENTS = [
    # Twisted: the TCP transport's write buffer (buffers.pending_bytes, buffers.write_now).
    instance_attribute("Twisted", FD, "dataBuffer", bytes, build=_file_descriptor),
    instance_attribute("Twisted", FD, "offset", int, build=_file_descriptor),
    instance_attribute("Twisted", FD, "_tempDataLen", int, build=_file_descriptor),
    instance_attribute("Twisted", FD, "connected", int, build=_file_descriptor),
    instance_attribute("Twisted", FD, "disconnecting", int, build=_file_descriptor),
    subclass("Twisted", f"{TCP}.Server", FD),
    method("Twisted", f"{TCP}.Connection.writeSomeData", positional=("data",)),
    class_attribute("Twisted", f"{TCP}.Connection.TLS", bool),
    Requirement(
        "Twisted",
        "twisted.internet.asyncioreactor.AsyncioSelectorReactor._asyncioEventloop",
        _reactor_loop,
    ),
    # Twisted: the HTTP/1.1 channel's hooks (edge.py: body limit, head deadline).
    used_in("Twisted", "twisted.internet.protocol.Factory.buildProtocol", "protocol"),
    used_in("Twisted", f"{CHANNEL}.lineReceived", "allHeadersReceived"),
    method("Twisted", f"{CHANNEL}.allHeadersReceived"),
    method("Twisted", f"{CHANNEL}.rawDataReceived", positional=("data",)),
    method("Twisted", f"{CHANNEL}.requestDone", positional=("request",)),
    instance_attribute("Twisted", CHANNEL, "requests", list, build=lambda: resolve(CHANNEL)()),
    class_attribute("Twisted", f"{CHANNEL}.persistent", int),
    assigned_in("Twisted", CHANNEL, "_command", by="lineReceived"),
    assigned_in("Twisted", CHANNEL, "_path", by="lineReceived"),
    method("Twisted", "twisted.web.http.Request.handleContentChunk", positional=("data",)),
    # autobahn: close frames with any code, the compression flag, states, dropping.
    method("autobahn", f"{WSP}.sendCloseFrame", keywords=("code", "isReply")),
    assigned_in("autobahn", WSP, "_perMessageCompress", by="_connectionMade"),
    class_attribute("autobahn", f"{WSP}.STATE_OPEN", int),
    class_attribute("autobahn", f"{WSP}.STATE_CLOSED", int),
    method("autobahn", f"{WSP}.dropConnection", keywords=("abort",)),
    # autobahn formats a debug line of every connection's options eagerly (protocol.py).
    global_called_in(
        "autobahn", "autobahn.websocket.protocol", "pformat", by=f"{WSP}._connectionMade"
    ),
    method(
        "autobahn",
        f"{WSF}.setProtocolOptions",
        keywords=("failByDrop", "closeHandshakeTimeout", "perMessageCompressionAccept"),
    ),
    # autobahn: permessage-deflate (deflate.py): the accept, and what send_wire reads of
    # the negotiated extension to compress a frame once for many sockets.
    method(
        "autobahn",
        f"{DEFLATE}.PerMessageDeflateOfferAccept.__init__",
        positional=("offer",),
        keywords=(
            "request_no_context_takeover",
            "request_max_window_bits",
            "no_context_takeover",
            "window_bits",
            "mem_level",
            "max_message_size",
        ),
    ),
    instance_attribute(
        "autobahn",
        f"{DEFLATE}.PerMessageDeflateOffer",
        "accept_no_context_takeover",
        bool,
        build=lambda: resolve(f"{DEFLATE}.PerMessageDeflateOffer")(),
    ),
    instance_attribute(
        "autobahn",
        f"{DEFLATE}.PerMessageDeflateOffer",
        "accept_max_window_bits",
        bool,
        build=lambda: resolve(f"{DEFLATE}.PerMessageDeflateOffer")(),
    ),
    instance_attribute(
        "autobahn",
        f"{DEFLATE}.PerMessageDeflateOffer",
        "request_max_window_bits",
        int,
        build=lambda: resolve(f"{DEFLATE}.PerMessageDeflateOffer")(),
    ),
    instance_attribute(
        "autobahn",
        f"{DEFLATE}.PerMessageDeflate",
        "server_no_context_takeover",
        bool,
        build=_deflate,
    ),
    instance_attribute(
        "autobahn",
        f"{DEFLATE}.PerMessageDeflate",
        "server_max_window_bits",
        int,
        build=_deflate,
    ),
    # Daphne: what the copied create_application, the ready callable and the drain use.
    method("Daphne", f"{SERVER}.create_application", positional=("protocol", "scope")),
    assigned_in("Daphne", SERVER, "connections", by="run"),
    assigned_in("Daphne", SERVER, "application", by="__init__"),
    method("Daphne", f"{SERVER}.handle_reply", positional=("protocol", "message"), coroutine=True),
    strings_in("Daphne", f"{SERVER}.application_checker", "application_instance", "disconnected"),
    method("Daphne", f"{SERVER}.listen_error", positional=("failure",)),
    assigned_before_call("Daphne", SERVER, "ws_factory", by="run", call="ready_callable"),
    assigned_before_call("Daphne", SERVER, "http_factory", by="run", call="listen"),
    assigned_in("Daphne", DAPHNE_REQUEST, "client_addr", by="process"),
    method("Daphne", f"{DAPHNE_WS}.serverSend", positional=("content", "binary")),
    method("Daphne", f"{DAPHNE_WS}.serverClose", positional=("code",)),
    used_in("Daphne", f"{DAPHNE_WS}.handle_reply", "serverClose"),
    assigned_in("Daphne", DAPHNE_WS, "client_addr", by="onConnect"),
    # Channels: what messaging.consumers.ChatConsumer overrides or reads.
    method("Channels", f"{CONSUMER}.dispatch", positional=("message",), coroutine=True),
    used_in("Channels", f"{CONSUMER}.__call__", "dispatch"),
    Requirement("Channels", "channels.consumer.get_handler_name", _handler_names),
    assigned_in("Channels", CONSUMER, "base_send", by="__call__"),
]


def refusal(requirement: Requirement, problem: Exception) -> str:
    dist = DISTRIBUTIONS[requirement.dependency]
    try:
        version = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        version = "(not installed)"
    what = f"{requirement.dependency} {version}"
    if isinstance(problem, Changed):
        found = f"changed {requirement.name} ({problem})"
    else:
        found = f"has no {requirement.name}"
    return (
        f"refusing to start: {what} {found}, which chatproject.transport relies on "
        f"(see the list in {LISTED_IN})"
    )


def check_dependencies() -> None:
    """Raise IncompatibleDependency, naming the first private name that is missing or
    changed, with its dependency and installed version."""
    for requirement in REQUIREMENTS:
        try:
            requirement.check()
        except (Gone, Changed) as problem:
            raise IncompatibleDependency(refusal(requirement, problem)) from None
