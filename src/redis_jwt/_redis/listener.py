"""The listener: the events channel and, with ``kea=True``, Redis's keyspace events.

It keeps pub/sub connections of its own (never the pool that serves
``verify``), one per primary for keyspace events (they are node-local) and
one for the channel, each with:

- its own timeouts and no hidden retries: a failure is seen here, reported
  (``error``/``disconnected``), and repaired by reconnecting, resubscribing
  and reconciling (see :mod:`redis_jwt._lifecycle`);
- a heartbeat: after :data:`HEARTBEAT_SECONDS` without traffic it sends a
  ``PING`` and gives up on the link if nothing comes back within
  :data:`HEARTBEAT_TIMEOUT_SECONDS`; a half-open TCP link (a dead peer, a
  dropped NAT entry) is thus found within seconds, which redis-py's health
  check does not do for a subscriber that only reads.

With ``kea=True`` it also makes sure ``notify-keyspace-events`` includes
``Egx`` (key-event channels, generic commands such as ``DEL``, expiries),
merging with the flags already set; when ``CONFIG`` is refused it says so
with an ``error`` event naming the flags to set, and carries on with the
channel and the sweeper.

On a Cluster (``kea=True``) the links follow the topology: the slot map is
re-read on every reconnection and every :data:`TOPOLOGY_CHECK_SECONDS`;
when the set of primaries changed (a failover, a resharding) the links are
rebuilt and, as after any reconnection, the listener reconciles.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from redis import exceptions as rex
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection

from .._compat import refresh_cluster_slots
from .._feed import SessionFeed
from .._tasks import Supervisor
from ..errors import ConfigurationError
from .errors import LINK_FAILURES
from .links import Endpoint, Heartbeat, RestartBackoff, endpoints, keep_up, side_connection
from .replies import text
from .store import AnyRedis

__all__ = ["Listener", "missing_flags"]

logger = logging.getLogger("redis_jwt.events")

HEARTBEAT_SECONDS = 1.0
HEARTBEAT_TIMEOUT_SECONDS = 2.0
#: The ``notify-keyspace-events`` flags ``kea=True`` needs.
FLAGS = "Egx"
_PING = b"redis-jwt-heartbeat"
#: How often a Cluster listener re-reads the slot map to cover new primaries.
TOPOLOGY_CHECK_SECONDS = 5.0


class TopologyChanged(rex.ConnectionError):
    """The Cluster's primaries are no longer those the links cover: rebuild them."""


def missing_flags(current: str) -> str:
    """Return the flags of :data:`FLAGS` that ``current`` lacks (``A`` covers ``g`` and ``x``)."""
    return "".join(f for f in FLAGS if f not in current and not (f in "gx" and "A" in current))


class _Link:
    __slots__ = ("beat", "conn")

    def __init__(self, conn: AbstractConnection) -> None:
        self.conn = conn
        self.beat = Heartbeat(HEARTBEAT_SECONDS, HEARTBEAT_TIMEOUT_SECONDS)


def _addresses(client: RedisCluster) -> set[tuple[str, int]]:
    return {(str(node.host), int(node.port)) for node in client.get_primaries()}


class Listener:
    """Subscribes, dispatches to the :class:`SessionFeed`, and reconnects forever (until closed).

    Args:
        client: the data client, whose address and credentials the links reuse.
        feed: where notices and keyspace events go.
        tasks: the owner of the listener's task.
        channel: the events channel.
        kea: also subscribe to keyspace events (and enable them).
        timeout_seconds: connect and answer timeout of the links.
        on_up: awaited once subscribed, with the wall-clock time since which
            events may have been missed (None on the first connection);
            raising counts as a failed attempt.
        on_down: called with the error when the listener is lost.
        on_config_refused: called when ``CONFIG`` is refused (kea only).
    """

    def __init__(
        self,
        client: AnyRedis,
        feed: SessionFeed,
        tasks: Supervisor,
        *,
        channel: str,
        kea: bool,
        timeout_seconds: float,
        on_up: Callable[[float | None], Awaitable[None]],
        on_down: Callable[[BaseException], None],
        on_config_refused: Callable[[ConfigurationError], None],
    ) -> None:
        self._client = client
        self._feed = feed
        self._channel = channel.encode()
        self._kea = kea
        self._timeout = timeout_seconds
        self._on_up = on_up
        self._on_down = on_down
        self._on_config_refused = on_config_refused
        self._config_reported = False
        self._expired_channel = b""
        self._del_channel = b""
        self._tasks = tasks
        self._task: asyncio.Task[None] | None = None
        self._covered: set[tuple[str, int]] = set()
        self.up = asyncio.Event()

    @property
    def _closed(self) -> bool:
        return self._tasks.closed

    def start(self) -> None:
        """Start listening in the background (the supervisor stops it)."""
        if self._task is None:
            self._task = self._tasks.spawn(self._supervise(), name="redis-jwt-listener")

    # -- connecting ----------------------------------------------------------

    async def _open_link(self, endpoint: Endpoint, channels: Sequence[bytes]) -> _Link:
        conn = side_connection(
            endpoint, timeout_seconds=self._timeout, client_name="redis-jwt-listener"
        )
        try:
            async with asyncio.timeout(self._timeout * 3):
                await conn.connect()
                if self._kea:
                    await self._ensure_flags(conn)
                await conn.send_command("SUBSCRIBE", *channels)
                for _ in channels:
                    await conn.read_response()
        except BaseException:
            await conn.disconnect(nowait=True)
            raise
        return _Link(conn)

    async def _connect(self) -> list[_Link]:
        if isinstance(self._client, RedisCluster):
            async with asyncio.timeout(self._timeout * 3):
                await refresh_cluster_slots(self._client)
        found = endpoints(self._client)
        if not found:
            raise rex.ConnectionError("no Redis primary is known")
        self._covered = {(str(kw.get("host")), int(kw.get("port") or 0)) for _, kw in found}
        db = int(found[0][1].get("db") or 0)
        self._expired_channel = f"__keyevent@{db}__:expired".encode()
        self._del_channel = f"__keyevent@{db}__:del".encode()
        keyevents = [self._expired_channel, self._del_channel] if self._kea else []
        links: list[_Link] = []
        try:
            for i, endpoint in enumerate(found if self._kea else found[:1]):
                # Channel messages reach every node of a cluster: one subscription is enough.
                channels = [self._channel, *keyevents] if i == 0 else keyevents
                links.append(await self._open_link(endpoint, channels))
        except BaseException:
            await self._close(links)
            raise
        return links

    async def _ensure_flags(self, conn: AbstractConnection) -> None:
        current: str | None = None
        try:
            await conn.send_command("CONFIG", "GET", "notify-keyspace-events")
            reply = await conn.read_response()
            current = text(reply[1]) if isinstance(reply, list) and len(reply) == 2 else ""
            missing = missing_flags(current)
            if missing:
                await conn.send_command(
                    "CONFIG", "SET", "notify-keyspace-events", current + missing
                )
                await conn.read_response()
                logger.info("kea=True: notify-keyspace-events %r -> %r", current, current + missing)
        except rex.ResponseError as exc:
            if not self._config_reported:
                self._config_reported = True
                self._on_config_refused(_config_refused(current, exc))
            return
        self._config_reported = False

    @staticmethod
    async def _close(links: list[_Link]) -> None:
        for link in links:
            with contextlib.suppress(Exception):
                await link.conn.disconnect(nowait=True)

    # -- running -------------------------------------------------------------

    async def _supervise(self) -> None:
        backoff = RestartBackoff(0.1)
        # Wall clock since which events may have been missed; None: nothing to catch up on.
        away: list[float | None] = [None]

        async def session() -> None:
            links: list[_Link] = []
            subscribed = False
            try:
                links = await self._connect()
                await self._on_up(away[0])
                subscribed, away[0] = True, None
                backoff.up()
                self.up.set()
                await self._read_all(links)
            finally:
                if subscribed and links:
                    oldest = min(link.beat.last_rx for link in links)
                    away[0] = time.time() - (time.monotonic() - oldest)
                await self._close(links)

        await keep_up(
            session,
            backoff=backoff,
            closed=lambda: self._closed,
            on_failure=self._lost,
            failures=LINK_FAILURES,
            what="the events listener",
        )

    def _lost(self, exc: BaseException) -> None:
        self.up.clear()
        self._on_down(exc)

    async def _read_all(self, links: list[_Link]) -> None:
        follow = self._kea and isinstance(self._client, RedisCluster)
        if len(links) == 1 and not follow:
            await self._read(links[0])
            return
        tasks = [asyncio.create_task(self._read(link)) for link in links]
        if follow:
            tasks.append(asyncio.create_task(self._follow_topology()))
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # raises the link's failure
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _follow_topology(self) -> None:
        client = self._client
        if not isinstance(client, RedisCluster):
            return
        covered = self._covered
        while not self._closed:  # until a change or a failure ends the links
            await asyncio.sleep(TOPOLOGY_CHECK_SECONDS)
            async with asyncio.timeout(self._timeout * 3):
                await refresh_cluster_slots(client)
            now = _addresses(client)
            if now != covered:
                raise TopologyChanged(
                    f"Cluster primaries changed from {sorted(covered)} to {sorted(now)}"
                )

    async def _read(self, link: _Link) -> None:
        conn, beat = link.conn, link.beat
        while not self._closed:
            now = time.monotonic()
            if beat.overdue(now):
                raise beat.missed()
            if beat.ping_due(now):
                await conn.send_command("PING", _PING, check_health=False)
                beat.pinged(now)
                continue
            reply = await conn.read_response(timeout=max(0.0, beat.wait_seconds(now)))
            if reply is None:
                continue
            beat.heard(time.monotonic())
            if isinstance(reply, list) and len(reply) == 3 and reply[0] == b"message":
                self._dispatch(reply[1], reply[2])

    def _dispatch(self, channel: bytes, data: bytes) -> None:
        try:
            if channel == self._channel:
                self._feed.notice(data)
            elif channel == self._expired_channel:
                self._feed.keyevent(b"expired", data)
            elif channel == self._del_channel:
                self._feed.keyevent(b"del", data)
        except Exception:  # a bug in one message must not cost the link
            logger.exception("could not handle an event message on %r", channel)


def _config_refused(current: str | None, exc: Exception) -> ConfigurationError:
    wanted = FLAGS if not current else current + missing_flags(current)
    message = (
        f"kea=True needs notify-keyspace-events to include {FLAGS!r}"
        + ("" if current is None else f" (the server has {current!r})")
        + f", but the server refuses CONFIG ({exc}). Set it yourself: "
        f"`CONFIG SET notify-keyspace-events {wanted}` as an administrator, "
        f"`notify-keyspace-events {wanted}` in redis.conf, or the notify-keyspace-events "
        "parameter of your managed service. Meanwhile session events and timely expiries "
        "still arrive through the events channel and the sweeper; deletions made outside "
        "the library go unseen."
    )
    error = ConfigurationError(message)
    error.__cause__ = exc
    return error
