"""Close WebSockets whose session ends: one event listener for every socket of a middleware.

A socket registers its session id with :class:`SessionWatch`; a ``destroyed``
or ``expired`` event for that id closes it with code 1008. One bus handler
serves every socket (a dict lookup per event, not one handler per socket), and
it is removed from the bus when the last socket ends, so nothing leaks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from ._asgi import Message, Receive, Send
from ._tasks import Supervisor
from .errors import AuthenticationError, SessionNotFound, StoreError
from .events import EventBus
from .models import Event, Session

__all__ = ["SessionWatch", "WatchedSocket"]


#: RFC 6455 7.4.1: "policy violation", the code for "your session is over".
POLICY_VIOLATION = 1008
_ENDED_REASON = "session ended"
#: The failure of a handshake whose session ended while its token was verified.
ENDED = SessionNotFound("the session ended during the handshake")


class WatchedSocket:
    """Wraps one WebSocket's ``receive``/``send`` so the server can end it.

    When the session ends, a close frame is sent at once (even if the app is busy
    sending), the app's pending and next ``receive()`` return
    ``websocket.disconnect`` with code 1008, and its next ``send()`` raises
    ``OSError`` as the ASGI spec says a send on a closed connection does.
    """

    __slots__ = ("_closed", "_closing", "_ended", "_receive", "_send", "ended_by_server")

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        self._ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._closed = False  # a close frame went out, or the client left
        self._closing: asyncio.Task[None] | None = None
        #: Whether the session ended while the socket was open.
        self.ended_by_server = False

    def end(self, tasks: Supervisor | None = None) -> None:
        """The session ended: close the socket (idempotent, callable from an event handler).

        Args:
            tasks: the owner of the task that sends the close frame (a
                :class:`SessionWatch`'s); one of the socket's own otherwise.
        """
        if not self._ended.done():
            self._ended.set_result(None)
            owner = tasks if tasks is not None else Supervisor()
            self._closing = owner.spawn(self._close(), name="redis-jwt-ws-close")

    async def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.ended_by_server = True
        # The client may have gone at the same moment: nothing left to tell it.
        with contextlib.suppress(OSError):
            await self._send(
                {"type": "websocket.close", "code": POLICY_VIOLATION, "reason": _ENDED_REASON}
            )

    async def receive(self) -> Message:
        """The app's ``receive``: the next message, or a disconnect once the session ended."""
        if not self._ended.done():
            # A child of this call, awaited (or cancelled) right here.
            pending = asyncio.ensure_future(self._receive())
            try:
                done, _ = await asyncio.wait(
                    (pending, self._ended), return_when=asyncio.FIRST_COMPLETED
                )
            except BaseException:
                pending.cancel()
                raise
            if pending in done:
                message = pending.result()
                if message["type"] == "websocket.disconnect":
                    self._closed = True
                return message
            pending.cancel()
        await self._close()
        return {"type": "websocket.disconnect", "code": POLICY_VIOLATION, "reason": _ENDED_REASON}

    async def send(self, message: Message) -> None:
        """The app's ``send``: refused once the server closed the socket."""
        if self._closed and self.ended_by_server:
            raise OSError("the WebSocket was closed because its session ended")
        if message["type"] == "websocket.close":
            self._closed = True
        await self._send(message)

    async def finish(self) -> None:
        """Wait for a close frame in flight (the app may return before it is sent)."""
        if self._closing is not None:
            await self._closing


class SessionWatch:
    """Routes ``destroyed``/``expired`` events to the sockets of their session."""

    __slots__ = ("_events", "_handshakes", "_sockets", "_tasks")

    def __init__(self, events: EventBus) -> None:
        self._events = events
        # Owns the close frames in flight; each socket's finish() awaits its own.
        self._tasks = Supervisor()
        self._sockets: dict[str, set[WatchedSocket]] = {}
        # One set per handshake being verified, collecting the sessions that end
        # meanwhile: a verify may race the end, and its event must not be missed.
        self._handshakes: list[set[str]] = []

    def _listening(self) -> bool:
        return bool(self._sockets) or bool(self._handshakes)

    def _listen(self) -> None:
        if not self._listening():
            self._events.on("destroyed", self._on_event)
            self._events.on("expired", self._on_event)

    def _unlisten(self) -> None:
        if not self._listening():
            self._events.off("destroyed", self._on_event)
            self._events.off("expired", self._on_event)

    def _on_event(self, event: Event) -> None:
        session_id = event.session_id
        if session_id is None:  # pragma: no cover - session events always name one
            return
        for ended in self._handshakes:
            ended.add(session_id)
        for socket in tuple(self._sockets.get(session_id, ())):
            socket.end(self._tasks)

    def begin_handshake(self) -> set[str]:
        """Start recording the sessions that end while a handshake verifies its token."""
        self._listen()
        ended: set[str] = set()
        self._handshakes.append(ended)
        return ended

    def end_handshake(self, ended: set[str]) -> None:
        """The handshake is decided; stop recording for it."""
        # By identity: two handshakes' sets may be equal.
        self._handshakes = [other for other in self._handshakes if other is not ended]
        self._unlisten()

    async def admit(
        self,
        verify: Callable[..., Awaitable[Session]],
        token: str,
        with_session: bool,
        socket: Callable[[], WatchedSocket],
    ) -> tuple[Session, WatchedSocket] | AuthenticationError | StoreError:
        """Verify a handshake's token and watch its socket, or say why to refuse it.

        Sessions that end while the token is verified are recorded, so that a
        handshake racing a logout is refused (``ENDED``) rather than left open.
        The caller serves the socket inside :meth:`watched`.
        """
        ended = self.begin_handshake()
        try:
            try:
                session = await verify(token, with_session=with_session)
            except (AuthenticationError, StoreError) as exc:
                return exc
            if session.session_id in ended:
                return ENDED
            watched = socket()
            self.add(session.session_id, watched)
            return session, watched
        finally:
            self.end_handshake(ended)

    @contextlib.asynccontextmanager
    async def watched(self, session: Session, socket: WatchedSocket) -> AsyncIterator[Session]:
        """Serve an admitted socket; when it ends, stop watching it and finish it."""
        try:
            yield session
        finally:
            self.remove(session.session_id, socket)
            await socket.finish()

    def add(self, session_id: str, socket: WatchedSocket) -> None:
        """Watch ``socket`` (call it before the handshake's recording ends)."""
        self._sockets.setdefault(session_id, set()).add(socket)

    def remove(self, session_id: str, socket: WatchedSocket) -> None:
        """Stop watching ``socket`` (it ended)."""
        sockets = self._sockets.get(session_id)
        if sockets is not None:
            sockets.discard(socket)
            if not sockets:
                del self._sockets[session_id]
        self._unlisten()
