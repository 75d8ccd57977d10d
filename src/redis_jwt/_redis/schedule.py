"""The expiry schedule's side of the store: the scripts of docs/layout.md, "Expiry schedule".

Every session signed while the schedule is on has an entry in one of 16
buckets (``<prefix>:{x<b>}:due``, each its own hash slot): member = session
key, score = when it ends (ms, Redis clock). Sweepers lease due entries
(``claim.lua``), look at the sessions (``inspect.lua``, in the user's slot)
and settle them (``settle.lua``): live ones go back on the schedule at their
real expiry, ended ones are logged in ``<prefix>:{x<b>}:gone`` and announced
on the events channel, once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from .._layout import Layout
from .replies import text
from .store import Call, Store
from .v1_store import SCHEDULE_HORIZON_MS

__all__ = ["Inspection", "Schedule", "SettleRow"]

logger = logging.getLogger("redis_jwt.events")


class SettleRow(NamedTuple):
    """What the sweeper tells ``settle.lua`` about one schedule entry."""

    session_key: str
    user_id: str
    session_id: str
    #: Time left; None when the session ended (or the key is none of this layout's).
    left_ms: int | None


class Inspection(NamedTuple):
    """What ``inspect.lua`` found about one session."""

    #: False when its node failed: the entry comes due again after its lease.
    known: bool
    #: Time left; None when the session ended.
    left_ms: int | None


class Schedule:
    """Reads and writes the expiry schedule through the store.

    Args:
        store: the boundary's core.
        layout: the key names.
        origin: this instance's id in the notices ``settle.lua`` publishes.
    """

    __slots__ = ("_layout", "_origin", "_store", "overdue_ms")

    def __init__(self, store: Store, layout: Layout, *, origin: str) -> None:
        self._store = store
        #: For the entries of the last claim: how long ago each came due (ms).
        self.overdue_ms: dict[str, int] = {}
        self._layout = layout
        self._origin = origin

    def _by_bucket(self, keys: Iterable[str]) -> dict[int, list[str]]:
        buckets: dict[int, list[str]] = {}
        for key in keys:
            buckets.setdefault(self._layout.bucket(key), []).append(key)
        return buckets

    async def remove(self, session_keys: Iterable[str]) -> None:
        """Drop sessions that ended otherwise (destroyed, evicted) from the schedule."""
        calls: list[Call] = [
            ("ZREM", (self._layout.schedule_key(bucket),), keys)
            for bucket, keys in self._by_bucket(session_keys).items()
        ]
        if calls:
            await self._store.run(self._store.batch(calls, required=len(calls)))

    async def claim(
        self, buckets: Sequence[int], limit: int, lease_ms: int
    ) -> dict[int, list[str]]:
        """Lease up to ``limit`` due entries of each bucket; return them by bucket.

        A bucket whose node failed is skipped (its entries stay due); when
        every bucket failed, the error is raised. How long ago each entry came
        due is kept in :attr:`overdue_ms` (key -> ms, Redis's clock on both
        sides), for the ``redis_jwt.events.lag`` metric.
        """
        calls: list[Call] = [
            ("claim", (self._layout.schedule_key(b),), (limit, lease_ms)) for b in buckets
        ]
        replies = await self._store.run(self._store.batch(calls))
        self.overdue_ms = {}
        claimed: dict[int, list[str]] = {}
        failed: Exception | None = None
        for bucket, reply in zip(buckets, replies, strict=True):
            if isinstance(reply, Exception):
                failed = reply
                logger.debug("claiming schedule bucket %d failed: %s", bucket, reply)
            elif len(reply) > 1:
                now_ms = int(reply[0])
                keys = [text(v) for v in reply[1::2]]
                claimed[bucket] = keys
                for key, due in zip(keys, reply[2::2], strict=True):
                    self.overdue_ms[key] = max(0, now_ms - int(float(due)))
        if failed is not None and not claimed and all(isinstance(r, Exception) for r in replies):
            error = self._store.translate(failed)
            if error is failed:
                raise failed
            raise error from failed
        return claimed

    async def inspect(self, sessions: Sequence[tuple[str, str, str]]) -> list[Inspection]:
        """Look at each (session key, user id, session id) in its user's slot."""
        calls: list[Call] = [
            ("inspect", (key, self._layout.index_key(user_id)), (session_id,))
            for key, user_id, session_id in sessions
        ]
        replies = await self._store.run(self._store.batch(calls))
        return [
            Inspection(False, None) if isinstance(r, Exception) else _inspection(int(r))
            for r in replies
        ]

    async def settle(self, entries: dict[int, list[SettleRow]], keep_ms: int) -> list[str]:
        """Reschedule live entries, log and announce ended ones; return the keys reported."""
        store = self._store
        calls: list[Call] = []
        for bucket, rows in entries.items():
            args: list[str | int] = [
                self._layout.channel,
                self._origin,
                keep_ms,
                SCHEDULE_HORIZON_MS,
            ]
            for row in rows:
                # settle.lua's wire form: -2 for an ended session, as PTTL says it.
                left = -2 if row.left_ms is None else row.left_ms
                args.extend((row.session_key, row.user_id, row.session_id, left))
            keys = (self._layout.schedule_key(bucket), self._layout.expiry_log_key(bucket))
            calls.append(("settle", keys, args))
        replies = await store.run(store.batch(calls))
        reported: list[str] = []
        for reply in replies:
            if isinstance(reply, Exception):  # these entries come due again after the lease
                logger.debug("settling schedule entries failed: %s", reply)
            else:
                reported.extend(text(v) for v in reply)
        return reported

    async def expired_since(self, buckets: Sequence[int], since_ms: int, limit: int) -> list[str]:
        """Return the session keys reported expired at or after ``since_ms`` (Redis clock)."""
        calls: list[Call] = [
            (
                "ZRANGEBYSCORE",
                (self._layout.expiry_log_key(b),),
                (since_ms, "+inf", "LIMIT", 0, limit),
            )
            for b in buckets
        ]
        replies = await self._store.run(self._store.batch(calls, required=len(calls)))
        return [text(v) for reply in replies for v in reply]


def _inspection(left_ms: int) -> Inspection:
    return Inspection(True, None if left_ms == -2 else left_ms)
