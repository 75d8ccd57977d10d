"""Redis memory per session: INFO used_memory delta and MEMORY USAGE of the keys.

The sessions are created through the public API only (``auth.sign`` at
concurrency 64) on a fresh ``redis-server`` of their own, so nothing else
shares the ``used_memory`` figure. One session per user: every session also
pays for a whole per-user index, the most expensive case for the index.
For scale, fastapi-users tokens (``write_token``, up to 20 000: a plain
string key costs the same whatever the count) are measured the same way
afterwards.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio
from fastapi_users.authentication import RedisStrategy

from bench._micro import LIFETIME_SECONDS, SECRET, fill
from bench._rivals import BenchUser, make_users
from redis_jwt import RedisJWT

__all__ = ["MemoryResult", "run_memory"]

SAMPLE = 1000
# fastapi-users tokens for comparison: their per-key cost does not depend on
# the count, so a smaller number keeps the run short.
FU_TOKENS = 20_000
# Creating the sessions may not take longer than this, whatever the count.
TIME_LIMIT_SECONDS = 120.0


@dataclass(frozen=True, slots=True)
class MemoryResult:
    """Bytes per session, measured two ways, and the fastapi-users equivalent."""

    sessions: int
    seconds: float
    used_memory_delta: int
    session_key_bytes: float
    index_key_bytes: float
    fu_tokens: int
    fu_used_memory_delta: int
    fu_key_bytes: float

    @property
    def bytes_per_session(self) -> float:
        """INFO used_memory growth divided by the sessions created."""
        return self.used_memory_delta / self.sessions if self.sessions else 0.0

    @property
    def fu_bytes_per_token(self) -> float:
        """The same for fastapi-users tokens."""
        return self.fu_used_memory_delta / self.fu_tokens if self.fu_tokens else 0.0

    def as_dict(self) -> dict[str, Any]:
        """The machine-readable form used by ``--json``."""
        return {
            "sessions": self.sessions,
            "create_seconds": self.seconds,
            "used_memory_delta": self.used_memory_delta,
            "bytes_per_session": self.bytes_per_session,
            "memory_usage_session_key": self.session_key_bytes,
            "memory_usage_index_key": self.index_key_bytes,
            "fastapi_users_tokens": self.fu_tokens,
            "fastapi_users_bytes_per_token": self.fu_bytes_per_token,
            "fastapi_users_memory_usage_key": self.fu_key_bytes,
        }


async def _used_memory(client: redis.asyncio.Redis) -> int:
    info = await client.info("memory")
    return int(info["used_memory"])


async def _memory_usage(client: redis.asyncio.Redis, keys: list[str]) -> float:
    async with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.memory_usage(key, samples=0)
        sizes = await pipe.execute()
    found = [int(size) for size in sizes if size is not None]
    return sum(found) / len(found) if found else 0.0


async def _create_bounded(make: Callable[[int], Any], count: int) -> tuple[list[Any], float]:
    # In chunks, so that the time limit is checked between them.
    made: list[Any] = []
    start = time.perf_counter()
    chunk = 5000
    while len(made) < count and time.perf_counter() - start < TIME_LIMIT_SECONDS:
        base = len(made)

        def shifted(i: int, base: int = base) -> Any:
            return make(base + i)

        made += await fill(shifted, min(chunk, count - base))
    return made, time.perf_counter() - start


async def run_memory(
    redis_url: str, sessions: int, progress: Callable[[str], None]
) -> MemoryResult:
    """Create ``sessions`` sessions (one per user) and measure what they cost Redis."""
    plain = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    try:
        auth = RedisJWT(secret=SECRET, redis_url=redis_url, ttl=LIFETIME_SECONDS)
        async with auth:
            await plain.flushall()
            before = await _used_memory(plain)
            progress(f"memory: signing {sessions} sessions")
            tokens, seconds = await _create_bounded(lambda i: auth.sign(f"mem-user-{i}"), sessions)
            after = await _used_memory(plain)
            picked = random.sample(range(len(tokens)), min(SAMPLE, len(tokens)))
            session_keys, index_keys = [], []
            for i in picked:
                session = await auth.verify(tokens[i])
                session_keys.append(auth.layout.session_key(session.user_id, session.session_id))
                index_keys.append(auth.layout.index_key(session.user_id))
            session_bytes = await _memory_usage(plain, session_keys)
            index_bytes = await _memory_usage(plain, index_keys)

        await plain.flushall()
        fu_redis = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
        try:
            strategy: RedisStrategy[BenchUser, Any] = RedisStrategy(
                fu_redis, lifetime_seconds=LIFETIME_SECONDS
            )
            users = make_users(1000)
            fu_before = await _used_memory(plain)
            fu_count = min(FU_TOKENS, len(tokens))
            progress(f"memory: writing {fu_count} fastapi-users tokens")
            fu_tokens, _ = await _create_bounded(
                lambda i: strategy.write_token(users[i % len(users)]), fu_count
            )
            fu_after = await _used_memory(plain)
            sample = random.sample(fu_tokens, min(SAMPLE, len(fu_tokens)))
            fu_bytes = await _memory_usage(plain, [f"{strategy.key_prefix}{t}" for t in sample])
        finally:
            await fu_redis.aclose()
    finally:
        await plain.aclose()
    return MemoryResult(
        sessions=len(tokens),
        seconds=seconds,
        used_memory_delta=after - before,
        session_key_bytes=session_bytes,
        index_key_bytes=index_bytes,
        fu_tokens=len(fu_tokens),
        fu_used_memory_delta=fu_after - fu_before,
        fu_key_bytes=fu_bytes,
    )
