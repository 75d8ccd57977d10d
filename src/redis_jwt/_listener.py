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
from typing import Any

from redis import exceptions as rex
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from ._feed import SessionFeed
from ._store import AnyRedis, text
from ._tasks import stop
from .errors import ConfigurationError, StoreError

__all__ = ["Listener", "missing_flags"]

logger = logging.getLogger("redis_jwt.events")

HEARTBEAT_SECONDS = 1.0
HEARTBEAT_TIMEOUT_SECONDS = 2.0
#: The ``notify-keyspace-events`` flags ``kea=True`` needs.
FLAGS = "Egx"
_PING = b"redis-jwt-heartbeat"
_MAX_BACKOFF_SECONDS = 2.0
#: How often a Cluster listener re-reads the slot map to cover new primaries.
TOPOLOGY_CHECK_SECONDS = 5.0
_FAILURES = (rex.RedisError, OSError, StoreError, TimeoutError)


class HeartbeatMissed(rex.ConnectionError):
    """The link did not answer the heartbeat in time (half-open or frozen peer)."""


class TopologyChanged(rex.ConnectionError):
    """The Cluster's primaries are no longer those the links cover: rebuild them."""


def missing_flags(current: str) -> str:
    """Return the flags of :data:`FLAGS` that ``current`` lacks (``A`` covers ``g`` and ``x``)."""
    return "".join(f for f in FLAGS if f not in current and not (f in "gx" and "A" in current))


class _Link:
    __slots__ = ("conn", "last_rx", "ping_sent")

    def __init__(self, conn: AbstractConnection) -> None:
        self.conn = conn
        self.last_rx = asyncio.get_running_loop().time()
        self.ping_sent: float | None = None


async def _refresh(client: RedisCluster) -> None:
    # RedisCluster.initialize() is a no-op once done; the nodes manager re-reads CLUSTER SLOTS.
    await client.initialize()
    await client.nodes_manager.initialize()


def _addresses(client: RedisCluster) -> set[tuple[str, int]]:
    return {(str(node.host), int(node.port)) for node in client.get_primaries()}


def _endpoints(client: AnyRedis) -> list[tuple[type[AbstractConnection], dict[str, Any]]]:
    if isinstance(client, RedisCluster):
        nodes = client.get_primaries()
        return [(node.connection_class, dict(node.connection_kwargs)) for node in nodes]
    pool = client.connection_pool
    return [(pool.connection_class, dict(pool.connection_kwargs))]


class Listener:
    """Subscribes, dispatches to the :class:`SessionFeed`, and reconnects forever (until closed).

    Args:
        client: the data client, whose address and credentials the links reuse.
        feed: where notices and keyspace events go.
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
        self._task: asyncio.Task[None] | None = None
        self._covered: set[tuple[str, int]] = set()
        self._closed = False
        self.up = asyncio.Event()

    def start(self) -> None:
        """Start listening in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._supervise(), name="redis-jwt-listener")

    async def aclose(self) -> None:
        """Stop listening and close the links."""
        self._closed = True
        await stop(self._task)
        self._task = None

    # -- connecting ----------------------------------------------------------

    def _connection(self, cls: type[AbstractConnection], kwargs: dict[str, Any]) -> Any:
        for name in ("maint_notifications_pool_handler", "himport_registry", "event_dispatcher"):
            kwargs.pop(name, None)
        kwargs.update(
            socket_timeout=self._timeout,
            socket_connect_timeout=min(kwargs.get("socket_connect_timeout") or 5, self._timeout),
            retry=Retry(NoBackoff(), 0),
            retry_on_error=[],
            retry_on_timeout=False,
            health_check_interval=0,
            decode_responses=False,
            protocol=2,
            client_name="redis-jwt-listener",
        )
        return cls(**kwargs)

    async def _open_link(
        self, cls: type[AbstractConnection], kwargs: dict[str, Any], channels: Sequence[bytes]
    ) -> _Link:
        conn = self._connection(cls, kwargs)
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
                await _refresh(self._client)
        endpoints = _endpoints(self._client)
        if not endpoints:
            raise rex.ConnectionError("no Redis primary is known")
        self._covered = {(str(kw.get("host")), int(kw.get("port") or 0)) for _, kw in endpoints}
        db = int(endpoints[0][1].get("db") or 0)
        self._expired_channel = f"__keyevent@{db}__:expired".encode()
        self._del_channel = f"__keyevent@{db}__:del".encode()
        keyevents = [self._expired_channel, self._del_channel] if self._kea else []
        links: list[_Link] = []
        try:
            for i, (cls, kwargs) in enumerate(endpoints if self._kea else endpoints[:1]):
                # Channel messages reach every node of a cluster: one subscription is enough.
                channels = [self._channel, *keyevents] if i == 0 else keyevents
                links.append(await self._open_link(cls, kwargs, channels))
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
        loop = asyncio.get_running_loop()
        delay = 0.0
        away_since: float | None = None  # wall clock; None: nothing to catch up on
        while not self._closed:
            links: list[_Link] = []
            subscribed = False
            try:
                links = await self._connect()
                await self._on_up(away_since)
                subscribed, away_since, delay = True, None, 0.0
                self.up.set()
                await self._read_all(links)
            except _FAILURES as exc:
                self._lost(exc)
            except Exception as exc:  # a bug: report it, keep listening
                logger.exception("the events listener failed")
                self._lost(exc)
            finally:
                if subscribed and links:
                    oldest = min(link.last_rx for link in links)
                    away_since = time.time() - (loop.time() - oldest)
                await self._close(links)
            await asyncio.sleep(delay)
            delay = min(max(delay * 2, 0.1), _MAX_BACKOFF_SECONDS)

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
                await _refresh(client)
            now = _addresses(client)
            if now != covered:
                raise TopologyChanged(
                    f"Cluster primaries changed from {sorted(covered)} to {sorted(now)}"
                )

    async def _read(self, link: _Link) -> None:
        loop = asyncio.get_running_loop()
        conn = link.conn
        while not self._closed:
            now = loop.time()
            if link.ping_sent is None:
                wait = link.last_rx + HEARTBEAT_SECONDS - now
                if wait <= 0:
                    await conn.send_command("PING", _PING, check_health=False)
                    link.ping_sent = now
                    continue
            else:
                wait = link.ping_sent + HEARTBEAT_TIMEOUT_SECONDS - now
                if wait <= 0:
                    raise HeartbeatMissed(
                        f"no answer to the heartbeat within {HEARTBEAT_TIMEOUT_SECONDS:g} s"
                    )
            reply = await conn.read_response(timeout=wait)
            if reply is None:
                continue
            link.last_rx = loop.time()
            link.ping_sent = None
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
