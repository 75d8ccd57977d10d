"""Side connections: what the events listener and the invalidation links share.

A side connection is one connection per primary, built from the data
client's address and credentials but outside its pool, with timeouts of its
own and no hidden retries, so that a failure is seen (and reported) by its
owner. Each is kept alive by a :class:`Heartbeat` (a half-open TCP link is
found within seconds) or, where staleness must be bounded, by
:class:`RoundTrips` (liveness proved by answered pings, not by traffic), and
brought back by :func:`keep_up`, whose pauses come from redis-py's ``Retry``
and a backoff value, not from a hand-written loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from redis import exceptions as rex
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import AbstractBackoff, ExponentialBackoff, NoBackoff

from .._compat import side_connection_kwargs
from .store import AnyRedis

__all__ = [
    "Endpoint",
    "Heartbeat",
    "HeartbeatMissed",
    "RestartBackoff",
    "RoundTrips",
    "endpoints",
    "keep_up",
    "side_connection",
    "until_done",
]

logger = logging.getLogger("redis_jwt")

#: Where to connect: a connection class and its keyword arguments.
Endpoint = tuple[type[AbstractConnection], dict[str, Any]]
#: Pauses between attempts grow to this at most.
MAX_BACKOFF_SECONDS = 2.0


class HeartbeatMissed(rex.ConnectionError):
    """The link did not answer the heartbeat in time (half-open or frozen peer)."""


def endpoints(client: AnyRedis) -> list[Endpoint]:
    """The primaries of ``client``: one for a standalone or Sentinel client, each for a Cluster."""
    if isinstance(client, RedisCluster):
        return [(n.connection_class, dict(n.connection_kwargs)) for n in client.get_primaries()]
    pool = client.connection_pool
    return [(pool.connection_class, dict(pool.connection_kwargs))]


def side_connection(endpoint: Endpoint, *, timeout_seconds: float, client_name: str) -> Any:
    """A new connection to ``endpoint``, failing within ``timeout_seconds`` and never retrying."""
    cls, kwargs = endpoint
    kwargs = side_connection_kwargs(dict(kwargs))
    kwargs.update(
        socket_timeout=timeout_seconds,
        socket_connect_timeout=min(kwargs.get("socket_connect_timeout") or 5, timeout_seconds),
        retry=Retry(NoBackoff(), 0),
        retry_on_error=[],
        retry_on_timeout=False,
        health_check_interval=0,
        decode_responses=False,
        protocol=2,
        client_name=client_name,
    )
    return cls(**kwargs)


class Heartbeat:
    """When a quiet link must be pinged, and when its silence means it is lost.

    Args:
        interval_seconds: a ``PING`` after this much silence.
        timeout_seconds: the link is lost when the ``PING`` is unanswered this long.
    """

    __slots__ = ("interval", "last_rx", "ping_sent", "timeout")

    def __init__(self, interval_seconds: float, timeout_seconds: float) -> None:
        self.interval = interval_seconds
        self.timeout = timeout_seconds
        #: Monotonic time of the last reply or message.
        self.last_rx = time.monotonic()
        #: Monotonic time of the unanswered ``PING``, if any.
        self.ping_sent: float | None = None

    def heard(self, now: float) -> None:
        """Anything came in: the link is alive."""
        self.last_rx = now
        self.ping_sent = None

    def ping_due(self, now: float) -> bool:
        """Whether a ``PING`` should go out now."""
        return self.ping_sent is None and now - self.last_rx >= self.interval

    def pinged(self, now: float) -> None:
        """A ``PING`` went out."""
        self.ping_sent = now

    def overdue(self, now: float) -> bool:
        """Whether the ``PING`` went unanswered for too long."""
        return self.ping_sent is not None and now - self.ping_sent > self.timeout

    def wait_seconds(self, now: float) -> float:
        """How long to wait for traffic before the next check."""
        if self.ping_sent is None:
            return self.last_rx + self.interval - now
        return self.ping_sent + self.timeout - now

    def missed(self) -> HeartbeatMissed:
        """The error that ends a link whose heartbeat went unanswered."""
        return HeartbeatMissed(f"no answer to the heartbeat within {self.timeout:g} s")


class RoundTrips:
    """Liveness proved by round trips: pings that carry their send time.

    On an ordered stream, the answer to a ``PING`` comes after everything the
    server wrote to the link before it read that ``PING``. So once the answer
    to a ``PING`` sent at ``t`` is in, every message the server sent before
    ``t`` has been received: the link is known current as of ``t``
    (:attr:`proved_at`), whatever else it carries. A lagging or trickling link
    keeps delivering bytes, but its proof ages, which is what its owner acts on.

    A ``PING`` goes out every ``interval_seconds`` whether or not traffic flows
    (several may be in flight), and the link counts as lost when one stays
    unanswered for ``timeout_seconds``.

    Args:
        interval_seconds: the time between two pings.
        timeout_seconds: the link is lost when a ping is unanswered this long.
        tag: the payload's prefix, which names the link in ``MONITOR`` output.
    """

    __slots__ = ("_sent", "_tag", "interval", "proved_at", "timeout")

    def __init__(self, interval_seconds: float, timeout_seconds: float, *, tag: bytes) -> None:
        self.interval = interval_seconds
        self.timeout = timeout_seconds
        self._tag = tag + b":"
        #: Monotonic send time of the latest answered round trip (0: none yet).
        self.proved_at = 0.0
        # Send times of the pings in flight, oldest first (answers come in order).
        self._sent: deque[float] = deque()

    def ping_due(self, now: float) -> bool:
        """Whether the next ``PING`` should go out now."""
        return not self._sent or now - self._sent[-1] >= self.interval

    def ping(self, now: float) -> bytes:
        """Note a ``PING`` sent at ``now``; return its payload."""
        self._sent.append(now)
        return self._tag + repr(now).encode()

    def answered(self, payload: object) -> bool:
        """Take the payload of a ``PONG``; False when it is not one of ours."""
        if not isinstance(payload, bytes) or not payload.startswith(self._tag):
            return False
        try:
            sent_at = float(payload[len(self._tag) :])
        except ValueError:
            return False
        sent = self._sent
        while sent and sent[0] <= sent_at:
            sent.popleft()
        self.proved_at = max(self.proved_at, sent_at)
        return True

    def proved(self, sent_at: float) -> None:
        """Another round trip (sent at ``sent_at``) was answered."""
        self.proved_at = max(self.proved_at, sent_at)

    def overdue(self, now: float) -> bool:
        """Whether a ``PING`` went unanswered for too long."""
        return bool(self._sent) and now - self._sent[0] > self.timeout

    def missed(self) -> HeartbeatMissed:
        """The error that ends a link whose ping went unanswered."""
        return HeartbeatMissed(f"no answer to a ping within {self.timeout:g} s")


class RestartBackoff(AbstractBackoff):
    """Exponential backoff counted from the last time the link came up.

    The first attempt after a loss is immediate; then ``first_seconds``,
    doubling up to ``cap_seconds``. :meth:`up` starts the count again.
    """

    def __init__(self, first_seconds: float, cap_seconds: float = MAX_BACKOFF_SECONDS) -> None:
        self._growth = ExponentialBackoff(cap=cap_seconds, base=first_seconds)
        self._failures = 0
        self._since = 0

    def reset(self) -> None:
        self._failures = self._since = 0

    def up(self) -> None:
        """The link came up: the next loss is retried at once."""
        self._since = self._failures

    def compute(self, failures: int) -> float:
        self._failures = failures
        attempt = failures - self._since
        return 0.0 if attempt <= 1 else self._growth.compute(attempt - 2)


class _Ended(rex.ConnectionError):
    """A side connection's session returned while its owner was still open."""


async def keep_up(
    session: Callable[[], Awaitable[None]],
    *,
    backoff: RestartBackoff,
    closed: Callable[[], bool],
    on_failure: Callable[[BaseException], None],
    failures: tuple[type[BaseException], ...],
    what: str,
) -> None:
    """Run ``session`` again after every failure, until ``closed()``.

    ``session`` connects, calls ``backoff.up()`` once up, and runs until its
    link fails (raising). Expected failures (``failures``) go to
    ``on_failure``; anything else is a bug, logged with its traceback, and
    the link is retried all the same (a bug must not end the link for good).
    """

    async def attempt() -> None:
        await session()
        if not closed():
            raise _Ended(f"{what} ended")

    async def failed(exc: Exception) -> None:
        if not isinstance(exc, failures):
            logger.exception("%s failed", what, exc_info=exc)
        on_failure(exc)
        if closed():
            raise exc

    # Every failure is retried (redis-py's stubs expect Redis errors only).
    everything: Any = (Exception,)
    retry = Retry(backoff, -1, supported_errors=everything)
    try:
        await retry.call_with_retry(attempt, failed)
    except Exception:
        if not closed():
            raise


async def until_done(
    attempt: Callable[[], Awaitable[None]],
    *,
    failures: tuple[type[Exception], ...],
    first_seconds: float,
    cap_seconds: float = MAX_BACKOFF_SECONDS,
) -> None:
    """Wait ``first_seconds``, then call ``attempt`` until it succeeds, pausing
    ``2 * first_seconds``, ``4 * first_seconds``... (at most ``cap_seconds``) after each
    failure of the kinds ``failures``; anything else is raised."""

    async def nothing(_exc: Exception) -> None:
        return None

    await asyncio.sleep(first_seconds)
    kinds: Any = failures  # redis-py's stubs expect Redis errors only
    retry = Retry(ExponentialBackoff(cap=cap_seconds, base=first_seconds), -1, kinds)
    await retry.call_with_retry(attempt, nothing)
