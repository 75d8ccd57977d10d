"""Eviction (``allkeys-lru``): logging out everywhere still ends every session that verifies.

Redis may evict a user's index while their session keys live on. The index is
what ``destroy_all`` reads, so a session counts only while its index entry
exists: ``verify`` (and the local cache) refuse the others.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio import Redis

from redis_jwt import RedisJWT, errors
from redis_jwt.testing import RedisBinary, RedisServer

from .conftest import SECRET

USERS = [f"user-{n}" for n in range(150)]
_FILLER = b"x" * 8192


async def _refused_within(auth: RedisJWT, token: str, timeout_seconds: float) -> bool:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        try:
            await auth.verify(token)
        except errors.SessionNotFound:
            return True
        await asyncio.sleep(0.02)
    return False


async def test_destroy_all_ends_every_session_that_verifies_under_allkeys_lru(
    redis_jwt_binary: RedisBinary,
) -> None:
    args = ["--maxmemory", "3mb", "--maxmemory-policy", "allkeys-lru"]
    with RedisServer(redis_jwt_binary, extra_args=args) as server:
        raw = Redis.from_url(server.url)
        async with (
            RedisJWT(secret=SECRET, redis_url=server.url) as auth,
            RedisJWT(secret=SECRET, redis_url=server.url, local_cache=True) as cached,
        ):
            tokens = {user: [await auth.sign(user) for _ in range(2)] for user in USERS}
            keys = {}
            for user, pair in tokens.items():
                for token in pair:
                    session = await cached.verify(token)  # remembered by the local cache
                    keys[token] = auth.layout.session_key(user, session.session_id)
            # Pressure: keep the session keys recently used, so that LRU takes the
            # (older) index keys while the sessions live on.
            orphans: list[str] = []
            for round_ in range(300):
                alive = [t for t, k in keys.items() if await raw.exists(k)]
                orphans = [
                    t
                    for user, pair in tokens.items()
                    for t in pair
                    if t in alive and not await raw.exists(auth.layout.index_key(user))
                ]
                if len(orphans) >= 10:
                    break
                if alive:
                    await raw.touch(*(keys[t] for t in alive))
                pipe = raw.pipeline(transaction=False)
                for n in range(16):
                    pipe.set(f"filler:{round_}:{n}", _FILLER)
                await pipe.execute()
            info = await raw.info("stats")
            assert int(info["evicted_keys"]) > 0
            assert len(orphans) >= 10, "no index was evicted while its sessions lived"
            # The sessions whose index is gone no longer verify, cached or not...
            for token in orphans:
                with pytest.raises(errors.SessionNotFound):
                    await auth.verify(token)
                assert await _refused_within(cached, token, 3.0)
            # ...and logging out everywhere leaves nothing that verifies.
            for user in USERS:
                await auth.destroy_all(user)
            for pair in tokens.values():
                for token in pair:
                    with pytest.raises(errors.SessionNotFound):
                        await auth.verify(token)
                    with pytest.raises(errors.SessionNotFound):
                        await cached.verify(token)
                assert await auth.count(USERS[0]) == 0
        await raw.aclose()
