"""Opening, closing, and the connection events of one ``RedisJWT``.

Two things can be up or down: the data connection (the client that serves
``verify``) and, when on, the listener. The events follow the pair:

- ``connected``: the data connection works (scripts loaded), at open and
  again after every ``disconnected``;
- ``ready``: connected and, with the listener on, subscribed (and caught up:
  expiries missed while away are reported first);
- ``disconnected``: the first loss of either, with the reason;
- ``error``: each failure of either (and a ``CONFIG`` refusal for ``kea``).

The data connection is watched through the calls themselves: a call that
finds Redis unreachable or too slow starts a probe; if the probe fails too,
Redis is declared away and a background task reconnects (with backoff)
until it answers again. No traffic is added while all is well.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable

from ._feed import SessionFeed
from ._listener import Listener
from ._schedule import Schedule
from ._store import AnyRedis, Store
from ._sweeper import Sweeper, Unscheduler
from ._tasks import stop
from .errors import ConfigurationError, StoreError
from .events import EventBus
from .models import EventKind

__all__ = ["Lifecycle", "wire_events"]

logger = logging.getLogger("redis_jwt")

#: Margin (s) taken before the last message a listener received when replaying expiries.
REPLAY_MARGIN_SECONDS = 2.0
_MAX_BACKOFF_SECONDS = 2.0

Emit = Callable[..., None]


def wire_events(
    store: Store, bus: EventBus, emit: Emit, client: AnyRedis, *, listen: bool, kea: bool
) -> tuple[SessionFeed, Lifecycle]:
    """Build the session feed and the lifecycle (with listener and sweeper when ``listen``)."""
    # Tells this instance's notices from the others' (see _feed.py).
    store.origin = secrets.token_urlsafe(9)
    store.scheduling = listen
    schedule = Schedule(store)
    feed = SessionFeed(bus, store.layout, store.origin)
    feed.listening = listen
    life = Lifecycle(
        store,
        emit,
        sweeper=Sweeper(schedule, feed) if listen else None,
        schedule=schedule,
        open_timeout_seconds=max(2.0, 2 * store.deadline_seconds),
    )
    if listen:
        listener = Listener(
            client,
            feed,
            channel=store.layout.channel,
            kea=kea,
            timeout_seconds=store.deadline_seconds,
            on_up=life.listener_up,
            on_down=life.listener_down,
            on_config_refused=life.config_refused,
        )
        life.attach(listener)
    if kea:
        feed.on_external = lambda key: life.unscheduler.add([key])
    return feed, life


class Lifecycle:
    """Connection state, background tasks and connection events.

    Args:
        store: the store (its failures are reported here).
        emit: ``emit(kind, reason=..., error=...)`` puts a connection event on the bus.
        sweeper: the sweeper (with the listener), or None.
        schedule: the expiry schedule.
        open_timeout_seconds: how long :meth:`open` waits for the listener.
    """

    def __init__(
        self,
        store: Store,
        emit: Emit,
        *,
        sweeper: Sweeper | None,
        schedule: Schedule,
        open_timeout_seconds: float,
    ) -> None:
        self._store = store
        self._emit = emit
        self.listener: Listener | None = None
        self._sweeper = sweeper
        self.unscheduler = Unscheduler(schedule)
        self._schedule = schedule
        self._open_timeout = open_timeout_seconds
        self._data_ok = False
        self._listener_ok = True
        self._down_sent = False  # a `disconnected` was emitted and no `ready` since
        self._connected_sent = False
        self._ready_sent = False
        self._closed = False
        self._listener_error_sent = False
        self._repair: asyncio.Task[None] | None = None
        store.on_failure = self._store_failed

    def attach(self, listener: Listener) -> None:
        """Use ``listener`` (built with this object's callbacks): ``ready`` then waits for it."""
        self.listener = listener
        self._listener_ok = False

    # -- opening and closing -----------------------------------------------

    async def open(self) -> None:
        """Load the scripts and start the listener and sweeper; never raises for Redis."""
        try:
            await self._store.load_scripts()
        except StoreError as exc:
            self._lose_data(exc, "Redis is unreachable at start-up")
        else:
            self._set(data=True)
        if self._sweeper is not None:
            self._sweeper.start()
        if self.listener is not None:
            self.listener.start()
            if self._data_ok:
                # Events made right after `async with auth:` must reach this instance.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._open_timeout):
                        await self.listener.up.wait()

    async def aclose(self) -> None:
        """Stop every background task (bounded)."""
        self._closed = True
        self._store.on_failure = None
        await stop(self._repair)
        if self.listener is not None:
            await self.listener.aclose()
        if self._sweeper is not None:
            await self._sweeper.aclose()
        await self.unscheduler.aclose()

    # -- state ---------------------------------------------------------------

    def _set(self, *, data: bool | None = None, listener: bool | None = None) -> None:
        if data is not None:
            self._data_ok = data
        if listener is not None:
            self._listener_ok = listener
        if self._data_ok and not self._connected_sent:
            self._connected_sent = True
            self._emit_kind("connected")
        if self._data_ok and self._listener_ok and not self._ready_sent:
            self._ready_sent = True
            self._down_sent = False
            self._emit_kind("ready")

    def _lose(self, exc: BaseException, reason: str) -> None:
        self._ready_sent = False
        self._connected_sent = False
        self._emit_kind("error", reason=reason, error=exc)
        if not self._down_sent:
            self._down_sent = True
            self._emit_kind("disconnected", reason=reason)

    def _emit_kind(
        self, kind: EventKind, *, reason: str | None = None, error: BaseException | None = None
    ) -> None:
        if not self._closed:
            self._emit(kind, reason=reason, error=error)

    # -- the data connection -------------------------------------------------

    def _store_failed(self, error: StoreError) -> None:
        if self._data_ok and not self._closed and (self._repair is None or self._repair.done()):
            self._repair = asyncio.create_task(self._probe(error), name="redis-jwt-probe")

    def _lose_data(self, exc: BaseException, reason: str) -> None:
        self._data_ok = False
        self._lose(exc, reason)
        if not self._closed and (self._repair is None or self._repair.done()):
            self._repair = asyncio.create_task(self._reconnect(), name="redis-jwt-reconnect")

    async def _probe(self, error: StoreError) -> None:
        try:
            await self._store.ping()
        except StoreError as exc:
            self._data_ok = False
            self._lose(exc, f"Redis is unreachable: {exc}")
            await self._reconnect()

    async def _reconnect(self) -> None:
        delay = 0.1
        while not self._closed and not self._data_ok:
            await asyncio.sleep(delay)
            try:
                await self._store.load_scripts()
            except StoreError:
                delay = min(delay * 2, _MAX_BACKOFF_SECONDS)
                continue
            self._set(data=True)

    # -- the listener --------------------------------------------------------

    async def listener_up(self, away_since: float | None) -> None:
        """The listener subscribed: confirm Redis, catch up, then announce ``ready``."""
        await self._store.load_scripts()  # also refills a script cache emptied by a restart
        self._set(data=True)
        if self._sweeper is not None:
            if away_since is not None:
                # The expiry log is on Redis's clock; our wall clock may differ.
                offset_ms = await self._schedule.time_ms() - int(time.time() * 1000)
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
