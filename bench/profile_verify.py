"""Profile ``verify`` under load, for the "Where the time goes" section of docs/benchmarks.md.

``--operation verify_cold`` profiles verifies of distinct tokens (30 000
sessions, each verify a different token: every one pays the whole decode).

Record (py-spy samples the interpreter from outside; nothing is instrumented)::

    py-spy record --format raw --rate 1000 -o /tmp/verify64.txt -- \\
        python bench/profile_verify.py --concurrency 64 --seconds 20
    python bench/profile_verify.py --summarize /tmp/verify64.txt

The first command starts its own redis-server, signs 1000 sessions and runs
``auth.verify`` with the given concurrency for a bounded time; the second
reads py-spy's collapsed stacks and prints where the samples fall: by
component (PyJWT, redis-py, asyncio, pydantic, ...) and by function, both
self time (the innermost frame) and inclusive time.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__" and not __package__:
    # `python bench/profile_verify.py` puts bench/ first on sys.path, where
    # bench/http.py would shadow the standard library's `http`.
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import asyncio
import itertools
import re
import time
from collections import Counter

from bench._common import event_loop_factory, resolve_loop
from bench._micro import (
    COLD_POOL,
    LIFETIME_SECONDS,
    MAX_OPS_PER_ROUND,
    POOL,
    SECRET,
    fill,
    measure,
)
from redis_jwt import RedisJWT
from redis_jwt.testing import RedisServer

# (component, pattern on "function (file:line)"), first match wins. py-spy
# names files relative to their sys.path entry: "jwt/api_jws.py", "asyncio/tasks.py".
COMPONENTS = [
    ("bench harness", re.compile(r"\(bench/")),
    ("PyJWT", re.compile(r"\(jwt/")),
    ("HMAC/hashlib", re.compile(r"\((hmac|hashlib)\.py|\(cryptography/")),
    ("base64", re.compile(r"\(base64\.py")),
    ("json", re.compile(r"\(json/")),
    ("pydantic", re.compile(r"\(pydantic")),
    ("redis-py", re.compile(r"\(redis/")),
    ("hiredis", re.compile(r"hiredis")),
    ("asyncio/uvloop", re.compile(r"\(asyncio/|uvloop|\(selectors\.py|\(socket\.py")),
    ("redis-jwt", re.compile(r"\(redis_jwt/")),
    ("datetime", re.compile(r"\(datetime\.py")),
]

# The verify loop runs under asyncio.Runner.run; signing the pool first runs
# under fill(): keep the former, drop the latter (and start-up imports).
_IN_LOAD = "Runner.run (asyncio/runners.py"
_NOT_LOAD = "fill.<locals>"


def component(frame: str) -> str:
    """Name the component a py-spy frame belongs to."""
    for name, pattern in COMPONENTS:
        if pattern.search(frame):
            return name
    return "other (stdlib, builtins)"


def summarize(path: Path, top: int) -> None:
    """Print self and inclusive sample shares from py-spy ``--format raw`` output."""
    self_by_component: Counter[str] = Counter()
    self_by_function: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    inclusive_component: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if "(" in f]  # drop process/thread names
        if not any(_IN_LOAD in f for f in frames) or any(_NOT_LOAD in f for f in frames):
            continue  # start-up, signing the pool: not the verify loop
        total += count
        leaf = frames[-1]
        self_by_component[component(leaf)] += count
        self_by_function[_short(leaf)] += count
        for name in {_short(f) for f in frames}:
            inclusive[name] += count
        for name in {component(f) for f in frames}:
            inclusive_component[name] += count
    if not total:
        raise SystemExit(f"{path}: no samples")
    print(f"{total} samples (Python frames only; time in C is charged to its caller)\n")
    print("self time by component:")
    for name, n in self_by_component.most_common():
        print(f"  {100 * n / total:5.1f}%  {name}")
    print("\ninclusive time by component (a stack counts once per component in it):")
    for name, n in inclusive_component.most_common():
        print(f"  {100 * n / total:5.1f}%  {name}")
    print(f"\nself time, top {top} functions:")
    for name, n in self_by_function.most_common(top):
        print(f"  {100 * n / total:5.1f}%  {name}")
    print(f"\ninclusive time, top {top} functions:")
    for name, n in inclusive.most_common(top):
        print(f"  {100 * n / total:5.1f}%  {name}")


def _short(frame: str) -> str:
    # "decode_complete (jwt/api_jws.py:123)" -> "decode_complete (jwt/api_jws.py)"
    return frame.rsplit(":", 1)[0] + ")" if frame.endswith(")") else frame


async def load(redis_url: str, concurrency: int, seconds: float, operation: str) -> None:
    """Sign a pool of sessions, then run ``operation`` for ``seconds``.

    ``verify`` (the default), ``verify_cached`` (``local_cache=True``),
    ``verify_cold`` (every verify a different token of 30 000 sessions) or ``sign``.
    """
    cached = operation == "verify_cached"
    pool = COLD_POOL if operation == "verify_cold" else POOL
    async with RedisJWT(
        secret=SECRET, redis_url=redis_url, ttl=LIFETIME_SECONDS, local_cache=cached
    ) as auth:
        tokens = await fill(lambda i: auth.sign(f"profile-user-{i}"), pool, concurrency=128)
        # One cursor for the warm-up and the measure: a token comes back only
        # after `pool` others (the cold case then never finds it cached).
        cursor = itertools.count()

        async def verify(_i: int) -> object:
            return await auth.verify(tokens[next(cursor) % pool])

        async def sign(i: int) -> object:
            return await auth.sign(f"profile-signer-{i % 10_000}")

        op = sign if operation == "sign" else verify
        await measure(op, concurrency, 1.0, MAX_OPS_PER_ROUND)  # warm-up
        began = time.perf_counter()
        rate = await measure(op, concurrency, seconds, MAX_OPS_PER_ROUND)
        elapsed = time.perf_counter() - began
        print(f"{operation} c={concurrency}: {rate:.0f} ops/s over {elapsed:.1f} s")


def main() -> None:
    """Run the load, or summarize a recorded profile."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument(
        "--operation",
        choices=["verify", "verify_cold", "verify_cached", "sign"],
        default="verify",
    )
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto")
    parser.add_argument("--summarize", type=Path, default=None, help="py-spy raw output")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    if args.summarize is not None:
        summarize(args.summarize, args.top)
        return
    loop = resolve_loop(args.loop)
    with RedisServer() as server, asyncio.Runner(loop_factory=event_loop_factory(loop)) as runner:
        print(f"event loop {loop}")
        runner.run(load(server.url, args.concurrency, min(args.seconds, 120.0), args.operation))


if __name__ == "__main__":
    main()
