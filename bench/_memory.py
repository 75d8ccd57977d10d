"""Redis memory per session: INFO used_memory delta and where the bytes go.

The sessions are created through the public API only (``auth.sign`` at
concurrency 64) on a fresh ``redis-server`` of their own, so nothing else
shares the ``used_memory`` figure. One session per user: every session also
pays for a whole per-user index, the most expensive case for the index.

What is measured is the cost of the sessions at rest: each ``sign`` also
writes a call marker that lives until the call's deadline (under half a
second), a cost of the signing rate rather than of the session count. The
sessions are therefore signed in chunks of 5 000, and once a chunk's markers
are past their deadline the run reads each of them, which makes Redis delete
it (its own sampling would take minutes: it leaves up to a tenth of the keys
with an expiry expired in place); both
measurements (before and after) are taken with only the measuring connection
open. The markers are measured on their own: MEMORY USAGE of a sample, and
how many a chunk left pending at once. See docs/decisions.md ("Memory per
session") for why.

The breakdown splits the growth per session into the two keys' MEMORY USAGE
(key name, object, listpack, the 24-byte dict entry), the keyspace's own
tables (``MEMORY STATS``: the expiry entries and the hash-table slots, the
main dict entries being already counted by MEMORY USAGE), and the rest (the
allocator's rounding of each 24-byte dict entry to 32 bytes, the script
cache). For scale, as many fastapi-users tokens (``write_token``) are
measured the same way afterwards.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
import redis.asyncio
from fastapi_users.authentication import RedisStrategy

from bench._micro import LIFETIME_SECONDS, SECRET, fill
from bench._rivals import BenchUser, make_users
from redis_jwt import RedisJWT

__all__ = ["MemoryResult", "Snapshot", "run_memory"]

SAMPLE = 1000
# Creating the sessions may not take longer than this, whatever the count.
TIME_LIMIT_SECONDS = 120.0
CHUNK = 5000
# A marker lives until its call's deadline: 90 % of the 0.5 s timeout budget.
MARKER_SECONDS = 0.5
RECLAIM_ROUNDS = 10
# Keys of one session at rest: its hash and (one session per user) the index.
KEYS_PER_SESSION = 2
# What MEMORY USAGE counts for the main dict's entry of a key: sizeof(dictEntry).
DICT_ENTRY = 24
# MEMORY STATS counts, per key of the main dict, the entry and the value's object
# header (sizeof(robj)), both of which MEMORY USAGE counts too.
MAIN_PER_KEY = DICT_ENTRY + 16


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The INFO / MEMORY STATS figures one measurement compares."""

    used_memory: int = 0
    main_table: int = 0
    expires_table: int = 0
    keys: int = 0
    clients: int = 0
    scripts: int = 0

    def minus(self, other: Snapshot) -> Snapshot:
        """The growth from ``other`` to this."""
        return Snapshot(
            self.used_memory - other.used_memory,
            self.main_table - other.main_table,
            self.expires_table - other.expires_table,
            self.keys - other.keys,
            self.clients - other.clients,
            self.scripts - other.scripts,
        )


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
    #: The keyspace's tables grown by the sessions (MEMORY STATS, bytes).
    tables: Snapshot = field(default_factory=Snapshot)
    #: MEMORY USAGE of a call marker (its expiry entry, 24 B more, not included).
    marker_key_bytes: float = 0.0
    #: The most markers one chunk of signs left in Redis at once.
    markers_pending: int = 0
    #: Keys left beyond two per session when measured (0: every marker reclaimed).
    stray_keys: int = 0

    @property
    def bytes_per_session(self) -> float:
        """INFO used_memory growth divided by the sessions created."""
        return self.used_memory_delta / self.sessions if self.sessions else 0.0

    @property
    def fu_bytes_per_token(self) -> float:
        """The same for fastapi-users tokens."""
        return self.fu_used_memory_delta / self.fu_tokens if self.fu_tokens else 0.0

    @property
    def keyspace_bytes(self) -> float:
        """Per session: expiry entries and table slots (main dict entries are in MEMORY USAGE)."""
        if not self.sessions:
            return 0.0
        grown = self.tables.main_table + self.tables.expires_table
        return grown / self.sessions - KEYS_PER_SESSION * MAIN_PER_KEY

    @property
    def other_bytes(self) -> float:
        """Per session: what neither MEMORY USAGE nor the tables count (allocator rounding)."""
        counted = self.session_key_bytes + self.index_key_bytes + self.keyspace_bytes
        return self.bytes_per_session - counted

    @property
    def table_slots(self) -> int:
        """Slots of the main key table grown by the run (8 bytes each)."""
        return (self.tables.main_table - self.tables.keys * MAIN_PER_KEY) // 8

    def as_dict(self) -> dict[str, Any]:
        """The machine-readable form used by ``--json``."""
        return {
            "sessions": self.sessions,
            "create_seconds": self.seconds,
            "used_memory_delta": self.used_memory_delta,
            "bytes_per_session": self.bytes_per_session,
            "memory_usage_session_key": self.session_key_bytes,
            "memory_usage_index_key": self.index_key_bytes,
            "keyspace_bytes_per_session": self.keyspace_bytes,
            "other_bytes_per_session": self.other_bytes,
            "main_table_slots_grown": self.table_slots,
            "clients_bytes_grown": self.tables.clients,
            "script_cache_bytes_grown": self.tables.scripts,
            "memory_usage_call_marker": self.marker_key_bytes,
            "call_markers_pending_at_most": self.markers_pending,
            "stray_keys": self.stray_keys,
            "fastapi_users_tokens": self.fu_tokens,
            "fastapi_users_bytes_per_token": self.fu_bytes_per_token,
            "fastapi_users_memory_usage_key": self.fu_key_bytes,
        }


async def _snapshot(client: redis.asyncio.Redis) -> Snapshot:
    info = await client.info("memory")
    stats = await client.memory_stats()
    db = stats.get("db.0") or {}
    return Snapshot(
        int(info["used_memory"]),
        int(db.get("overhead.hashtable.main", 0)),
        int(db.get("overhead.hashtable.expires", 0)),
        int(await client.dbsize()),
        int(info.get("mem_clients_normal", 0)),
        int(info.get("used_memory_scripts_eval", info.get("used_memory_scripts", 0))),
    )


async def _memory_usage(client: redis.asyncio.Redis, keys: list[str]) -> float:
    async with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.memory_usage(key, samples=0)
        sizes = await pipe.execute()
    found = [int(size) for size in sizes if size is not None]
    return sum(found) / len(found) if found else 0.0


async def _reclaim(client: redis.asyncio.Redis, markers: list[str]) -> int:
    """Read each marker once its deadline has passed; return how many are still there.

    Reading an expired key makes Redis delete it (lazy expiry), as its own
    sampling would later: the run does not wait minutes for that.
    """
    left = markers
    for _ in range(RECLAIM_ROUNDS):
        if not left:
            break
        await asyncio.sleep(MARKER_SECONDS)
        async with client.pipeline(transaction=False) as pipe:
            for key in left:
                pipe.exists(key)
            found = await pipe.execute()
        left = [key for key, n in zip(left, found, strict=True) if int(n)]
    return len(left)


def _session_id(token: str) -> str:
    # Only to name the keys to sample: the token was just signed by the run.
    claims = jwt.decode(token, options={"verify_signature": False})
    return str(claims["sid"])


def _user(i: int) -> str:
    return f"mem-user-{i}"


async def _sign_at_rest(
    auth: RedisJWT, plain: redis.asyncio.Redis, count: int
) -> tuple[list[str], float, int, float]:
    """Sign ``count`` sessions in chunks, reclaiming each chunk's markers after their deadline.

    Returns the tokens, the seconds spent signing (waits excluded), the most
    keys beyond two per session after one chunk (its markers), and MEMORY
    USAGE of the last chunk's markers.
    """
    tokens: list[str] = []
    signing = 0.0
    pending = 0
    marker_bytes = 0.0
    while len(tokens) < count and signing < TIME_LIMIT_SECONDS:
        base = len(tokens)

        def make(i: int, base: int = base) -> Any:
            return auth.sign(_user(base + i))

        start = time.perf_counter()
        tokens += await fill(make, min(CHUNK, count - base))
        signing += time.perf_counter() - start
        pending = max(pending, int(await plain.dbsize()) - KEYS_PER_SESSION * len(tokens))
        markers = [
            auth.layout.call_key(_user(base + i), _session_id(token))
            for i, token in enumerate(tokens[base:])
        ]
        if len(tokens) >= count or signing >= TIME_LIMIT_SECONDS:
            marker_bytes = await _memory_usage(plain, markers[-SAMPLE:])
        await _reclaim(plain, markers)
    return tokens, signing, pending, marker_bytes


async def run_memory(
    redis_url: str, sessions: int, progress: Callable[[str], None]
) -> MemoryResult:
    """Create ``sessions`` sessions (one per user) and measure what they cost Redis."""
    plain = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    try:
        await plain.flushall()
        before = await _snapshot(plain)
        progress(f"memory: signing {sessions} sessions")
        auth = RedisJWT(secret=SECRET, redis_url=redis_url, ttl=LIFETIME_SECONDS)
        async with auth:
            tokens, seconds, pending, marker_bytes = await _sign_at_rest(auth, plain, sessions)
            picked = random.sample(range(len(tokens)), min(SAMPLE, len(tokens)))
            session_keys, index_keys = [], []
            for i in picked:
                user_id, session_id = _user(i), _session_id(tokens[i])
                session_keys.append(auth.layout.session_key(user_id, session_id))
                index_keys.append(auth.layout.index_key(user_id))
        stray = int(await plain.dbsize()) - KEYS_PER_SESSION * len(tokens)
        after = await _snapshot(plain)
        session_bytes = await _memory_usage(plain, session_keys)
        index_bytes = await _memory_usage(plain, index_keys)

        await plain.flushall()
        fu_before = await _snapshot(plain)
        fu_redis = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
        try:
            strategy: RedisStrategy[BenchUser, Any] = RedisStrategy(
                fu_redis, lifetime_seconds=LIFETIME_SECONDS
            )
            users = make_users(1000)
            fu_count = len(tokens)
            progress(f"memory: writing {fu_count} fastapi-users tokens")
            fu_tokens: list[str] = []
            while len(fu_tokens) < fu_count:
                base = len(fu_tokens)

                def write(i: int, base: int = base) -> Any:
                    return strategy.write_token(users[(base + i) % len(users)])

                fu_tokens += await fill(write, min(CHUNK, fu_count - base))
        finally:
            await fu_redis.aclose()
        fu_after = await _snapshot(plain)
        sample = random.sample(fu_tokens, min(SAMPLE, len(fu_tokens)))
        fu_bytes = await _memory_usage(plain, [f"{strategy.key_prefix}{t}" for t in sample])
    finally:
        await plain.aclose()
    grown = after.minus(before)
    return MemoryResult(
        sessions=len(tokens),
        seconds=seconds,
        used_memory_delta=grown.used_memory,
        session_key_bytes=session_bytes,
        index_key_bytes=index_bytes,
        fu_tokens=len(fu_tokens),
        fu_used_memory_delta=fu_after.used_memory - fu_before.used_memory,
        fu_key_bytes=fu_bytes,
        tables=grown,
        marker_key_bytes=marker_bytes,
        markers_pending=pending,
        stray_keys=stray,
    )
