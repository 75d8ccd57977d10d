"""The session commands of layout v1 (docs/layout.md): one script each, in the user's slot.

Key names come from :class:`~redis_jwt._layout.Layout`; replies are parsed
into the typed values of :mod:`.replies` before they leave this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Sequence
from typing import Any

from redis import exceptions as rex

from .._layout import Layout
from ..errors import StoreUnavailable
from .replies import (
    Liveness,
    Refreshed,
    RefreshRefused,
    SessionRow,
    Signed,
    TouchFlag,
    liveness,
    refreshed,
    text,
)
from .scripts import evalsha
from .store import Call, Store

__all__ = ["SCHEDULE_HORIZON_MS", "V1Store"]

logger = logging.getLogger("redis_jwt")

#: Schedule entries overdue by longer than this are dropped when a new one is
#: added (no sweeper ran for a day); it also bounds the buckets' lifetime.
SCHEDULE_HORIZON_MS = 86_400_000
# A script touching several of a user's sessions answers {-1, members...} when,
# on a Cluster, it was not given all of them as keys: it is called again with them.
_UNDECLARED = -1
_DECLARE_ROUNDS = 8


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
        ip: str = "",
        user_agent: str = "",
    ) -> Signed:
        """Create a session, evicting the oldest beyond ``limit`` (0: no limit)."""
        layout = self.layout
        key = layout.session_key(user_id, session_id)
        # The session id names the call: a second run returns the first outcome.
        keys = (key, layout.index_key(user_id), self._call_key(user_id, session_id))
        args = (session_id, idle_seconds, exp, data, limit, self.channel,
                layout.session_prefix(user_id), user_id, self.origin,
                self._store.deadline_ms(), ip, user_agent)  # fmt: skip
        # With a limit the sessions to evict are read first on a Cluster (see _declaring).
        read_first = limit > 0
        if self.scheduling:
            reply = await self._store.run(
                self._sign_scheduled(keys, args, idle_seconds, exp, read_first)
            )
        else:
            reply = await self._declaring("sign", keys, args, user_id, read_first=read_first)
        return Signed(int(reply[1]), int(reply[2]), [text(v) for v in reply[3:]])

    def _call_key(self, user_id: str, call_id: str) -> str:
        """The marker of one writing call (docs/layout.md, "Call markers")."""
        return self.layout.call_key(user_id, call_id)

    async def _declaring(
        self,
        name: str,
        keys: Sequence[str],
        args: Sequence[str | int],
        user_id: str,
        *,
        read_first: bool = True,
    ) -> list[Any]:
        """Run a script that touches several of the user's session keys.

        On a Cluster it must be given them as keys (docs/layout.md, "Cluster:
        every key declared"): they are read from the index first (or, without
        ``read_first``, only when the script asks), and the script re-checks.
        """
        if not self._store.cluster:
            return list(await self._store.script(name, keys, (*args, 0)))
        return await self._store.run(self._declared(name, keys, args, user_id, read_first))

    async def _declared(
        self, name: str, keys: Sequence[str], args: Sequence[str | int], user_id: str, read: bool
    ) -> list[Any]:
        base = self.layout.session_prefix(user_id)
        declared: list[str] = []
        if read:
            found = await self._store.direct(("ZRANGE", self.layout.index_key(user_id), 0, -1))
            declared = [base + text(member) for member in found]
        for _ in range(_DECLARE_ROUNDS):
            reply = list(await self._store.direct(evalsha(name, (*keys, *declared), (*args, 1))))
            if int(reply[0]) != _UNDECLARED:
                return reply
            declared = [base + text(member) for member in reply[1:]]
        raise StoreUnavailable("the user's sessions changed during every attempt; try again")

    async def _sign_scheduled(
        self,
        keys: Sequence[str],
        args: Sequence[str | int],
        idle_seconds: int,
        exp: int,
        read_first: bool,
    ) -> Any:
        # One round trip: the session (user's slot), then its schedule entry (a bucket's slot).
        key = keys[0]
        bucket = self.layout.schedule_key(self.layout.bucket(key))
        schedule: Call = ("schedule", (bucket,), (key, idle_seconds, exp, SCHEDULE_HORIZON_MS))
        signed: Any
        scheduled: Any
        if self._store.cluster:
            user_id = str(args[7])
            signed, scheduled = await asyncio.gather(
                self._declared("sign", keys, args, user_id, read_first),
                self._store.batch((schedule,)),
                return_exceptions=True,
            )
            if isinstance(scheduled, list):
                scheduled = scheduled[0]
        else:
            signed, scheduled = await self._store.batch((("sign", keys, (*args, 0)), schedule))
        if isinstance(signed, BaseException):
            if not isinstance(scheduled, BaseException):  # no session: no schedule entry either
                with contextlib.suppress(rex.RedisError, OSError):
                    await self._store.client.zrem(bucket, key)
            raise signed
        if isinstance(scheduled, BaseException):
            # The session is stored, so the token stands; only its expired event may be late.
            logger.warning("could not put a session on the expiry schedule: %s", scheduled)
        return signed

    async def alive(self, user_id: str, session_id: str) -> Liveness | None:
        """The session's ttl (alive.lua: one round trip); None when it does not exist.

        A session whose index entry is gone (evicted) does not exist either:
        destroy_all could not end it (docs/layout.md, "Eviction").
        """
        layout = self.layout
        return liveness(
            await self._store.script(
                "alive",
                (layout.session_key(user_id, session_id), layout.index_key(user_id)),
                (session_id,),
            )
        )

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
        # A random id names the call: a second run returns the first outcome.
        keys = (key, layout.index_key(user_id), self._call_key(user_id, secrets.token_urlsafe(12)))
        args = (session_id, self.channel, user_id, reason, self.origin, self._store.deadline_ms())
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

    async def destroy_all(self, user_id: str, keep: str = "") -> list[str]:
        """End every session of a user but ``keep``; return the ids that existed."""
        layout = self.layout
        reply = await self._declaring(
            "destroy_all",
            (layout.index_key(user_id), self._call_key(user_id, secrets.token_urlsafe(12))),
            (layout.session_prefix(user_id), self.channel, user_id, self.origin,
             self._store.deadline_ms(), keep),
            user_id,
        )  # fmt: skip
        return [text(v) for v in reply[1:]]

    async def rotate(
        self, user_id: str, session_id: str, new_id: str, *, idle_seconds: int, exp: int
    ) -> Liveness | None:
        """Give a live session the id ``new_id`` (rotate.lua); None when it is gone."""
        layout = self.layout
        key, new_key = layout.session_key(user_id, session_id), layout.session_key(user_id, new_id)
        # The new session id names the call: a second run returns the first outcome.
        call: Call = (
            "rotate",
            (key, new_key, layout.index_key(user_id), self._call_key(user_id, new_id)),
            (session_id, new_id, self.channel, user_id, self.origin, self._store.deadline_ms()),
        )
        if not self.scheduling:
            return liveness(await self._store.script(*call))
        # One round trip: the rotation (user's slot), then the new key's schedule entry.
        bucket = layout.schedule_key(layout.bucket(new_key))
        schedule: Call = ("schedule", (bucket,), (new_key, idle_seconds, exp, SCHEDULE_HORIZON_MS))
        rotated, scheduled = await self._store.run(self._store.batch((call, schedule), required=1))
        alive = liveness(rotated)
        if alive is None and not isinstance(scheduled, Exception):
            # No new session: no schedule entry either (it would come due as an expiry).
            with contextlib.suppress(rex.RedisError, OSError):
                await self._store.client.zrem(bucket, new_key)
        elif isinstance(scheduled, Exception):
            logger.warning("could not put a session on the expiry schedule: %s", scheduled)
        return alive

    async def update(self, user_id: str, session_id: str, data: str) -> Liveness | None:
        """Replace the private data of a live session (update.lua); None when it is gone."""
        layout = self.layout
        reply = await self._store.script(
            "update",
            (layout.session_key(user_id, session_id), layout.index_key(user_id)),
            (session_id, data, self._store.deadline_ms()),
        )
        return liveness(reply[0], data or None)

    def record_seen(self, user_id: str, session_id: str) -> bool:
        """Queue seen.lua in this loop pass's pipeline, its reply ignored.

        Queued before the verify's own command, it shares its round trip.
        Returns False (nothing sent) without an auto-pipeline: see :meth:`seen`.
        """
        key = self.layout.session_key(user_id, session_id)
        return self._store.send(evalsha("seen", (key,), ()))

    async def seen(self, user_id: str, session_id: str) -> None:
        """Run seen.lua directly (a Cluster client, which has no auto-pipeline)."""
        await self._store.script("seen", (self.layout.session_key(user_id, session_id),), ())

    async def list(self, user_id: str) -> list[SessionRow]:
        """Return the user's live sessions, unordered."""
        layout = self.layout
        flat = await self._declaring(
            "list", (layout.index_key(user_id),), (layout.session_prefix(user_id), "list"), user_id
        )
        rows: list[SessionRow] = []
        for i in range(1, len(flat), 8):
            sid, pttl, created, idle, data, ip, agent, seen = flat[i : i + 8]
            rows.append(
                SessionRow(
                    text(sid),
                    int(pttl),
                    int(created or 0),
                    int(idle or 0),
                    None if data is None else text(data),
                    None if ip is None else text(ip),
                    None if agent is None else text(agent),
                    None if seen is None else int(seen),
                )
            )
        return rows

    async def count(self, user_id: str) -> int:
        """Return the number of live sessions of a user."""
        layout = self.layout
        reply = await self._declaring(
            "list", (layout.index_key(user_id),), (layout.session_prefix(user_id), "count"), user_id
        )
        return int(reply[0])

    async def refresh(
        self,
        user_id: str,
        session_id: str,
        *,
        generation: int,
        grace_ms: int,
        data_token_json: str,
    ) -> Refreshed | RefreshRefused:
        """Run refresh.lua: spend refresh token ``generation`` of the session (one script).

        Safe to repeat: a retry after a lost reply finds its call marker and
        returns the first outcome; a run past the deadline (its caller was told
        it failed) changes nothing.
        """
        layout = self.layout
        # A random id names the call: a second run returns the first outcome.
        reply = await self._store.script(
            "refresh",
            (
                layout.session_key(user_id, session_id),
                layout.index_key(user_id),
                self._call_key(user_id, secrets.token_urlsafe(12)),
            ),
            (session_id, generation, grace_ms, data_token_json, self.channel, user_id,
             self.origin, self._store.deadline_ms()),
        )  # fmt: skip
        return refreshed(reply)

    async def wait_replicas(self, user_id: str, replicas: int, timeout_ms: int) -> int:
        """Return how many replicas of the user's primary have the user's writes so far."""
        return await self._store.wait_replicas(
            self.layout.marker_key(user_id), replicas, timeout_ms
        )
