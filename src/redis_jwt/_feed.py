"""One bus event per session change and instance, whatever reported it.

A change can reach an instance three ways: its own call (``sign``,
``destroy``, its sweeper...), the notice a script publishes on the events
channel, and, with ``kea=True``, Redis's keyspace notification. This module
folds them into one event:

- a notice carries its publisher's id (``o``); an instance skips its own
  notices, since it emitted the event when its call returned;
- a session ends once: the first ``destroyed``/``expired`` for a session id
  wins and later ones are dropped (ids are remembered for 10 minutes);
- a keyspace ``del`` is held for a moment, waiting for the notice that says
  why (logout, eviction...); without one it becomes ``destroyed`` with reason
  ``external`` (a deletion made outside the library).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from ._layout import Layout
from ._telemetry import Switch
from .events import EventBus
from .models import Event, EventKind

__all__ = ["SessionFeed"]

logger = logging.getLogger("redis_jwt.events")

_ENDINGS = frozenset({"destroyed", "expired"})
_NOTICE_KINDS: dict[object, EventKind] = {
    "created": "created",
    "extended": "extended",
    "destroyed": "destroyed",
    "expired": "expired",
}
#: How long a keyspace ``del`` waits for the notice that gives its reason.
HOLD_SECONDS = 1.0
#: How long (and how many) ended session ids are remembered to drop duplicates.
MEMORY_SECONDS = 600.0
MEMORY_SIZE = 100_000
_MAX_HELD = 10_000


class SessionFeed:
    """Turns local calls, channel notices and keyspace events into bus events.

    Args:
        bus: where events go.
        layout: to read session keys.
        origin: this instance's id, as its scripts publish it.
        telemetry: where this instance's session changes are counted.
        on_external: called with the session key of a session deleted outside
            the library (to drop its schedule entry).
    """

    def __init__(
        self,
        bus: EventBus,
        layout: Layout,
        origin: str,
        *,
        listening: bool,
        telemetry: Switch | None = None,
        on_external: Callable[[str], None] | None = None,
    ) -> None:
        self._bus = bus
        #: Where this instance's session changes are counted (set at open).
        self.telemetry = telemetry or Switch()
        self._layout = layout
        self._prefix = layout.prefix.encode()
        self._origin = origin
        self._on_external = on_external
        #: Whether a listener feeds this instance too (then endings are deduplicated).
        self.listening = listening
        self._ended: dict[str, float] = {}
        self._held: dict[str, asyncio.TimerHandle] = {}

    def _emit(
        self,
        kind: EventKind,
        user_id: str | None,
        session_id: str | None,
        reason: str | None,
        error: BaseException | None = None,
    ) -> None:
        self._bus.emit(
            Event.model_construct(
                kind=kind,
                user_id=user_id,
                session_id=session_id,
                at=datetime.now(UTC),
                reason=reason,
                error=error,
            )
        )

    def emit(
        self,
        kind: EventKind,
        user_id: str | None = None,
        session_id: str | None = None,
        *,
        reason: str | None = None,
        error: BaseException | None = None,
    ) -> None:
        """Any event of this instance: session events go through :meth:`local`."""
        if user_id is not None and session_id is not None:
            self.local(kind, user_id, session_id, reason)
        elif self._bus.has_listeners:
            self._emit(kind, user_id, session_id, reason, error)

    def _first_end(self, session_id: str) -> bool:
        """Record that ``session_id`` ended; False if it was already recorded."""
        ended = self._ended
        if session_id in ended:
            return False
        now = time.monotonic()
        ended[session_id] = now
        if len(ended) > MEMORY_SIZE or next(iter(ended.values())) < now - MEMORY_SECONDS:
            for _ in range(64):  # bounded work per call; insertion order is age order
                oldest = next(iter(ended))
                if len(ended) <= MEMORY_SIZE and ended[oldest] >= now - MEMORY_SECONDS:
                    break
                del ended[oldest]
        return True

    def local(
        self, kind: EventKind, user_id: str, session_id: str, reason: str | None = None
    ) -> None:
        """An event this instance caused (its calls, its sweeper)."""
        telemetry = self.telemetry.active
        if telemetry is not None:
            # Counted where the change was made, so that N instances count it once.
            telemetry.session_event(kind, reason)
        if not self._bus.has_listeners:
            return
        if self.listening and kind in _ENDINGS and not self._first_end(session_id):
            return
        self._emit(kind, user_id, session_id, reason)

    def notice(self, payload: bytes | str) -> None:
        """A JSON notice from the events channel: ``{"e", "u", "s", "r"?, "o"?}``."""
        if not self._bus.has_listeners:
            return
        try:
            data = json.loads(payload)
            kind = _NOTICE_KINDS[data["e"]]
            user_id, session_id = data["u"], data["s"]
        except (ValueError, TypeError, KeyError):
            logger.debug("ignoring a malformed events notice: %r", payload[:200])
            return
        if not isinstance(user_id, str) or not isinstance(session_id, str):
            return
        own = data.get("o") == self._origin
        reason = data.get("r")
        if kind in _ENDINGS:
            held = self._held.pop(session_id, None)
            if held is not None:
                held.cancel()
            # Our own ending: the call that caused it emits it (and records it).
            if own or not self._first_end(session_id):
                return
        elif own:
            return
        self._emit(kind, user_id, session_id, reason if isinstance(reason, str) else None)

    def keyevent(self, event: bytes, key: bytes) -> None:
        """A keyspace event (``expired`` or ``del``) about ``key``."""
        if not self._bus.has_listeners or not key.startswith(self._prefix):
            return
        try:
            parsed = self._layout.parse_session_key(key.decode())
        except UnicodeDecodeError:
            return
        if parsed is None:
            return
        user_id, session_id = parsed
        if event == b"expired":
            held = self._held.pop(session_id, None)
            if held is not None:
                held.cancel()
            if self._first_end(session_id):
                self._emit("expired", user_id, session_id, None)
        elif session_id not in self._ended and session_id not in self._held:
            if len(self._held) >= _MAX_HELD:
                self._release(key.decode(), user_id, session_id)
                return
            self._held[session_id] = asyncio.get_running_loop().call_later(
                HOLD_SECONDS, self._release, key.decode(), user_id, session_id
            )

    def _release(self, key: str, user_id: str, session_id: str) -> None:
        self._held.pop(session_id, None)
        if self._first_end(session_id):
            self._emit("destroyed", user_id, session_id, "external")
            if self._on_external is not None:
                self._on_external(key)

    def replayed(self, session_key: str) -> None:
        """An expiry read back from the expiry log after the listener was away."""
        if not self._bus.has_listeners:
            return
        parsed = self._layout.parse_session_key(session_key)
        if parsed is not None and self._first_end(parsed[1]):
            self._emit("expired", parsed[0], parsed[1], None)

    def close(self) -> None:
        """Cancel held deletions (nothing is emitted after close)."""
        for handle in self._held.values():
            handle.cancel()
        self._held.clear()
