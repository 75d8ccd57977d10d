"""The opt-in local verify cache: ``RedisJWT(local_cache=True)``.

A plain ``verify`` asks Redis one thing: the session's ttl (``PTTL``). This
cache remembers, per session key, until when the session is known to live,
so a repeated ``verify`` of a live session costs no round trip. It is kept
exact by Redis itself (server-assisted client-side caching, see
``_redis/tracking.py``): every change of a key under the prefix, made by any
instance or any client (a ``destroy``, an ``extend`` elsewhere, a raw
``DEL``, an expiry, an eviction, a ``FLUSHALL``), is announced on the
invalidation link and drops the entry.

The rules that keep it from ever serving a session Redis no longer has:

- **only while the links are proved current**: entries are served only while
  every invalidation link is subscribed and its latest answered ``PING`` (and,
  outside Cluster, the latest database check) was sent within
  ``MAX_PROOF_AGE_SECONDS``: a round trip, not mere traffic, proves that every
  earlier invalidation has arrived. A lost link flushes the cache, which is
  bypassed until the link is back and subscribed again;
- **no stale fills**: a miss registers a ticket for its key *before* sending
  ``PTTL``; an invalidation of the key (or a flush) revokes the ticket, and
  the reply is stored only if the ticket is still valid when it arrives. A
  change made after Redis answered is announced after the answer, so it
  either revokes the ticket or drops the entry just stored;
- **never past an end**: an entry holds an absolute (monotonic) deadline,
  computed from the ttl Redis gave and the time the question was *sent*, and
  capped by the JWT ``exp``; a hit returns the ttl left, an entry past its
  deadline is a miss. Redis's own expiry notice may come later; the deadline
  does not wait for it;
- **bounded**: at most :data:`MAX_ENTRIES` keys, the oldest dropped first.

Only the plain ``verify`` is cached: ``sliding=True`` must reset the ttl in
Redis on every call and ``with_session=True`` reads the private data, so both
always go to Redis (see docs/decisions.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from ._redis.replies import Liveness
from ._redis.store import AnyRedis
from ._redis.tracking import InvalidationLinks
from ._redis.v1_store import V1Store
from ._tasks import Supervisor

__all__ = ["MAX_ENTRIES", "LocalCache"]

MAX_ENTRIES = 10_000


class LocalCache:
    """Deadlines of live sessions by key, invalidated by Redis.

    Args:
        store: the store that answers misses.
        client: the data client (the links reuse its address and credentials).
        tasks: the owner of the links' task.
        timeout_seconds: connect and answer timeout of the links; :meth:`open`
            waits at most about this long for them.
        max_entries: how many session keys to remember.
    """

    __slots__ = (
        "_entries",
        "_layout",
        "_links",
        "_max",
        "_names",
        "_store",
        "_tickets",
        "_timeout",
        "_users",
        "hits",
    )

    def __init__(
        self,
        store: V1Store,
        client: AnyRedis,
        tasks: Supervisor,
        *,
        timeout_seconds: float,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        self._store = store
        self._layout = store.layout
        self._timeout = timeout_seconds
        self._max = max_entries
        # session key -> monotonic deadline (s)
        self._entries: dict[str, float] = {}
        # (user id, session id) -> session key: a hit then builds no key string
        # (escaping the user id and formatting cost more than the rest of a hit).
        self._names: dict[tuple[str, str], str] = {}
        # session key -> the ticket of the fill in flight
        self._tickets: dict[str, object] = {}
        # index key -> the session keys of that user filled since the index last
        # changed: a session counts only while its index entry exists (an evicted
        # index must end them all here too, see alive.lua).
        self._users: dict[str, set[str]] = {}
        self._links = InvalidationLinks(
            client,
            store.layout.prefix,
            tasks,
            on_keys=self._invalidate,
            on_down=self.clear,
            timeout_seconds=timeout_seconds,
        )
        #: Verifies answered without Redis (for tests and the benchmark).
        self.hits = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def links(self) -> InvalidationLinks:
        """The invalidation links (for tests)."""
        return self._links

    async def open(self) -> None:
        """Start the links and wait (bounded, never failing) for their first attempt.

        The attempt includes the first database check, so that a cache whose
        links came up serves from the first ``verify`` on. When Redis is away
        the cache is simply bypassed until the links are up.
        """
        self._links.start()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._timeout * 3):
                await self._links.tried.wait()

    async def aclose(self) -> None:
        """Stop the links and forget everything."""
        await self._links.aclose()
        self.clear()

    def clear(self) -> None:
        """Forget every entry and revoke every fill in flight."""
        self._entries.clear()
        self._tickets.clear()
        self._users.clear()
        self._names.clear()

    def _invalidate(self, keys: list[str] | None) -> None:
        if keys is None:
            self.clear()
            return
        entries, tickets = self._entries, self._tickets
        users = self._users
        for key in keys:
            entries.pop(key, None)
            tickets.pop(key, None)
            for session_key in users.pop(key, ()):
                entries.pop(session_key, None)
                tickets.pop(session_key, None)

    async def alive(self, user_id: str, session_id: str, exp: int) -> Liveness | None:
        """The session's ttl (None when it does not exist), from memory when possible.

        Raises:
            StoreError: on a miss, when Redis fails.
        """
        names = self._names
        key = names.get((user_id, session_id))
        if key is None:
            if len(names) >= self._max:
                names.clear()  # bounded: names are rebuilt on demand
            key = names[user_id, session_id] = self._layout.session_key(user_id, session_id)
        now = time.monotonic()
        if now >= self._links.alive_until:  # links down or silent: Redis decides
            return await self._store.alive(user_id, session_id)
        deadline = self._entries.get(key)
        if deadline is not None:
            if now < deadline:
                self.hits += 1
                return Liveness(int((deadline - now) * 1000))
            del self._entries[key]
        if len(self._users) >= self._max:
            self.clear()  # bounded: start afresh (fills in flight are not stored)
        ticket = self._tickets[key] = object()
        self._users.setdefault(self._layout.index_key(user_id), set()).add(key)
        wall = time.time()
        try:
            alive = await self._store.alive(user_id, session_id)
        finally:
            stored = self._tickets.get(key) is ticket
            if stored:
                del self._tickets[key]
        if stored and alive is not None:
            # No expiry: the key lost it outside the library; the JWT exp still ends it.
            ttl = alive.ttl_ms
            left = min(ttl / 1000 if ttl is not None else float("inf"), exp - wall)
            if left > 0:
                entries = self._entries
                if len(entries) >= self._max:
                    del entries[next(iter(entries))]
                entries[key] = now + left
        return alive
