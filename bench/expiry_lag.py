"""Expiry-event lag: ``python bench/expiry_lag.py [--keys 0 100000 1000000]``.

How late does an ``expired`` event come after a session's end, with N other
volatile keys in Redis? For each N, on a throwaway ``redis-server`` of its own
(never the machine's 6379), it:

1. fills Redis with N keys (``DEBUG POPULATE``) that expire in an hour;
2. signs ``--sessions`` sessions of ``--ttl`` seconds (their ends spread over
   ``--spread`` seconds, so that they fall anywhere between sweeps) with ``kea=True`` and
   measures when each ``expired`` event arrives (the sweeper's work, or
   Redis's notification, whichever comes first);
3. as the baseline, sets as many plain keys with the same ttl, nobody reading
   them, and measures when Redis's own ``__keyevent@0__:expired``
   notification arrives (Redis finds them by random sampling, which slows
   down as volatile keys grow); it waits at most ``--max-wait`` seconds and
   counts the keys still unreported then.

Lag = arrival - the key's end (its PTTL read just after writing it), in ms.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__" and not __package__:
    # Like bench/run.py: the repository root first, so bench/http.py never shadows `http`.
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import asyncio
import json
import math
import time
from typing import Any

from redis.asyncio import Redis

from bench._common import format_table, machine_info
from redis_jwt import Event, RedisJWT
from redis_jwt.testing import RedisServer, default_redis_server

SECRET = "expiry-lag-benchmark-secret-of-at-least-32-bytes"
_CHUNK = 50_000


def percentile(values: list[float], q: float, total: int) -> float:
    """The q-quantile (nearest rank) of ``total`` samples of which ``values`` were seen.

    Unseen samples count as later than every seen one: the result is ``inf``
    when the rank falls among them.
    """
    rank = max(1, math.ceil(q * total))
    ordered = sorted(values)
    return ordered[rank - 1] if rank <= len(ordered) else math.inf


async def volatile(client: Redis, count: int) -> None:
    """N keys ``key:0``..., each expiring in one hour (so none expires during the run)."""
    if not count:
        return
    await client.execute_command("DEBUG", "POPULATE", count)  # type: ignore[no-untyped-call]
    script = "for i = ARGV[1], ARGV[2] do redis.call('EXPIRE', 'key:' .. i, 3600) end"
    for start in range(0, count, _CHUNK):
        await client.eval(script, 0, start, min(start + _CHUNK, count) - 1)


async def library_lags(
    url: str, sessions: int, ttl: int, spread: float, wait_seconds: float
) -> list[float]:
    """Lags (ms) of redis-jwt's ``expired`` events for ``sessions`` sessions."""
    ends: dict[str, float] = {}
    lags: list[float] = []
    done = asyncio.Event()

    def on_expired(event: Event) -> None:
        end = ends.get(event.session_id or "")
        if end is not None:
            lags.append((time.time() - end) * 1000)
            if len(lags) == sessions:
                done.set()

    async with RedisJWT(secret=SECRET, redis_url=url, kea=True, timeout_seconds=2) as auth:
        auth.events.on("expired", on_expired)
        for n in range(sessions):
            token = await auth.sign(f"user-{n}", ttl=ttl)
            session = await auth.verify(token)  # its ttl in ms, read just after
            key = auth.layout.session_key(session.user_id, session.session_id)
            ends[session.session_id] = time.time() + await auth.redis.pttl(key) / 1000
            await asyncio.sleep(spread / sessions)  # ends spread over several sweeps
        try:
            async with asyncio.timeout(wait_seconds):
                await done.wait()
        except TimeoutError:
            pass
    return lags


async def redis_lags(
    client: Redis, count: int, ttl: int, spread: float, wait_seconds: float
) -> list[float]:
    """Lags (ms) of Redis's own ``expired`` notifications for ``count`` untouched keys."""
    ends: dict[bytes, float] = {}
    lags: list[float] = []
    await client.config_set("notify-keyspace-events", "Ex")
    async with client.pubsub() as pubsub:
        await pubsub.subscribe("__keyevent@0__:expired")
        for n in range(count):
            key = f"probe:{n}".encode()
            await client.set(key, 1, ex=ttl)
            ends[key] = time.time() + await client.pttl(key) / 1000
            await asyncio.sleep(spread / count)
        deadline = time.monotonic() + ttl + wait_seconds
        while len(lags) < count and time.monotonic() < deadline:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
            if message is not None and message["data"] in ends:
                lags.append((time.time() - ends.pop(message["data"])) * 1000)
    return lags


def _ms(value: float, bound_seconds: float) -> str:
    return f"> {bound_seconds * 1000:,.0f}" if math.isinf(value) else f"{value:,.0f}"


async def measure(binary: str | None, keys: int, args: argparse.Namespace) -> dict[str, Any]:
    """Both measurements on a fresh server with ``keys`` volatile keys."""
    with RedisServer(binary or default_redis_server()) as server:
        async with Redis.from_url(server.url, socket_timeout=30) as client:
            await volatile(client, keys)
            ours = await library_lags(
                server.url, args.sessions, args.ttl, args.spread, args.max_wait
            )
            theirs = await redis_lags(client, args.sessions, args.ttl, args.spread, args.max_wait)
    n = args.sessions
    return {
        "volatile_keys": keys,
        "sessions": n,
        "redis_jwt_ms": {"p50": percentile(ours, 0.5, n), "p99": percentile(ours, 0.99, n)},
        "redis_jwt_reported": len(ours),
        "redis_ms": {"p50": percentile(theirs, 0.5, n), "p99": percentile(theirs, 0.99, n)},
        "redis_reported": len(theirs),
    }


def main() -> None:
    """Parse the arguments, measure, print a table (and JSON if asked)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, nargs="+", default=[0, 100_000, 1_000_000])
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--ttl", type=int, default=2, help="session ttl, seconds")
    parser.add_argument("--spread", type=float, default=2.0, help="seconds the ends spread over")
    parser.add_argument("--max-wait", type=float, default=240.0, help="seconds past the ttl")
    parser.add_argument("--redis-server", default=None, help="redis-server binary to use")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    results = []
    for keys in args.keys:
        started = time.monotonic()
        results.append(asyncio.run(measure(args.redis_server, keys, args)))
        print(f"  {keys:,} volatile keys: done in {time.monotonic() - started:.0f} s", flush=True)
    bound = args.max_wait
    rows = [
        [
            f"{r['volatile_keys']:,}",
            _ms(r["redis_jwt_ms"]["p50"], bound),
            _ms(r["redis_jwt_ms"]["p99"], bound),
            f"{r['redis_jwt_reported']}/{r['sessions']}",
            _ms(r["redis_ms"]["p50"], bound),
            _ms(r["redis_ms"]["p99"], bound),
            f"{r['redis_reported']}/{r['sessions']}",
        ]
        for r in results
    ]
    headers = [
        "volatile keys",
        "redis-jwt p50 ms",
        "redis-jwt p99 ms",
        "reported",
        "Redis p50 ms",
        "Redis p99 ms",
        f"reported in {args.max_wait:g} s",
    ]
    print()
    print(
        f"Expiry-event lag: {args.sessions} sessions of {args.ttl} s ending over {args.spread:g} s"
        " (ms past the key's end)"
    )
    print(format_table(headers, rows))
    print(f"\nmachine: {machine_info()}")
    if args.json is not None:
        clean = json.loads(json.dumps(results).replace("Infinity", "null"))
        args.json.write_text(json.dumps({"results": clean, "machine": machine_info()}, indent=2))


if __name__ == "__main__":
    main()
