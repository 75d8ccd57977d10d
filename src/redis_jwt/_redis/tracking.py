"""The invalidation links of the local cache: Redis server-assisted client-side caching.

One connection per primary (one for a standalone server or a Sentinel
primary) turns tracking on for itself and listens to it::

    CLIENT ID                                       -> <id>
    CLIENT TRACKING on REDIRECT <id> BCAST PREFIX <prefix>:
    SUBSCRIBE __redis__:invalidate

In broadcasting mode Redis announces every change of a key under the prefix
(a write, a ``DEL``, an expiry, an eviction, a ``FLUSHALL``), whoever made it,
to every connection tracking that prefix. Redirecting to the connection's own
id keeps it to one connection whose loss is seen at once: a killed link ends
tracking with it, and the end of the stream is seen. RESP2 and ``REDIRECT``
work on Redis 6.2 and 7.

**Invalidations are applied as the bytes arrive.** redis-py opens the
connection (addresses, TLS, credentials, Sentinel), then the link takes its
transport over with a protocol of its own that parses (hiredis) and applies
every invalidation inside ``data_received``, not in a task scheduled later.
Redis writes an invalidation before the reply to the command that caused it;
the event loop runs I/O callbacks before the tasks they wake. So once *any*
task of this process has seen a change complete (its own ``destroy``, another
instance's, a raw ``DEL``), no cache of this process can still serve what
changed. Across processes the delay is the invalidation's delivery time.

**Liveness is proved by round trips, not by traffic.** Every
:data:`PING_INTERVAL_SECONDS`, busy or not, each link sends a ``PING`` that
carries its send time. Its answer comes after every invalidation Redis wrote
to the link before reading it, so once it is in, the link is known current as
of that send time (:class:`~.links.RoundTrips`). The cache serves only while
every link's latest proof is younger than :data:`MAX_PROOF_AGE_SECONDS`
(:attr:`InvalidationLinks.alive_until`): a link that lags, stalls or trickles a
backlog keeps delivering bytes, but its proof ages and the cache is bypassed.
A ping unanswered for :data:`PING_TIMEOUT_SECONDS` ends the link (it
reconnects). So no instance serves a session more than
``MAX_PROOF_AGE_SECONDS`` after another instance's ``destroy`` returned (the
contract says 1.5 s; the rest is margin for a busy event loop).

**A database check covers what tracking does not announce** (``SWAPDB``,
see ``dbmark.py``): it is a round trip too, and takes part in the proof.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import hiredis
from redis import exceptions as rex
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection

from .._compat import asyncio_transport
from .._tasks import Supervisor, stop
from .dbmark import DatabaseMark
from .errors import LINK_FAILURES
from .links import Endpoint, RestartBackoff, RoundTrips, endpoints, keep_up, side_connection
from .store import AnyRedis

__all__ = ["InvalidationLinks"]

logger = logging.getLogger("redis_jwt")

#: A PING this often, traffic or not: the proof is renewed several times within
#: MAX_PROOF_AGE_SECONDS, so a busy (but not blocked) event loop keeps the cache.
PING_INTERVAL_SECONDS = 0.25
#: A link whose PING stays unanswered this long is closed and reconnected.
PING_TIMEOUT_SECONDS = 1.0
#: The cache is not served from when the latest proof (a round trip's send time) is this old.
MAX_PROOF_AGE_SECONDS = 1.0
_CHANNEL = b"__redis__:invalidate"
_PING = b"redis-jwt-cache"
_LAST_CHANCE_SECONDS = 0.02


def _nothing() -> None:
    pass


class _Link(asyncio.Protocol):
    """One tracking connection, read by this protocol once redis-py has opened it."""

    def __init__(self, conn: AbstractConnection, on_keys: Callable[[list[str] | None], None]):
        self.conn = conn
        self._on_keys = on_keys
        self._reader = hiredis.Reader()
        self.transport: asyncio.Transport | None = None
        self.proof = RoundTrips(PING_INTERVAL_SECONDS, PING_TIMEOUT_SECONDS, tag=_PING)
        loop = asyncio.get_running_loop()
        self.subscribed: asyncio.Future[None] = loop.create_future()
        #: Fails with the reason when the link is lost.
        self.lost: asyncio.Future[None] = loop.create_future()
        #: Called after every reply, and at once (not in a task) when the link drops.
        self.heard: Callable[[], None] = _nothing
        self.dropped: Callable[[], None] = _nothing

    def take_over(self) -> None:
        """Read the connection here from now on (redis-py has read every reply so far)."""
        transport = asyncio_transport(self.conn)
        transport.set_protocol(self)
        self.transport = transport

    def send(self, *words: str | bytes | int) -> None:
        """Write one command (its reply comes to :meth:`data_received`)."""
        if self.transport is None or self.transport.is_closing():
            raise rex.ConnectionError("the invalidation link is closed")
        self.transport.writelines(self.conn.pack_command(*words))

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while (reply := self._reader.gets()) is not False:
            self._reply(reply)

    def _reply(self, reply: Any) -> None:
        # Messages are applied but prove nothing: a lagging link delivers them too.
        kind = reply[0] if isinstance(reply, list) and reply else None
        if kind == b"message" and len(reply) == 3:
            keys = reply[2]
            if keys is None:  # FLUSHALL/FLUSHDB: everything is invalid
                self._on_keys(None)
            elif isinstance(keys, list):
                # A key that is not UTF-8 cannot be one of ours: "replace" is enough.
                self._on_keys([k.decode("utf-8", "replace") for k in keys])
            return
        if kind == b"subscribe":
            if not self.subscribed.done():
                self.subscribed.set_result(None)
            return
        if not (kind == b"pong" and len(reply) == 2 and self.proof.answered(reply[1])):
            # An error, or something this link never asked for.
            self._fail(rex.ConnectionError(f"unexpected reply on the invalidation link: {reply!r}"))
            return
        self.heard()

    def eof_received(self) -> bool | None:
        self._fail(rex.ConnectionError("the invalidation link was closed by the server"))
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or rex.ConnectionError("the invalidation link was closed"))

    def _fail(self, exc: BaseException) -> None:
        self.dropped()
        for future in (self.subscribed, self.lost):
            if not future.done():
                future.set_exception(exc)
        if self.transport is not None:
            self.transport.abort()

    async def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()
        for future in (self.subscribed, self.lost):
            if future.done() and not future.cancelled():
                future.exception()  # retrieved: no "never retrieved" warning
            future.cancel()
        with contextlib.suppress(Exception):
            await self.conn.disconnect(nowait=True)


class InvalidationLinks:
    """Keeps the tracking links up and reports what they say.

    Args:
        client: the data client, whose addresses and credentials the links reuse.
        prefix: the key prefix to track (``<prefix>:``).
        tasks: the owner of the links' task.
        on_keys: called with the changed keys, or ``None`` for "everything"
            (``FLUSHALL``/``FLUSHDB``), inside the I/O callback.
        on_down: called when a link is lost (the cache must flush).
        timeout_seconds: connect and answer timeout of the links.
    """

    def __init__(
        self,
        client: AnyRedis,
        prefix: str,
        tasks: Supervisor,
        *,
        on_keys: Callable[[list[str] | None], None],
        on_down: Callable[[], None],
        timeout_seconds: float,
    ) -> None:
        self._client = client
        self._prefix = f"{prefix}:"
        self._on_keys = on_keys
        self._on_down = on_down
        self._timeout = timeout_seconds
        self._links: list[_Link] = []
        self._tasks = tasks
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        #: Monotonic time until which the links count as live; 0 while down.
        self.alive_until = 0.0
        #: Set while every link is subscribed.
        self.up = asyncio.Event()
        #: Set once the first attempt to connect (the links, then the database
        #: check) is over, whatever its outcome: when it succeeded, the links are
        #: live by the time a waiter resumes.
        self.tried = asyncio.Event()
        #: How many times the links were (re)established.
        self.connects = 0
        self._db = DatabaseMark(client, f"{self._prefix}cache-db", timeout_seconds=timeout_seconds)

    @property
    def _closed(self) -> bool:
        return self._stopped or self._tasks.closed

    def start(self) -> None:
        """Connect in the background, and reconnect after every loss until closed."""
        if self._task is None and not self._closed:
            self._task = self._tasks.spawn(self._supervise(), name="redis-jwt-cache-links")

    async def aclose(self) -> None:
        """Stop and close the links."""
        self._stopped = True
        self.alive_until = 0.0
        await stop(self._task)
        self._task = None

    # -- connecting ----------------------------------------------------------

    async def _open_link(self, endpoint: Endpoint) -> _Link:
        conn = side_connection(
            endpoint, timeout_seconds=self._timeout, client_name="redis-jwt-cache"
        )
        link = _Link(conn, self._on_keys)
        try:
            async with asyncio.timeout(self._timeout * 3):
                await conn.connect()
                await conn.send_command("CLIENT", "ID")
                own_id = await conn.read_response()
                await conn.send_command(
                    "CLIENT", "TRACKING", "on", "REDIRECT", own_id, "BCAST", "PREFIX", self._prefix
                )
                await conn.read_response()
                # Until now no invalidation can come (RESP2 sends them only to subscribers).
                link.take_over()
                sent_at = time.monotonic()
                link.send("SUBSCRIBE", _CHANNEL)
                await link.subscribed
                link.proof.proved(sent_at)  # the cache is empty: current as of now
        except BaseException:
            await link.close()
            raise
        link.heard, link.dropped = self._heard, self._dropped
        return link

    async def _connect(self) -> list[_Link]:
        if isinstance(self._client, RedisCluster):
            await self._client.initialize()
        found = endpoints(self._client)
        if not found:
            raise rex.ConnectionError("no Redis primary is known")
        links: list[_Link] = []
        try:
            for endpoint in found:
                # One by one: those opened before a failure must be closed.
                links.append(await self._open_link(endpoint))  # noqa: PERF401
        except BaseException:
            for link in links:
                await link.close()
            raise
        return links

    # -- running -------------------------------------------------------------

    async def _supervise(self) -> None:
        backoff = RestartBackoff(0.05)

        async def session() -> None:
            links: list[_Link] = []
            try:
                try:
                    links = await self._connect()
                    # Part of the attempt: without it the links prove nothing yet.
                    if self._db.needed:
                        await self._check_db()
                finally:
                    self.tried.set()
                self._links = links
                self.connects += 1
                self._heard()
                self.up.set()
                backoff.up()
                checker = None
                if self._db.needed:
                    checker = self._tasks.spawn(self._watch_db(), name="redis-jwt-cache-db")
                try:
                    await self._watch(links)
                finally:
                    await stop(checker)
            finally:
                self._lost()
                for link in links:
                    await link.close()

        def failed(exc: BaseException) -> None:
            if isinstance(exc, LINK_FAILURES):
                logger.warning("local cache: an invalidation link failed (%s); bypassing", exc)

        await keep_up(
            session,
            backoff=backoff,
            closed=lambda: self._closed,
            on_failure=failed,
            failures=LINK_FAILURES,
            what="local cache: the invalidation link",
        )

    def _lost(self) -> None:
        self.alive_until = 0.0
        self.up.clear()
        self._links = []
        self._on_down()

    def _dropped(self) -> None:
        # At once, in the I/O callback: whatever runs next must not be served stale.
        if self.alive_until:
            self.alive_until = 0.0
            self._on_down()

    def _heard(self) -> None:
        links = self._links
        if links:
            proved_at = min(min(link.proof.proved_at for link in links), self._db.proved_at)
            self.alive_until = proved_at + MAX_PROOF_AGE_SECONDS

    async def _watch(self, links: list[_Link]) -> None:
        """Return never; raise when a link is lost or a ping goes unanswered."""
        lost = [link.lost for link in links]
        while not self._closed:
            done, _ = await asyncio.wait(lost, timeout=PING_INTERVAL_SECONDS / 2)
            for future in done:
                future.result()  # raises the link's failure
            now = time.monotonic()
            for link in links:
                proof = link.proof
                if proof.overdue(now):
                    # A busy event loop may not have read an answer that came in
                    # time: let it poll once more before giving up.
                    await asyncio.sleep(_LAST_CHANCE_SECONDS)
                    if proof.overdue(now):
                        raise proof.missed()
                if proof.ping_due(now):
                    link.send("PING", proof.ping(now))

    # -- the database check (SWAPDB) -------------------------------------------

    async def _check_db(self) -> None:
        if await self._db.check():
            self._on_keys(None)
        self._heard()

    async def _watch_db(self) -> None:
        """Check the database every ping interval while the links are up."""
        while not self._closed:
            await asyncio.sleep(PING_INTERVAL_SECONDS)
            try:
                await self._check_db()
            except LINK_FAILURES as exc:
                # The proof simply ages: the cache is bypassed until a check succeeds.
                logger.debug("local cache: the database check failed (%s)", exc)
