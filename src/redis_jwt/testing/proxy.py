"""An asyncio TCP proxy for injecting network faults between a client and Redis."""

from __future__ import annotations

import asyncio
import contextlib
import time
from types import TracebackType
from typing import Self

from redis_jwt.testing.server import _require_loopback

__all__ = ["TCPProxy"]

_CHUNK_BYTES = 64 * 1024
_TICK_SECONDS = 0.05
_HEAD_BYTES = 4096


class _Link:
    """One proxied client connection and its upstream connection."""

    def __init__(self, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream = upstream
        # Set when a request matched drop_next_reply(): its reply is swallowed.
        self.doomed = False
        #: The markers of :meth:`TCPProxy.throttle` this client has sent.
        self.marks: set[bytes] = set()
        #: The first bytes the client sent (its handshake), for markers set later.
        self.head = b""

    def abort(self) -> None:
        for writer in (self.client, self.upstream):
            writer.transport.abort()


class TCPProxy:
    """A loopback TCP proxy that can add latency, black-hole traffic or cut connections.

    Only bytes already read are held (at most one chunk per direction per connection):
    while paused or delaying, the proxy stops reading, so TCP flow control pushes back.

    Args:
        upstream_host: Where to forward to.
        upstream_port: Upstream port.
        host: Loopback address to listen on.
        port: Listening port; ``0`` picks a free one at :meth:`start`.

    Attributes:
        delay_seconds: Latency added before forwarding each chunk, in each direction.
        refuse: When true, new connections are closed immediately.
        bytes_up: Bytes forwarded client -> upstream.
        bytes_down: Bytes forwarded upstream -> client.
        connections_total: Connections accepted and connected upstream.
        round_trips: Client -> upstream chunks forwarded.
        replies_dropped: Replies swallowed by :meth:`drop_next_reply`.

    :meth:`throttle` slows only the connections that sent a marker (for example
    the name a client gives itself with ``CLIENT SETNAME``), leaving the others alone.
    """

    def __init__(
        self, upstream_host: str, upstream_port: int, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        _require_loopback(host)
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self.delay_seconds = 0.0
        self.refuse = False
        self.bytes_up = 0
        self.bytes_down = 0
        self.connections_total = 0
        self.round_trips = 0
        self.replies_dropped = 0
        self._drop_marker: bytes | None = None
        self._server: asyncio.Server | None = None
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._links: set[_Link] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._pumps: set[asyncio.Task[None]] = set()
        self._throttles: dict[bytes, tuple[float, float | None]] = {}

    def __repr__(self) -> str:
        return f"<TCPProxy {self.host}:{self._port} -> {self.upstream_host}:{self.upstream_port}>"

    @property
    def port(self) -> int:
        """The listening port (known after :meth:`start`)."""
        if self._port is None:
            raise RuntimeError("the proxy is not started")
        return self._port

    @property
    def url(self) -> str:
        """``redis://host:port/0`` pointing at the proxy."""
        return f"redis://{self.host}:{self.port}/0"

    @property
    def paused(self) -> bool:
        """Whether traffic is currently held."""
        return not self._flowing.is_set()

    async def start(self) -> None:
        """Start listening."""
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._accept, self.host, self._requested_port, reuse_address=True
        )
        self._port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening, abort every connection and wait (bounded) for its tasks."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        self._flowing.set()
        self.drop_connections()
        # Only the pumps are cancelled: cancelling asyncio's own client_connected_cb
        # task makes Python 3.11 log a spurious CancelledError traceback.
        for pump in list(self._pumps):
            pump.cancel()
        handlers = list(self._handlers)
        if handlers:
            _, pending = await asyncio.wait(handlers, timeout=5.0)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def pause(self) -> None:
        """Hold all bytes in both directions without closing anything."""
        self._flowing.clear()

    def resume(self) -> None:
        """Forward held and new bytes again."""
        self._flowing.set()

    def drop_next_reply(self, containing: bytes = b"") -> None:
        """Lose the reply to the next request that contains ``containing``.

        The request is forwarded, so the server executes it; its reply is then
        swallowed and the connection aborted, as when a network path fails
        between the server answering and the client reading. Fires once.
        """
        self._drop_marker = containing

    def throttle(
        self, marker: bytes, *, delay_seconds: float = 0.0, bytes_per_second: float | None = None
    ) -> None:
        """Slow the connections whose client has sent ``marker``, from then on.

        Each chunk of such a connection, in each direction, waits until
        ``delay_seconds`` after it was read (re-read while waiting, so a lower
        delay takes effect at once), then is forwarded at most
        ``bytes_per_second`` (a trickle). Calling again changes the values;
        :meth:`unthrottle` ends it. A connection that sent the marker before this
        call is slowed too.
        """
        if delay_seconds < 0 or (bytes_per_second is not None and bytes_per_second <= 0):
            raise ValueError("delay_seconds must be >= 0 and bytes_per_second > 0")
        self._throttles[marker] = (delay_seconds, bytes_per_second)
        for link in self._links:
            if marker in link.head:
                link.marks.add(marker)

    def unthrottle(self, marker: bytes) -> None:
        """Forward the connections that sent ``marker`` at full speed again."""
        self._throttles.pop(marker, None)

    def _throttle_of(self, link: _Link) -> tuple[float, float | None]:
        delay, rate = 0.0, None
        for mark in link.marks:
            mark_delay, mark_rate = self._throttles.get(mark, (0.0, None))
            delay = max(delay, mark_delay)
            if mark_rate is not None:
                rate = mark_rate if rate is None else min(rate, mark_rate)
        return delay, rate

    async def _throttled(self, link: _Link, writer: asyncio.StreamWriter, data: bytes) -> None:
        read_at = time.monotonic()
        # Bounded: the delay is re-read every tick, and a tick is at most 50 ms.
        while (wait := read_at + self._throttle_of(link)[0] - time.monotonic()) > 0:
            await asyncio.sleep(min(wait, _TICK_SECONDS))
        while data:
            rate = self._throttle_of(link)[1]
            if rate is None:
                writer.write(data)
                return
            piece = max(1, int(rate * _TICK_SECONDS))
            writer.write(data[:piece])
            data = data[piece:]
            await writer.drain()
            if data:
                await asyncio.sleep(_TICK_SECONDS)

    def drop_connections(self) -> None:
        """Abort (RST) every current client and upstream connection."""
        for link in list(self._links):
            link.abort()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._serve(reader, writer)
        finally:
            self._handlers.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refuse or self._server is None:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(
                self.upstream_host, self.upstream_port
            )
        except OSError:
            writer.transport.abort()
            return
        link = _Link(writer, up_writer)
        self._links.add(link)
        self.connections_total += 1
        pumps = [
            asyncio.create_task(self._pump(reader, up_writer, link, upstream=True)),
            asyncio.create_task(self._pump(up_reader, writer, link, upstream=False)),
        ]
        self._pumps.update(pumps)
        try:
            # Either side finishing ends the connection, as a real middlebox would.
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            self._pumps.difference_update(pumps)
            self._links.discard(link)
            link.abort()

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        link: _Link,
        *,
        upstream: bool,
    ) -> None:
        with contextlib.suppress(OSError):
            while True:
                data = await reader.read(_CHUNK_BYTES)
                if not data:
                    return
                if self.delay_seconds > 0:
                    await asyncio.sleep(self.delay_seconds)
                await self._flowing.wait()
                marker = self._drop_marker
                if upstream and marker is not None and marker in data:
                    self._drop_marker = None
                    link.doomed = True
                elif not upstream and link.doomed:
                    self.replies_dropped += 1
                    link.abort()
                    return
                if upstream:
                    if len(link.head) < _HEAD_BYTES:
                        link.head = (link.head + data)[:_HEAD_BYTES]
                    link.marks.update(m for m in self._throttles if m in data)
                if link.marks:
                    await self._throttled(link, writer, data)
                else:
                    writer.write(data)
                await writer.drain()
                if upstream:
                    self.bytes_up += len(data)
                    self.round_trips += 1
                else:
                    self.bytes_down += len(data)
