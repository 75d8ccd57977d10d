"""The sweeper: timely ``expired`` events from the expiry schedule, without scanning keys.

Redis reports a key's expiry when it deletes the key, which beside many
volatile keys can take minutes. Every instance with the listener on runs a
sweeper that, every :data:`SWEEP_INTERVAL_SECONDS`, leases the due entries of
the 16 schedule buckets (so no two sweepers work on the same entry), looks at
each session (reading it makes Redis expire it at once) and settles it: an
ended session is logged and announced on the events channel once, for every
instance; a live one (extended since) goes back on the schedule at its real
expiry. See docs/events.md and docs/layout.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time

from ._feed import SessionFeed
from ._layout import SCHEDULE_BUCKETS, Layout
from ._redis.schedule import Schedule, SettleRow
from ._tasks import Supervisor, stop
from .errors import StoreError

__all__ = ["Sweeper", "Unscheduler"]

logger = logging.getLogger("redis_jwt.events")

#: Time between two sweeps of one instance (expired events come within about this).
SWEEP_INTERVAL_SECONDS = 0.5
#: Entries leased per bucket and round, and rounds per sweep at most.
CLAIM_LIMIT = 256
MAX_ROUNDS = 16
#: A leased entry comes due again after this, should its sweeper die mid-way.
LEASE_MS = 5_000
#: How long the expiry log keeps an entry: a listener away for longer may miss expiries.
EXPIRY_LOG_MS = 600_000
_BUCKETS = tuple(range(SCHEDULE_BUCKETS))


class Sweeper:
    """Reports expiries from the schedule; one per instance with the listener on."""

    def __init__(
        self, schedule: Schedule, feed: SessionFeed, layout: Layout, tasks: Supervisor
    ) -> None:
        self._schedule = schedule
        self._feed = feed
        self._layout = layout
        self._tasks = tasks
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start sweeping in the background."""
        if self._task is None:
            self._task = self._tasks.spawn(self._loop(), name="redis-jwt-sweeper")

    def kick(self) -> None:
        """Sweep now (after a reconnect) instead of at the next tick."""
        self._wake.set()

    async def _loop(self) -> None:
        while not self._tasks.closed:
            try:
                await self.sweep()
            except StoreError:
                pass  # Redis is away: the store told the lifecycle; try again next tick
            except Exception:  # a bug must not stop expiry reporting for good
                logger.exception("the expiry sweeper failed; retrying")
            self._wake.clear()
            # Jitter: instances started together do not sweep in lockstep.
            pause = SWEEP_INTERVAL_SECONDS * random.uniform(0.8, 1.2)  # noqa: S311
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(pause):
                    await self._wake.wait()

    async def sweep(self) -> int:
        """Settle every due entry (bounded); return how many expiries this call reported."""
        reported = 0
        for _ in range(MAX_ROUNDS):
            claimed = await self._schedule.claim(_BUCKETS, CLAIM_LIMIT, LEASE_MS)
            if not claimed:
                break
            reported += await self._settle(claimed, time.monotonic())
            if all(len(keys) < CLAIM_LIMIT for keys in claimed.values()):
                break
        return reported

    async def _settle(self, claimed: dict[int, list[str]], claimed_at: float) -> int:
        looked: list[tuple[int, str, str, str]] = []
        settle: dict[int, list[SettleRow]] = {}
        for bucket, keys in claimed.items():
            for key in keys:
                parsed = self._layout.parse_session_key(key)
                if parsed is None:  # not a key of this layout: drop the entry silently
                    settle.setdefault(bucket, []).append(SettleRow(key, "", "", None))
                else:
                    looked.append((bucket, key, *parsed))
        found = await self._schedule.inspect([row[1:] for row in looked])
        for (bucket, key, user_id, session_id), seen in zip(looked, found, strict=True):
            if seen.known:  # unknown (node failed): the entry comes due again
                row = SettleRow(key, user_id, session_id, seen.left_ms)
                settle.setdefault(bucket, []).append(row)
        reported = await self._schedule.settle(settle, EXPIRY_LOG_MS) if settle else []
        telemetry = self._feed.telemetry.active
        overdue_ms = self._schedule.overdue_ms
        for key in reported:
            parsed = self._layout.parse_session_key(key)
            if parsed is not None:
                self._feed.local("expired", *parsed)
                if telemetry is not None and key in overdue_ms:
                    # Due (ended) before the claim, on Redis's clock; then our own time since.
                    lag = overdue_ms[key] / 1000 + (time.monotonic() - claimed_at)
                    telemetry.events_lag.record(lag)
        return len(reported)

    async def replay(self, since_ms: int) -> int:
        """Report again the expiries logged since ``since_ms`` (Redis clock); return how many."""
        keys = await self._schedule.expired_since(_BUCKETS, since_ms, limit=100_000)
        for key in keys:
            self._feed.replayed(key)
        return len(keys)


class Unscheduler:
    """Drops ended sessions from the schedule in the background, in batches (best effort).

    ``destroy`` does it in its own round trip; evictions (known only after
    ``sign`` returns) and ``destroy_all`` go through here so that ``sign``
    stays one round trip.
    """

    def __init__(self, schedule: Schedule, tasks: Supervisor) -> None:
        self._schedule = schedule
        self._tasks = tasks
        self._pending: list[str] = []
        self._task: asyncio.Task[None] | None = None

    def add(self, session_keys: list[str]) -> None:
        """Queue session keys to drop from the schedule."""
        if not session_keys:
            return
        self._pending.extend(session_keys)
        if self._task is None or self._task.done():
            self._task = self._tasks.spawn(self._flush(), name="redis-jwt-unschedule")

    async def _flush(self) -> None:
        for _ in range(100):
            batch, self._pending = self._pending[:1000], self._pending[1000:]
            if not batch:
                return
            try:
                await self._schedule.remove(batch)
            except StoreError as exc:
                # Their entries come due: each is then reported as expired (at worst a
                # second ending, which listeners drop within 10 minutes).
                logger.debug("could not drop %d schedule entries: %s", len(batch), exc)

    async def flush(self, grace_seconds: float = 1.0) -> None:
        """Give queued removals a bounded time to finish (before shutdown stops them)."""
        task = self._task
        if task is not None and not task.done():
            await asyncio.wait((task,), timeout=grace_seconds)
            await stop(task)
