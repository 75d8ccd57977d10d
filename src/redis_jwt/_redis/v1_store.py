"""The session commands of layout v1 (docs/layout.md): one script each, in the user's slot.

Key names come from :class:`~redis_jwt._layout.Layout`; replies are parsed
into the typed values of :mod:`.replies` before they leave this module.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from redis import exceptions as rex

from .._layout import Layout
from .replies import Liveness, SessionRow, Signed, TouchFlag, liveness, text
from .store import Call, Store

__all__ = ["SCHEDULE_HORIZON_MS", "V1Store"]

logger = logging.getLogger("redis_jwt")

#: Schedule entries overdue by longer than this are dropped when a new one is
#: added (no sweeper ran for a day); it also bounds the buckets' lifetime.
SCHEDULE_HORIZON_MS = 86_400_000


class V1Store:
    """Sessions of layout v1 on one Redis deployment.

    Args:
        store: the boundary's core.
        layout: the key names.
        origin: this instance's id in the notices the scripts publish (field ``o``).
        scheduling: whether ``sign`` also puts the session on the expiry schedule.
    """

    __slots__ = ("_store", "channel", "layout", "origin", "scheduling")

    def __init__(self, store: Store, layout: Layout, *, origin: str, scheduling: bool) -> None:
        self._store = store
        self.layout = layout
        #: The channel the scripts publish session events on.
        self.channel = layout.channel
        self.origin = origin
        self.scheduling = scheduling

    async def sign(
        self,
        user_id: str,
        session_id: str,
        *,
        idle_seconds: int,
        exp: int,
        data: str,
        limit: int,
    ) -> Signed:
        """Create a session, evicting the oldest beyond ``limit`` (0: no limit)."""
        layout = self.layout
        key = layout.session_key(user_id, session_id)
        call: Call = (
            "sign",
            (key, layout.index_key(user_id)),
            (session_id, idle_seconds, exp, data, limit, self.channel,
             layout.session_prefix(user_id), user_id, self.origin),
        )  # fmt: skip
        if self.scheduling:
            reply = await self._store.run(self._sign_scheduled(call, key, idle_seconds, exp))
        else:
            reply = await self._store.script(*call)
        return Signed(int(reply[0]), int(reply[1]), [text(v) for v in reply[2:]])

    async def _sign_scheduled(self, call: Call, key: str, idle_seconds: int, exp: int) -> Any:
        # One round trip: the session (user's slot), then its schedule entry (a bucket's slot).
        bucket = self.layout.schedule_key(self.layout.bucket(key))
        schedule: Call = ("schedule", (bucket,), (key, idle_seconds, exp, SCHEDULE_HORIZON_MS))
        signed, scheduled = await self._store.batch((call, schedule))
        if isinstance(signed, Exception):
            if not isinstance(scheduled, Exception):  # no session: no schedule entry either
                with contextlib.suppress(rex.RedisError, OSError):
                    await self._store.client.zrem(bucket, key)
            raise signed
        if isinstance(scheduled, Exception):
            # The session is stored, so the token stands; only its expired event may be late.
            logger.warning("could not put a session on the expiry schedule: %s", scheduled)
        return signed

    async def alive(self, user_id: str, session_id: str) -> Liveness | None:
        """The session's ttl (one plain ``PTTL``); None when it does not exist."""
        key = self.layout.session_key(user_id, session_id)
        return liveness(await self._store.command(("PTTL", key)))

    async def touch(self, user_id: str, session_id: str, flags: TouchFlag) -> Liveness | None:
        """Run touch.lua (slide, load, announce as ``flags`` say); None when the session is gone."""
        layout = self.layout
        reply = await self._store.script(
            "touch",
            (layout.session_key(user_id, session_id), layout.index_key(user_id)),
            (int(flags), self.channel, user_id, session_id, self.origin),
        )
        return liveness(reply[0], reply[1] if len(reply) > 1 else None)

    async def destroy(self, user_id: str, session_id: str, reason: str) -> bool:
        """End one session; return whether it existed."""
        layout = self.layout
        key = layout.session_key(user_id, session_id)
        keys = (key, layout.index_key(user_id))
        args = (session_id, self.channel, user_id, reason, self.origin)
        # Same round trip: drop the schedule entry, so that it is not reported as expired.
        unschedule = ("ZREM", layout.schedule_key(layout.bucket(key)), key)
        if self._store.pipelined:
            ended = self._store.script("destroy", keys, args)
            self._store.send(unschedule)
            return int(await ended) == 1
        reply = await self._store.run(
            self._store.batch(
                (("destroy", keys, args), (unschedule[0], (unschedule[1],), (unschedule[2],))),
                required=1,
            )
        )
        return int(reply[0]) == 1

    async def destroy_all(self, user_id: str) -> list[str]:
        """End every session of a user; return the ids that existed."""
        layout = self.layout
        reply = await self._store.eval(
            "destroy_all",
            (layout.index_key(user_id),),
            (layout.session_prefix(user_id), self.channel, user_id, self.origin),
        )
        return [text(v) for v in reply]

    async def list(self, user_id: str) -> list[SessionRow]:
        """Return the user's live sessions, unordered."""
        layout = self.layout
        flat = await self._store.eval(
            "list", (layout.index_key(user_id),), (layout.session_prefix(user_id), "list")
        )
        rows: list[SessionRow] = []
        for i in range(0, len(flat), 5):
            sid, pttl, created, idle, data = flat[i : i + 5]
            rows.append(
                SessionRow(
                    text(sid),
                    int(pttl),
                    int(created or 0),
                    int(idle or 0),
                    None if data is None else text(data),
                )
            )
        return rows

    async def count(self, user_id: str) -> int:
        """Return the number of live sessions of a user."""
        layout = self.layout
        return int(
            await self._store.eval(
                "list", (layout.index_key(user_id),), (layout.session_prefix(user_id), "count")
            )
        )

    async def wait_replicas(self, user_id: str, replicas: int, timeout_ms: int) -> int:
        """Return how many replicas of the user's primary have the user's writes so far."""
        return await self._store.wait_replicas(
            self.layout.marker_key(user_id), replicas, timeout_ms
        )
