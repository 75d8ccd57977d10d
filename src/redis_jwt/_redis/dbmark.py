"""The local cache's database check: the change that tracking does not announce.

``CLIENT TRACKING`` sends a flush notice for ``FLUSHALL`` and ``FLUSHDB``
but nothing for ``SWAPDB`` (Redis 6.2 and 7.0 alike), which replaces every
key of the database at once. So, outside Cluster (one database, no
``SWAPDB``), the cache reads a marker key, ``<prefix>:cache-db``, every
ping interval: a random value written once with ``SET NX`` (expiring after
:data:`MARK_SECONDS`). A missing or different value means the database under
the cache changed. Each check is a round trip sent at a known time, so it
proves the cache current as of then, like the links' pings.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from typing import Any

from redis.asyncio.cluster import RedisCluster

from .store import AnyRedis

__all__ = ["MARK_SECONDS", "DatabaseMark"]

logger = logging.getLogger("redis_jwt")

#: The marker lives this long; when it expires the cache is flushed once (harmless).
MARK_SECONDS = 86_400


class DatabaseMark:
    """Tells whether the database under the cache was swapped or flushed.

    Args:
        client: the data client.
        key: the marker key (under the library's prefix).
        timeout_seconds: how long one check may take.
    """

    __slots__ = ("_client", "_key", "_mark", "_timeout", "needed", "proved_at")

    def __init__(self, client: AnyRedis, key: str, *, timeout_seconds: float) -> None:
        self._client = client
        self._key = key
        self._timeout = timeout_seconds
        self._mark: bytes | None = None
        #: Whether checks are needed (not on a Cluster).
        self.needed = not isinstance(client, RedisCluster)
        #: Monotonic send time of the latest successful check (never stale when not needed).
        self.proved_at = 0.0 if self.needed else math.inf

    async def check(self) -> bool:
        """Read the marker; return True when the database changed since the last check.

        The first check returns True too (nothing was known before it).

        Raises:
            redis.exceptions.RedisError, TimeoutError: when Redis fails or refuses.
        """
        sent_at = time.monotonic()
        client: Any = self._client  # a Redis here (checks are not needed on a Cluster)
        async with asyncio.timeout(self._timeout):
            mark = await client.get(self._key)
            if mark is None or mark != self._mark:
                # One transaction: a SWAPDB cannot fall between writing and reading.
                async with client.pipeline(transaction=True) as pipe:
                    pipe.set(self._key, secrets.token_hex(16), nx=True, ex=MARK_SECONDS)
                    pipe.get(self._key)
                    _, mark = await pipe.execute()
        changed: bool = mark != self._mark
        if changed and self._mark is not None:
            logger.info("local cache: the database changed (SWAPDB or a flush); flushing")
        self._mark = mark
        self.proved_at = max(self.proved_at, sent_at)
        return changed
