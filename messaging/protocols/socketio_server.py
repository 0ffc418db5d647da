"""python-socketio's server for `/socket.io/` (SPEC 9.1): who a connection is, and the
Socket.IO events, dispatched to `messaging.protocols.socketio.SocketIOSession`s.

It refuses what it cannot parse by ending the connection cleanly (never a traceback);
the version, Origin and Engine.IO packet checks come before it (`socketio_app`).
"""

import asyncio
import uuid
from typing import Any

import socketio
from django.conf import settings
from engineio import packet as eio_packet

from chatproject.errors import ChatError
from chatproject.logs import get_logger
from chatproject.transport import CLOSE_RESTARTING
from messaging.consumers import _authenticate
from messaging.middleware import session_user, token_from_scope
from messaging.origins import header
from messaging.protocols.socketio import SocketIOSession

log = get_logger(__name__)


# Seconds a polling client has to fetch its close packet before its session is closed
# anyway (python-engineio refuses a closed session's polls, packets still queued and all).
POLL_GRACE = 5.0


async def close_engine(socket: Any, grace: float = POLL_GRACE) -> None:
    """Close an Engine.IO session, after what is queued for it. A WebSocket gets the close
    packet and is closed behind it; a polling client first fetches everything queued, the
    close packet last (at most `grace` seconds), then the session is closed."""
    if socket is None or socket.closed or socket.closing:
        return
    if socket.upgraded:
        await socket.close(wait=False, abort=False)
        socket.queue.put_nowait(None)  # python-engineio's writer then closes the WebSocket
        return
    await socket.send(eio_packet.Packet(eio_packet.CLOSE))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    while not socket.queue.empty() and not socket.closed and loop.time() < deadline:
        await asyncio.sleep(0.05)
    await socket.close(wait=False, abort=True)


def _scope_of(environ: dict[str, Any]) -> dict[str, Any]:
    return environ["asgi.scope"]


class Refused(socketio.exceptions.ConnectionRefusedError):
    def __init__(self, exc: ChatError) -> None:
        # socket.io-client: `err.message`, and `err.data` = {code, message}.
        super().__init__(exc.message, {"code": exc.code, "message": exc.message})


class ChatSocketIO(socketio.AsyncServer):
    """python-socketio's server, dispatching to `SocketIOSession`s; a packet it cannot
    parse ends its connection cleanly (no traceback)."""

    def __init__(self) -> None:
        super().__init__(
            async_mode="asgi",
            # Origins are checked before python-engineio sees a request
            # (`socketio_app`); what passes gets CORS headers.
            cors_allowed_origins=lambda origin: True,
            cors_credentials=True,
            async_handlers=False,  # a session's events in the order sent, as native
            logger=False,
            engineio_logger=False,
            max_http_buffer_size=settings.WEBSOCKET_MAX_FRAME_BYTES,
            ping_interval=25,
            ping_timeout=20,
        )
        self.sessions: dict[str, SocketIOSession] = {}
        self.tasks: set[asyncio.Future[Any]] = set()
        self.on("connect", self._connect)
        self.on("disconnect", self._disconnect)

    async def _connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        scope = dict(_scope_of(environ))
        token = auth.get("token") if isinstance(auth, dict) else None
        token = token or token_from_scope(scope)
        try:
            if token is not None:
                user, expires = await _authenticate(token)
                scope.update(user=user, token_exp=expires, auth_error=None, session_auth=None)
            else:
                person, session = await session_user(header(scope, b"cookie"))
                scope.update(user=person, token_exp=None, auth_error=None, session_auth=session)
        except ChatError as exc:
            raise Refused(exc) from None
        eio_sid = self.manager.eio_sid_from_sid(sid, "/")
        session = SocketIOSession(self, sid, eio_sid, scope)
        session.socket_id = uuid.uuid4().hex
        self.sessions[sid] = session
        # Started once Socket.IO has answered the connect: the session's first frame
        # (`authenticated`) must follow it. Its events wait for the start (`handle`).
        session.started = asyncio.ensure_future(self._start(session))

    async def _start(self, session: SocketIOSession) -> None:
        await asyncio.sleep(0)
        try:
            await session.connect()
        except Exception:
            log.exception("sio_start_failed")
            await session.close()

    async def _disconnect(self, sid: str, reason: Any = None) -> None:
        session = self.sessions.pop(sid, None)
        if session is None:
            return
        session._ended = True
        if session.started is not None:
            await asyncio.wait({session.started})
        await session.disconnect(code=1000)

    async def _handle_event_internal(
        self, server: Any, sid: str, eio_sid: str, data: Any, namespace: str, id: Any
    ) -> None:
        session = self.sessions.get(sid)
        if session is None or not data or not isinstance(data[0], str):
            await self.refuse(eio_sid, "an event without a name")
            return
        ack_id = id if isinstance(id, int) else None
        await session.handle(data[0], list(data[1:]), ack_id)

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        # Only text packets of the types a client sends: CONNECT, DISCONNECT, EVENT, ACK
        # (binary attachments are not accepted).
        if not isinstance(data, str) or data[:1] not in ("0", "1", "2", "3"):
            await self.refuse(eio_sid, "a binary or unknown packet")
            return
        try:
            await super()._handle_eio_message(eio_sid, data)
        except Exception as exc:
            await self.refuse(eio_sid, f"{type(exc).__name__}: {str(exc)[:100]}")

    async def refuse(self, eio_sid: str, why: str) -> None:
        """End a connection that sent what Socket.IO cannot take."""
        log.info("sio_bad_packet", reason=why)
        self.later(close_engine(self.eio.sockets.get(eio_sid)))

    def later(self, work: Any) -> None:
        """Run `work` in a task of its own, kept until it is done (the drain waits)."""
        task = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def end(self, sid: str, eio_sid: str, *, retry: bool = False) -> None:
        """The server ends a session: Socket.IO's disconnect (unless the client should
        `retry`), then Engine.IO's close (python-engineio then runs the disconnect
        handler, if Socket.IO's did not)."""
        try:
            if not retry:
                await self.disconnect(sid)
            await close_engine(self.eio.sockets.get(eio_sid))
        except Exception:
            log.exception("sio_end_failed")

    async def drain(self, timeout: float) -> None:
        """On SIGTERM: end every session and wait, at most `timeout` seconds, until their
        clean-up (presence, `user_offline`) is done and every polling client has fetched
        its close packet (a WebSocket one is closed by the transport's drain)."""
        polling = [
            socket
            for socket in self.eio.sockets.values()
            if not socket.closed and not socket.upgraded
        ]
        for session in list(self.sessions.values()):
            await session.close(code=CLOSE_RESTARTING)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (self.sessions or self.tasks) and loop.time() < deadline:
            await asyncio.sleep(0.05)
        while any(not s.queue.empty() for s in polling) and loop.time() < deadline:
            await asyncio.sleep(0.05)
        if polling:  # the last answers are on their way out
            await asyncio.sleep(min(0.2, max(0.0, deadline - loop.time())))
