"""What the rest of the project may know of the transport without importing Daphne or
Twisted: whether the process is draining, and the close codes the transport sends.

The consumer and the health view import this on every start; it must stay free of
Daphne, Twisted and autobahn imports (importing `daphne.server` installs a reactor).
"""

from collections.abc import Awaitable, Callable

# Close codes the transport itself sends (and the consumer asks it to send).
CLOSE_RESTARTING = 1012  # the process is draining: reconnect (to another process)
CLOSE_TRY_AGAIN = 1013  # the socket could not be set up (Redis failing): try again later
CLOSE_TOO_SLOW = 4408  # the client did not read: its bounded outgoing buffer overflowed

_draining = False

# Coroutines the drain awaits after closing the WebSockets, each given the seconds left:
# protocols served beside them over plain HTTP (Socket.IO's long-polling) end their own
# connections there (`on_drain`).
_drain_hooks: list[Callable[[float], Awaitable[None]]] = []


def on_drain(hook: Callable[[float], Awaitable[None]]) -> None:
    _drain_hooks.append(hook)


def drain_hooks() -> list[Callable[[float], Awaitable[None]]]:
    return list(_drain_hooks)


def is_draining() -> bool:
    """True once SIGTERM (or SIGINT) started the graceful stop: /readyz answers 503 and
    new sockets are closed with CLOSE_RESTARTING."""
    return _draining


def start_draining() -> bool:
    """Mark the process as draining; False if it already was (a second signal)."""
    global _draining
    if _draining:
        return False
    _draining = True
    return True
