"""The event bus: ``auth.events``.

Handlers registered with :meth:`EventBus.on` run for every event of their kind;
:meth:`EventBus.subscribe` streams events into an ``async for`` loop. A
handler that raises is logged and never breaks the call that emitted the event.

Delivery is in-process: sync handlers run at once, in the emitting call (keep
them short); async handlers run as tasks; subscribers read from a bounded
queue. Which events reach the bus (this instance's own, or every instance's)
depends on the listener: see the events guide (docs/events.md).
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Literal, get_args, overload

from ._tasks import Supervisor
from .errors import ConfigurationError
from .models import Event, EventKind

__all__ = ["EventBus", "Handler", "Subscription"]

logger = logging.getLogger("redis_jwt.events")

#: A sync or async callable taking an :class:`Event`.
Handler = Callable[[Event], Awaitable[None] | None]
_ALL: Literal["*"] = "*"
_KINDS = frozenset(get_args(EventKind))


def _check_kind(kind: object, *, wildcard: bool = True) -> None:
    if kind in _KINDS or (wildcard and kind == _ALL):
        return
    raise ConfigurationError(
        f"unknown event kind {kind!r}; use one of {', '.join(sorted(_KINDS))}"
        + (" or '*'" if wildcard else "")
    )


def _handler_failed(handler: Handler, event: Event) -> None:
    """Log a handler's exception (ERROR, with its traceback); authentication goes on."""
    name = getattr(handler, "__qualname__", None) or repr(handler)
    logger.exception(
        "event handler %s failed on a %s event",
        name,
        event.kind,
        extra={"redis_jwt_event": "handler_failed", "handler": name, "event_kind": event.kind},
    )


class Subscription:
    """An ``async for`` stream of events, fed through a bounded queue.

    A consumer slower than the events loses the oldest ones first (counted in
    :attr:`dropped`, logged once per subscription): a stalled consumer must
    never stall authentication nor grow memory without bound. The stream ends
    when the ``RedisJWT`` is closed or :meth:`aclose` is called; use it as
    ``async with auth.events.subscribe() as stream:`` to unsubscribe on exit.
    """

    def __init__(self, bus: EventBus, kinds: frozenset[str], maxsize: int) -> None:
        self._bus = bus
        self._kinds = kinds
        self._queue: collections.deque[Event | None] = collections.deque()
        self._maxsize = maxsize
        self._wakeup = asyncio.Event()
        self._closed = False
        #: How many events were discarded because this consumer lagged.
        self.dropped = 0

    def _put(self, event: Event | None) -> None:
        if self._closed:
            return
        if event is not None and self._kinds and event.kind not in self._kinds:
            return
        if len(self._queue) >= self._maxsize:
            self._queue.popleft()
            self.dropped += 1
            if self.dropped == 1:
                logger.warning("an events subscriber is too slow; dropping its oldest events")
        self._queue.append(event)
        self._wakeup.set()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        while not self._queue:
            if self._closed:
                raise StopAsyncIteration
            self._wakeup.clear()
            await self._wakeup.wait()
        event = self._queue.popleft()
        if event is None:
            self._closed = True
            self._bus._unsubscribe(self)
            raise StopAsyncIteration
        return event

    async def aclose(self) -> None:
        """Stop receiving events."""
        self._closed = True
        self._wakeup.set()
        self._bus._unsubscribe(self)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class EventBus:
    """Delivers :class:`Event` values to handlers and subscribers in this process."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = {}
        self._subscriptions: list[Subscription] = []
        # Async handlers run as tasks owned here, stopped by aclose().
        self._tasks = Supervisor()
        self._closed = False

    @overload
    def on(self, kind: EventKind | Literal["*"]) -> Callable[[Handler], Handler]: ...
    @overload
    def on(self, kind: EventKind | Literal["*"], handler: Handler) -> Handler: ...
    def on(
        self, kind: EventKind | Literal["*"], handler: Handler | None = None
    ) -> Handler | Callable[[Handler], Handler]:
        """Register ``handler`` for events of ``kind`` (``"*"`` for all).

        Usable directly, ``auth.events.on("expired", handler)``, or as a
        decorator, ``@auth.events.on("expired")``.

        Raises:
            ConfigurationError: for an unknown kind (a typo would otherwise never fire).
        """
        _check_kind(kind)
        if handler is None:

            def decorator(func: Handler) -> Handler:
                self._handlers.setdefault(kind, []).append(func)
                return func

            return decorator
        self._handlers.setdefault(kind, []).append(handler)
        return handler

    def off(self, kind: EventKind | Literal["*"], handler: Handler) -> None:
        """Unregister ``handler`` from ``kind``; unknown handlers are ignored."""
        handlers = self._handlers.get(kind, [])
        if handler in handlers:
            handlers.remove(handler)

    def subscribe(self, *kinds: EventKind, maxsize: int = 1000) -> Subscription:
        """Return a stream of events (of ``kinds``, or all), registered at once.

        Args:
            kinds: the kinds to receive; none means every kind.
            maxsize: how many undelivered events to keep before dropping the oldest.

        Raises:
            ConfigurationError: for an unknown kind or a ``maxsize`` below 1.
        """
        for kind in kinds:
            _check_kind(kind, wildcard=False)
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise ConfigurationError(f"maxsize must be a positive int, got {maxsize!r}")
        subscription = Subscription(self, frozenset(kinds), maxsize)
        if self._closed:
            subscription._put(None)  # the bus is closed: the stream ends at once
        else:
            self._subscriptions.append(subscription)
        return subscription

    def _unsubscribe(self, subscription: Subscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)

    @property
    def has_listeners(self) -> bool:
        """Whether anything would receive an event."""
        return bool(self._subscriptions) or any(self._handlers.values())

    def emit(self, event: Event) -> None:
        """Deliver ``event``: sync handlers now, async ones as tasks, subscribers by queue."""
        for kind in (event.kind, _ALL):
            for handler in tuple(self._handlers.get(kind, ())):
                try:
                    result = handler(event)
                except Exception:
                    _handler_failed(handler, event)
                    continue
                if inspect.isawaitable(result):
                    self._tasks.spawn(self._guard(handler, event, result))
        for subscription in tuple(self._subscriptions):
            subscription._put(event)

    @staticmethod
    async def _guard(handler: Handler, event: Event, result: Awaitable[None]) -> None:
        try:
            await result
        except Exception:
            _handler_failed(handler, event)

    async def aclose(self, *, grace_seconds: float = 1.0) -> None:
        """End every subscription and give running async handlers a bounded time to finish."""
        self._closed = True
        for subscription in tuple(self._subscriptions):
            subscription._put(None)
        self._subscriptions.clear()
        await self._tasks.aclose(grace_seconds=grace_seconds)
