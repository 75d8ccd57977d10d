"""Opening, closing, and the connection events of one ``RedisJWT``.

Two things can be up or down: the data connection (the client that serves
``verify``) and, when on, the listener. The events follow the pair:

- ``connected``: the data connection works (scripts loaded), at open and
  again after every ``disconnected``;
- ``ready``: connected and, with the listener on, subscribed (and caught up:
  expiries missed while away are reported first);
- ``disconnected``: the first loss of either, with the reason;
- ``error``: each failure of either (and a ``CONFIG`` refusal for ``kea``, and,
  at open, a ``maxmemory-policy`` that can evict sessions).

The data connection is watched through the calls themselves: a call that
finds Redis unreachable or too slow starts a probe; if the probe fails too,
Redis is declared away and a background task reconnects (with backoff)
until it answers again. No traffic is added while all is well.

The logger ``redis_jwt`` follows the same pair, once per outage rather than
once per failed request: a WARNING with ``disconnected`` and an INFO with
``connected`` when it is back, each with ``extra={"redis_jwt_event": ...,
"redis_url": <the address, password redacted>}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import secrets
import time

from ._feed import SessionFeed
from ._layout import Layout
from ._redis.connect import address
from ._redis.links import until_done
from ._redis.listener import Listener
from ._redis.memory import evicting_policy
from ._redis.schedule import Schedule
from ._redis.store import AnyRedis, Store
from ._sweeper import Sweeper, Unscheduler
from ._tasks import Supervisor
from ._telemetry import Switch
from .errors import ConfigurationError, StoreError
from .events import EventBus
from .models import EventKind

__all__ = ["Announced", "Lifecycle"]

logger = logging.getLogger("redis_jwt")

#: Margin (s) taken before the last message a listener received when replaying expiries.
REPLAY_MARGIN_SECONDS = 2.0


class Announced(enum.Enum):
    """Which connection event the bus heard last (what the next change must say)."""

    #: Nothing yet (just opened).
    NOTHING = "nothing"
    #: ``connected``, not yet ``ready`` (the listener is on its way).
    CONNECTED = "connected"
    #: ``ready``: everything is up.
    READY = "ready"
    #: ``disconnected``.
    DOWN = "down"
    #: ``connected`` again after a ``disconnected``, not yet ``ready``.
    RECONNECTED = "reconnected"


class Lifecycle:
    """Connection state, the store, the listener and sweeper, and connection events.

    Args:
        client: the data client.
        layout: the v1 key names (the listener, the schedule).
        bus: the event bus (every event goes through the feed built here).
        tasks: the owner of every background task.
        deadline_seconds: how long one Redis call may take, retry included.
        listen: run the listener and the sweeper.
        kea: also listen to keyspace events.
        telemetry: where the telemetry decided at open is found.
    """

    def __init__(
        self,
        client: AnyRedis,
        layout: Layout,
        bus: EventBus,
        *,
        tasks: Supervisor,
        deadline_seconds: float,
        listen: bool,
        kea: bool,
        telemetry: Switch | None = None,
    ) -> None:
        self._tasks = self.tasks = tasks
        #: This instance's id in the notices it publishes (see _feed.py).
        self.origin = secrets.token_urlsafe(9)
        self.telemetry = telemetry or Switch()
        self.store = Store(
            client,
            tasks,
            deadline_seconds=deadline_seconds,
            on_failure=self._store_failed,
            telemetry=self.telemetry,
        )
        self._schedule = Schedule(self.store, layout, origin=self.origin)
        self.unscheduler = Unscheduler(self._schedule, tasks)
        self.feed = SessionFeed(
            bus,
            layout,
            self.origin,
            listening=listen,
            telemetry=self.telemetry,
            on_external=(lambda key: self.unscheduler.add([key])) if kea else None,
        )
        self._sweeper = Sweeper(self._schedule, self.feed, layout, tasks) if listen else None
        self._open_timeout = max(2.0, 2 * deadline_seconds)
        #: Where Redis is, password redacted: for the log records.
        self.address = address(client)
        self.listener: Listener | None = None
        if listen:
            self.listener = Listener(
                client,
                self.feed,
                tasks,
                channel=layout.channel,
                kea=kea,
                timeout_seconds=deadline_seconds,
                on_up=self.listener_up,
                on_down=self.listener_down,
                on_config_refused=self.config_refused,
            )
        self._data_ok = False
        self._listener_ok = self.listener is None
        self._announced = Announced.NOTHING
        self._listener_error_sent = False
        self._repair: asyncio.Task[None] | None = None

    # -- opening and closing -----------------------------------------------

    async def open(self) -> None:
        """Load the scripts and start the listener and sweeper; never raises for Redis."""
        try:
            await self.store.load_scripts()
        except StoreError as exc:
            self._lose_data(exc, "Redis is unreachable at start-up")
        else:
            self._set(data=True)
            await self._warn_if_evicting()
        if self._sweeper is not None:
            self._sweeper.start()
        if self.listener is not None:
            self.listener.start()
            if self._data_ok:
                # Events made right after `async with auth:` must reach this instance.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._open_timeout):
                        await self.listener.up.wait()

    async def _warn_if_evicting(self) -> None:
        """Say so (a WARNING and an ``error`` event) when Redis may evict sessions."""
        try:
            policy = await evicting_policy(self.store)
        except StoreError:
            return  # INFO refused or Redis gone: nothing to say (the doctor checks too)
        if policy is None:
            return
        message = (
            f"Redis's maxmemory-policy is {policy}: when memory runs out it can evict "
            "sessions and session indexes, and then counts, listings, limits and "
            "logging out everywhere are no longer exact (see docs/deployment.md). "
            "Use `CONFIG SET maxmemory-policy noeviction` and size maxmemory for the "
            "sessions you keep: a full Redis then refuses new sessions instead."
        )
        logger.warning(message, extra={"redis_jwt_event": "error", "maxmemory_policy": policy})
        self._emit_kind("error", reason=message, error=ConfigurationError(message))

    async def aclose(self) -> None:
        """Stop every background task (bounded) and drop held events."""
        await self.unscheduler.flush()
        await self._tasks.aclose()
        self.feed.close()

    # -- state ---------------------------------------------------------------

    def _set(self, *, data: bool | None = None, listener: bool | None = None) -> None:
        if data is not None:
            self._data_ok = data
        if listener is not None:
            self._listener_ok = listener
        if not self._data_ok:
            return
        if self._announced in (Announced.NOTHING, Announced.DOWN):
            was_down = self._announced is Announced.DOWN
            self._announced = Announced.RECONNECTED if was_down else Announced.CONNECTED
            if was_down and not self._tasks.closed:
                logger.info(
                    "the connection to Redis at %s is back",
                    self.address,
                    extra={"redis_jwt_event": "connected", "redis_url": self.address},
                )
            self._emit_kind("connected")
        if self._listener_ok and self._announced is not Announced.READY:
            self._announced = Announced.READY
            self._emit_kind("ready")

    def _lose(self, exc: BaseException, reason: str) -> None:
        announce_down = self._announced not in (Announced.DOWN, Announced.RECONNECTED)
        self._announced = Announced.DOWN
        self._emit_kind("error", reason=reason, error=exc)
        if announce_down:
            if not self._tasks.closed:
                # Once per outage: the requests that fail meanwhile are 503s, not log lines.
                logger.warning(
                    "lost the connection to Redis at %s (%s); reconnecting in the background",
                    self.address,
                    reason,
                    extra={"redis_jwt_event": "disconnected", "redis_url": self.address},
                )
            self._emit_kind("disconnected", reason=reason)

    def _emit_kind(
        self, kind: EventKind, *, reason: str | None = None, error: BaseException | None = None
    ) -> None:
        if not self._tasks.closed:
            self.feed.emit(kind, reason=reason, error=error)

    # -- the data connection -------------------------------------------------

    def _repairing(self) -> bool:
        return self._tasks.closed or (self._repair is not None and not self._repair.done())

    def _store_failed(self, error: StoreError) -> None:
        if self._data_ok and not self._repairing():
            self._repair = self._tasks.spawn(self._probe(error), name="redis-jwt-probe")

    def _lose_data(self, exc: BaseException, reason: str) -> None:
        self._data_ok = False
        self._lose(exc, reason)
        if not self._repairing():
            self._repair = self._tasks.spawn(self._reconnect(), name="redis-jwt-reconnect")

    async def _probe(self, error: StoreError) -> None:
        try:
            await self.store.ping()
        except StoreError as exc:
            self._data_ok = False
            self._lose(exc, f"Redis is unreachable: {exc}")
            await self._reconnect()

    async def _reconnect(self) -> None:
        async def attempt() -> None:
            if not self._data_ok:  # the listener may have found Redis back first
                await self.store.load_scripts()

        await until_done(attempt, failures=(StoreError,), first_seconds=0.1)
        self._set(data=True)

    # -- the listener --------------------------------------------------------

    async def listener_up(self, away_since: float | None) -> None:
        """The listener subscribed: confirm Redis, catch up, then announce ``ready``."""
        await self.store.load_scripts()  # also refills a script cache emptied by a restart
        self._set(data=True)
        if self._sweeper is not None:
            if away_since is not None:
                # The expiry log is on Redis's clock; our wall clock may differ.
                offset_ms = await self.store.time_ms() - int(time.time() * 1000)
                since = int((away_since - REPLAY_MARGIN_SECONDS) * 1000) + offset_ms
                await self._sweeper.replay(since)
            self._sweeper.kick()
        self._listener_error_sent = False
        self._set(listener=True)

    def listener_down(self, exc: BaseException) -> None:
        """The listener lost a link or failed to connect (it keeps trying by itself)."""
        self._listener_ok = False
        if not self._listener_error_sent:  # once per outage, not once per attempt
            self._listener_error_sent = True
            self._lose(exc, f"the events listener lost Redis: {exc}")
        # The data connection shares the fate of the server more often than not.
        self._store_failed(StoreError(str(exc)))

    def config_refused(self, error: ConfigurationError) -> None:
        """``kea=True`` could not enable keyspace events: say how to fix it."""
        logger.warning("%s", error)
        self._emit_kind("error", reason=str(error), error=error)
