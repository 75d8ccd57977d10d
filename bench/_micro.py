"""Operations per second of single library calls, side by side in one process.

Every case is an async operation ``op(i)`` run by ``concurrency`` worker tasks
on one event loop until a deadline or an operation budget is reached,
whichever comes first. The rate of a round is completed operations divided by
the wall time from the first start to the last completion. Rounds are
interleaved (round 1 of every case, then round 2 of every case...) so that a
slow period of the machine spreads over all cases instead of sinking one.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import itertools
import secrets
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import jwt
import redis.asyncio
from fastapi_users.authentication import RedisStrategy
from starsessions import JsonSerializer, generate_session_id
from starsessions.stores.redis import RedisStore

from bench._common import Stats
from bench._rivals import BenchUser, InMemoryUserDatabase, UserManager, make_users
from redis_jwt import RedisJWT
from redis_jwt._token_cache import MAX_ENTRIES

__all__ = ["MicroResult", "Settings", "run_micro"]

Op = Callable[[int], Awaitable[object]]
Kind = Literal["floor", "read", "write", "destroy"]

SECRET = secrets.token_urlsafe(48)
LIFETIME_SECONDS = 3600
# Sessions in the read pools: many users, so no single key or index is hot.
POOL = 1000
# Sessions of the distinct-token ("cold") cases: one per user, each operation a
# different token, three times what the decoded-token cache holds, so that
# every verify pays the whole decode (see the check in Bench.open).
COLD_POOL = 3 * MAX_ENTRIES
# A hard bound on operations per round, whatever the deadline says.
MAX_OPS_PER_ROUND = 2_000_000


@dataclass(frozen=True, slots=True)
class Settings:
    """How long and how often each case runs."""

    concurrencies: tuple[int, ...] = (1, 64)
    rounds: int = 7
    round_seconds: float = 0.6
    warmup_seconds: float = 0.4


@dataclass(slots=True)
class Case:
    """One measured operation.

    ``kind`` says which fastapi-users call is its counterpart in the ratio
    column: ``read`` -> read_token, ``write`` -> write_token, ``destroy`` ->
    destroy_token. ``refill`` (destroy cases) prepares a fresh pool of live
    sessions before each round, outside the timed window, and returns how many
    operations the round may run. ``floor`` is the case of its "x floor" ratio.
    """

    key: str
    label: str
    kind: Kind
    op: Op
    refill: Callable[[int], Awaitable[int]] | None = None
    floor: str = "floor"


@dataclass(slots=True)
class MicroResult:
    """The rounds of every (case, concurrency) and what the report needs to know.

    ``floors`` names, for each case, the floor case of its "x floor" column:
    ``floor`` (1 000 tokens, repeated) or ``floor_cold`` (distinct tokens).
    """

    labels: dict[str, str]
    kinds: dict[str, Kind]
    stats: dict[tuple[str, int], Stats]
    unavailable: dict[str, str] = field(default_factory=dict)
    floors: dict[str, str] = field(default_factory=dict)

    def floor_of(self, key: str) -> str:
        """The floor case that ``key``'s "x floor" ratio divides by."""
        return self.floors.get(key, "floor")


async def measure(op: Op, concurrency: int, seconds: float, max_ops: int) -> float:
    """Run ``op`` with ``concurrency`` workers for ``seconds`` or ``max_ops``; return ops/s."""
    issued = 0
    deadline = 0.0

    async def worker() -> None:
        nonlocal issued
        while issued < max_ops and time.perf_counter() < deadline:
            i = issued
            issued += 1
            await op(i)

    start = time.perf_counter()
    deadline = start + seconds
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    return issued / elapsed


async def fill(
    make: Callable[[int], Awaitable[Any]], count: int, concurrency: int = 64
) -> list[Any]:
    """Call ``make(i)`` for ``i`` in ``range(count)``, ``concurrency`` at a time; keep the order."""
    results: list[Any] = [None] * count
    counter = itertools.count()

    async def worker() -> None:
        for i in counter:
            if i >= count:
                return
            results[i] = await make(i)

    await asyncio.gather(*(worker() for _ in range(min(concurrency, max(count, 1)))))
    return results


@contextlib.contextmanager
def without_otel_api() -> Iterator[None]:
    """Open a RedisJWT as if ``opentelemetry-api`` were not installed (the baseline)."""
    saved = sys.modules.get("opentelemetry")
    sys.modules["opentelemetry"] = None  # type: ignore[assignment]  # import fails: "not installed"
    try:
        yield
    finally:
        if saved is None:
            del sys.modules["opentelemetry"]
        else:
            sys.modules["opentelemetry"] = saved


def accepts_local_cache() -> bool:
    """Tell whether this redis-jwt has the opt-in local verify cache (a later task)."""
    return "local_cache" in inspect.signature(RedisJWT.__init__).parameters


class Bench:
    """Owns the clients of every contender and builds the cases."""

    def __init__(self, redis_url: str) -> None:
        self.url = redis_url
        self.auth = RedisJWT(secret=SECRET, redis_url=redis_url, ttl=LIFETIME_SECONDS)
        # The same, opened with the OpenTelemetry API importable and no SDK configured.
        self.auth_otel = RedisJWT(secret=SECRET, redis_url=redis_url, ttl=LIFETIME_SECONDS)
        self.auth_sliding = RedisJWT(
            secret=SECRET, redis_url=redis_url, ttl=LIFETIME_SECONDS, sliding=True
        )
        # Activity tracking at the default resolution (a write per session per
        # minute: almost none in a round) and at one second (a write per session
        # per second: 1000 sessions, so about one verify in twenty at c=64).
        self.auth_activity = RedisJWT(
            secret=SECRET, redis_url=redis_url, ttl=LIFETIME_SECONDS, track_activity=True
        )
        self.auth_activity_1s = RedisJWT(
            secret=SECRET,
            redis_url=redis_url,
            ttl=LIFETIME_SECONDS,
            track_activity=True,
            activity_resolution=1,
        )
        # The distinct-token cases: instances of their own, so that their tokens
        # never push the repeated ones out of the other instances' token caches.
        self.auth_cold = RedisJWT(secret=SECRET, redis_url=redis_url, ttl=LIFETIME_SECONDS)
        self.auth_cold_sliding = RedisJWT(
            secret=SECRET, redis_url=redis_url, ttl=LIFETIME_SECONDS, sliding=True
        )
        self.auth_cached: RedisJWT | None = None
        if accepts_local_cache():
            options: dict[str, Any] = {"local_cache": True}
            self.auth_cached = RedisJWT(
                secret=SECRET, redis_url=redis_url, ttl=LIFETIME_SECONDS, **options
            )
        # The floor: a plain client, as someone writing it by hand would make it.
        self.floor_redis = redis.asyncio.Redis.from_url(redis_url)
        # fastapi-users' documentation: decode_responses=True is required.
        self.fu_redis = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
        self.fu_strategy: RedisStrategy[BenchUser, Any] = RedisStrategy(
            self.fu_redis, lifetime_seconds=LIFETIME_SECONDS
        )
        self.users = make_users(POOL)
        self.fu_manager = UserManager(InMemoryUserDatabase(self.users))
        self.ss_redis = redis.asyncio.Redis.from_url(redis_url)
        self.ss_store = RedisStore(connection=self.ss_redis)
        self.ss_serializer = JsonSerializer()
        self.tokens: list[str] = []
        # The local-cache case verifies sessions of its own: the sliding case
        # resets the ttl of self.tokens' sessions every round, and every such
        # write (rightly) drops those entries from the cache.
        self.cached_tokens: list[str] = []
        self.fu_tokens: list[str] = []
        self.ss_ids: list[str] = []
        # Refresh pairs: access tokens to verify, and refresh tokens that each
        # refresh replaces by their successor (one chain per slot).
        self.access_tokens: list[str] = []
        self.refresh_tokens: list[str] = []
        # COLD_POOL sessions of as many users. Each instance (and the floor) takes
        # the next token of a cursor of its own: a token comes back to an
        # instance only after COLD_POOL other verifies there, each remembered,
        # long after its cache (a third of that) has let it go. (One shared
        # cursor let a token come back sooner to an instance whose cases ran
        # fewer of the operations in between.)
        self.cold_tokens: list[str] = []
        self.cold_cursors = {name: itertools.count() for name in ("floor", "plain", "sliding")}

    async def open(self) -> None:
        """Connect everything and create the read pools (untimed)."""
        with without_otel_api():
            await self.auth.open()
        await self.auth_otel.open()
        await self.auth_sliding.open()
        await self.auth_activity.open()
        await self.auth_activity_1s.open()
        await self.auth_cold.open()
        await self.auth_cold_sliding.open()
        if self.auth_cached is not None:
            await self.auth_cached.open()
        auth = self.auth

        async def sign(i: int) -> str:
            return await auth.sign(f"bench-user-{i}", data_session={"ip": "203.0.113.7"})

        self.tokens = await fill(sign, POOL)
        pairs = await fill(lambda i: auth.sign_pair(f"bench-pair-{i}"), POOL)
        self.access_tokens = [pair.access_token for pair in pairs]
        self.refresh_tokens = [pair.refresh_token for pair in pairs]
        if self.auth_cached is not None:
            self.cached_tokens = await fill(
                lambda i: auth.sign(f"bench-cached-{i}", data_session={"ip": "203.0.113.7"}),
                POOL,
            )
        cold = self.auth_cold
        self.cold_tokens = await fill(
            lambda i: cold.sign(f"bench-cold-{i}", data_session={"ip": "203.0.113.7"}),
            COLD_POOL,
        )
        floor = self.floor_redis
        for pool in (self.tokens, self.cold_tokens):
            async with floor.pipeline(transaction=False) as pipe:
                for token in pool:
                    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
                    pipe.set(f"floor:{claims['sid']}", claims["sub"], ex=LIFETIME_SECONDS)
                await pipe.execute()
        strategy = self.fu_strategy
        self.fu_tokens = await fill(lambda i: strategy.write_token(self.users[i]), POOL)
        store, serializer = self.ss_store, self.ss_serializer

        async def write_session(i: int) -> str:
            data = serializer.serialize({"user_id": f"bench-user-{i}", "ip": "203.0.113.7"})
            return await store.write(
                generate_session_id(), data, LIFETIME_SECONDS, LIFETIME_SECONDS
            )

        self.ss_ids = await fill(write_session, POOL)

    async def aclose(self) -> None:
        """Close every client (each was built here)."""
        for auth in (
            self.auth,
            self.auth_otel,
            self.auth_sliding,
            self.auth_activity,
            self.auth_activity_1s,
            self.auth_cold,
            self.auth_cold_sliding,
            self.auth_cached,
        ):
            if auth is not None:
                await auth.aclose()
        for client in (self.floor_redis, self.fu_redis, self.ss_redis):
            await client.aclose()

    def check_cold(self) -> None:
        """Refuse the run if a distinct-token case was ever answered by a token cache."""
        for auth in (self.auth_cold, self.auth_cold_sliding):
            cache = auth._backend.codec._cache  # the bench's own check, private on purpose
            if cache.hits:
                raise RuntimeError(f"a cold case hit the token cache {cache.hits} times")

    def cases(self) -> list[Case]:
        """Every case, the floor first."""
        tokens, fu_tokens, ss_ids, users = self.tokens, self.fu_tokens, self.ss_ids, self.users
        auth, sliding, floor = self.auth, self.auth_sliding, self.floor_redis
        strategy, manager = self.fu_strategy, self.fu_manager
        store, serializer = self.ss_store, self.ss_serializer
        decode = jwt.decode
        algorithms = ["HS256"]

        async def floor_op(i: int) -> object:
            claims = decode(tokens[i % POOL], SECRET, algorithms=algorithms)
            value = await floor.get(f"floor:{claims['sid']}")
            if value is None:
                raise RuntimeError("the floor's session is missing")
            return value

        async def verify(i: int) -> object:
            return await auth.verify(tokens[i % POOL])

        cold_tokens, cursors = self.cold_tokens, self.cold_cursors
        floor_cursor, cursor = cursors["floor"], cursors["plain"]
        sliding_cursor = cursors["sliding"]
        cold, cold_sliding = self.auth_cold, self.auth_cold_sliding

        async def floor_cold(_i: int) -> object:
            token = cold_tokens[next(floor_cursor) % COLD_POOL]
            claims = decode(token, SECRET, algorithms=algorithms)
            value = await floor.get(f"floor:{claims['sid']}")
            if value is None:
                raise RuntimeError("the floor's session is missing")
            return value

        async def verify_cold(_i: int) -> object:
            return await cold.verify(cold_tokens[next(cursor) % COLD_POOL])

        async def verify_sliding_cold(_i: int) -> object:
            return await cold_sliding.verify(cold_tokens[next(sliding_cursor) % COLD_POOL])

        async def verify_with_session_cold(_i: int) -> object:
            return await cold.verify(cold_tokens[next(cursor) % COLD_POOL], with_session=True)

        access_tokens, refresh_tokens = self.access_tokens, self.refresh_tokens

        async def verify_access(i: int) -> object:
            return await auth.verify(access_tokens[i % POOL])

        async def refresh(i: int) -> object:
            # At most 64 in flight over 1000 chains: a slot is never refreshed twice at once.
            slot = i % POOL
            pair = await auth.refresh(refresh_tokens[slot])
            refresh_tokens[slot] = pair.refresh_token
            return pair

        otel = self.auth_otel

        async def verify_otel(i: int) -> object:
            return await otel.verify(tokens[i % POOL])

        async def verify_sliding(i: int) -> object:
            return await sliding.verify(tokens[i % POOL])

        activity, activity_1s = self.auth_activity, self.auth_activity_1s

        async def verify_activity(i: int) -> object:
            return await activity.verify(tokens[i % POOL])

        async def verify_activity_1s(i: int) -> object:
            return await activity_1s.verify(tokens[i % POOL])

        async def verify_with_session(i: int) -> object:
            return await auth.verify(tokens[i % POOL], with_session=True)

        async def sign(i: int) -> object:
            # 10 000 users: after a run each has a handful of sessions, as in life.
            return await auth.sign(f"bench-signer-{i % 10_000}")

        destroy_pool: list[str] = []

        async def refill_destroy(budget: int) -> int:
            destroy_pool[:] = await fill(lambda i: auth.sign(f"bench-leaver-{i}"), budget)
            return budget

        async def destroy(i: int) -> object:
            if not await auth.destroy(destroy_pool[i]):
                raise RuntimeError("destroy found no session")
            return True

        async def fu_read(i: int) -> object:
            user = await strategy.read_token(fu_tokens[i % POOL], manager)
            if user is None:
                raise RuntimeError("fastapi-users found no user")
            return user

        async def fu_write(i: int) -> object:
            return await strategy.write_token(users[i % POOL])

        fu_pool: list[str] = []

        async def refill_fu_destroy(budget: int) -> int:
            fu_pool[:] = await fill(lambda i: strategy.write_token(users[i % POOL]), budget)
            return budget

        async def fu_destroy(i: int) -> object:
            await strategy.destroy_token(fu_pool[i], users[0])
            return True

        async def ss_read(i: int) -> object:
            data = serializer.deserialize(await store.read(ss_ids[i % POOL], LIFETIME_SECONDS))
            if not data:
                raise RuntimeError("starsessions found no session")
            return data

        async def ss_write(i: int) -> object:
            data = serializer.serialize({"user_id": f"bench-user-{i % POOL}", "ip": "203.0.113.7"})
            return await store.write(
                generate_session_id(), data, LIFETIME_SECONDS, LIFETIME_SECONDS
            )

        cases = [
            Case("floor", "floor: PyJWT decode + GET", "floor", floor_op),
            Case("verify", "redis-jwt verify", "read", verify),
            Case("verify_access", "redis-jwt verify access token", "read", verify_access),
            Case("verify_otel", "verify with the OTel API installed, no SDK", "read", verify_otel),
            Case("verify_sliding", "redis-jwt verify sliding=True", "read", verify_sliding),
            Case(
                "verify_activity", "redis-jwt verify track_activity=True", "read",
                verify_activity,
            ),
            Case(
                "verify_activity_1s", "redis-jwt verify track_activity=True 1 s", "read",
                verify_activity_1s,
            ),
            Case(
                "verify_with_session", "redis-jwt verify with_session=True", "read",
                verify_with_session,
            ),
            Case(
                "floor_cold", "floor, distinct tokens (cold)", "floor", floor_cold,
                floor="floor_cold",
            ),
            Case(
                "verify_cold", "redis-jwt verify, distinct tokens (cold)", "read",
                verify_cold, floor="floor_cold",
            ),
            Case(
                "verify_sliding_cold", "redis-jwt verify sliding=True, cold", "read",
                verify_sliding_cold, floor="floor_cold",
            ),
            Case(
                "verify_with_session_cold", "redis-jwt verify with_session=True, cold",
                "read", verify_with_session_cold, floor="floor_cold",
            ),
        ]  # fmt: skip
        if self.auth_cached is not None:
            cached, cached_tokens = self.auth_cached, self.cached_tokens

            async def verify_cached(i: int) -> object:
                return await cached.verify(cached_tokens[i % POOL])

            cases.append(
                Case("verify_cached", "redis-jwt verify local_cache", "read", verify_cached)
            )
        cases += [
            Case("sign", "redis-jwt sign", "write", sign),
            Case("refresh", "redis-jwt refresh (rotate a pair)", "write", refresh),
            Case("destroy", "redis-jwt destroy", "destroy", destroy, refill_destroy),
            Case("fu_read", "fastapi-users read_token", "read", fu_read),
            Case("fu_write", "fastapi-users write_token", "write", fu_write),
            Case(
                "fu_destroy",
                "fastapi-users destroy_token",
                "destroy",
                fu_destroy,
                refill_fu_destroy,
            ),
            Case("ss_read", "starsessions RedisStore.read", "read", ss_read),
            Case("ss_write", "starsessions RedisStore.write", "write", ss_write),
        ]
        return cases


async def _budget(case: Case, concurrency: int, seconds: float, rate_hint: float) -> int:
    if case.refill is None:
        return MAX_OPS_PER_ROUND
    # Enough live sessions for the round at the warm-up's pace, and some to spare.
    wanted = int(rate_hint * seconds * 1.5) + concurrency
    return await case.refill(max(200, min(wanted, 60_000)))


async def run_micro(
    redis_url: str, settings: Settings, progress: Callable[[str], None]
) -> MicroResult:
    """Measure every case at every concurrency; warm-up first, then interleaved rounds."""
    bench = Bench(redis_url)
    try:
        await bench.open()
        cases = bench.cases()
        unavailable: dict[str, str] = {}
        if bench.auth_cached is None:
            unavailable["verify_cached"] = "RedisJWT does not accept local_cache yet"
        plan = [(case, c) for case in cases for c in settings.concurrencies]
        hints: dict[tuple[str, int], float] = {}
        progress(f"warm-up: {len(plan)} cases x {settings.warmup_seconds:g} s")
        for case, c in plan:
            budget = await _budget(case, c, settings.warmup_seconds, 2000.0)
            hints[case.key, c] = await measure(case.op, c, settings.warmup_seconds, budget)
        samples: dict[tuple[str, int], list[float]] = {key: [] for key in hints}
        for r in range(settings.rounds):
            progress(f"round {r + 1}/{settings.rounds}")
            for case, c in plan:
                budget = await _budget(case, c, settings.round_seconds, hints[case.key, c])
                gc.collect()
                samples[case.key, c].append(
                    await measure(case.op, c, settings.round_seconds, budget)
                )
        bench.check_cold()
        return MicroResult(
            labels={case.key: case.label for case in cases},
            kinds={case.key: case.kind for case in cases},
            stats={key: Stats(tuple(values)) for key, values in samples.items()},
            unavailable=unavailable,
            floors={case.key: case.floor for case in cases},
        )
    finally:
        await bench.aclose()
