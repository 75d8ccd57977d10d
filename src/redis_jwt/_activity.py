"""``track_activity=True``: when each session was last seen, at no extra round trip.

A verify that finds its session's last-seen record older than
``activity_resolution`` (as far as this process knows) queues ``seen.lua``
beside its own command, so both share one round trip; every other verify
writes nothing. So ``SessionInfo.last_seen_at`` trails the last successful
verify by less than the resolution, whichever instance served it.
"""

from __future__ import annotations

import time

__all__ = ["ActivityClock"]

#: Sessions remembered per process; past this, entries older than the resolution are dropped.
MAX_TRACKED_SESSIONS = 100_000


class ActivityClock:
    """Per-process record of when each session's last-seen time was last written.

    Args:
        resolution_seconds: how stale a session's last-seen time may grow.
        max_entries: how many sessions to remember at most.
    """

    __slots__ = ("_max", "_resolution", "_written")

    def __init__(
        self, resolution_seconds: float, *, max_entries: int = MAX_TRACKED_SESSIONS
    ) -> None:
        self._resolution = resolution_seconds
        self._max = max_entries
        self._written: dict[str, float] = {}

    def due(self, session_id: str) -> bool:
        """Whether this verify must write the last-seen time; if so, count it as written."""
        now = time.monotonic()
        written = self._written
        last = written.get(session_id)
        if last is not None and now - last < self._resolution:
            return False
        if last is None and len(written) >= self._max:
            written = self._forget(now)
        written[session_id] = now
        return True

    def _forget(self, now: float) -> dict[str, float]:
        # Entries older than the resolution would be written again anyway.
        horizon = now - self._resolution
        fresh = {sid: at for sid, at in self._written.items() if at >= horizon}
        # Still full: more live sessions than the bound verified within one
        # resolution. Forgetting them costs one extra write each, never a wrong time.
        self._written = fresh if len(fresh) < self._max else {}
        return self._written

    def __len__(self) -> int:
        return len(self._written)
