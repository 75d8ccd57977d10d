"""CPU time per operation of ``RedisJWT`` calls: this tree against a base revision, in one process.

On a busy machine operations per second say more about the neighbours than
about the code. The CPU time this process spends (``time.process_time``) per
operation is much steadier, and comparing two versions of the library side by
side in one process cancels most of what is left::

    python bench/cpu_per_op.py --base main
    python bench/cpu_per_op.py --base HEAD~3 --cases cold,local --rounds 40

``--base``'s ``src/redis_jwt`` is extracted with ``git archive`` into a
temporary directory and imported as the package ``rjwt_base`` (the library
imports itself relatively, so both copies live side by side): ``A`` is the
base, ``B`` the ``redis_jwt`` this interpreter imports (the working tree when
installed in editable mode). Both talk to one ``redis-server`` started here
on a free loopback port. Each case runs ``--ops`` operations by 64 worker
tasks; a round measures A then B (B then A in odd rounds), two rounds of
warm-up are not counted. The report gives, per case, the median CPU
microseconds per operation of A and of B and the median of the per-round B/A
ratios (the steadiest figure; below 1 means B costs less).

Cases: ``warm`` (verify, 1 000 sessions, token cache hits), ``cold`` (verify,
30 000 distinct tokens: each one decoded by PyJWT), ``local`` (verify with
``local_cache=True``, answered from memory), ``slide`` (``sliding=True`` and
``with_session=True``: touch.lua), ``sign``, and ``node`` (verify with
``layout="redis-jwt"``).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__" and not __package__:
    # `python bench/cpu_per_op.py` puts bench/ first on sys.path, where
    # bench/http.py would shadow the standard library's `http`.
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import asyncio
import gc
import importlib
import io
import itertools
import secrets
import statistics
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any

import redis_jwt
from redis_jwt.testing import RedisServer

CONCURRENCY = 64
WARM_POOL = 1000
COLD_POOL = 30_000
CASES = ("warm", "cold", "local", "slide", "sign", "node")
WARMUP_ROUNDS = 2
SECRET = secrets.token_urlsafe(48)

Op = Callable[[int], Awaitable[object]]


def import_base(revision: str, into: Path) -> ModuleType:
    """Import ``src/redis_jwt`` of ``revision`` as the package ``rjwt_base``."""
    root = Path(__file__).resolve().parents[1]
    archive = subprocess.run(
        ["git", "-C", str(root), "archive", revision, "src/redis_jwt"],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    (into / "src" / "redis_jwt").rename(into / "rjwt_base")
    sys.path.insert(0, str(into))
    return importlib.import_module("rjwt_base")


async def cpu_per_op(op: Op, count: int) -> float:
    """Run ``op(i)`` for ``i < count`` on CONCURRENCY tasks; CPU seconds per operation."""
    numbers = itertools.count()

    async def worker() -> None:
        for i in numbers:
            if i >= count:
                return
            await op(i)

    gc.collect()
    start = time.process_time()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return (time.process_time() - start) / count


async def signed(auth: Any, users: range, prefix: str = "user") -> list[str]:
    """Tokens of one new session per user, signed CONCURRENCY at a time."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int) -> str:
        async with gate:
            token: str = await auth.sign(f"{prefix}{i}")
            return token

    return list(await asyncio.gather(*(one(i) for i in users)))


class Versions:
    """One ``RedisJWT`` per (case, version), sharing sessions on one Redis."""

    def __init__(self, libraries: dict[str, ModuleType], url: str, count: int) -> None:
        self.count = count
        options: dict[str, dict[str, Any]] = {
            "plain": {},
            "local": {"local_cache": True},
            "slide": {"sliding": True},
            "node": {"layout": "redis-jwt", "prefix": "node"},
        }
        self.auth = {
            # A generous deadline: a busy machine must slow the bench down, not fail it.
            (kind, name): library.RedisJWT(SECRET, redis_url=url, timeout_seconds=5, **extra)
            for kind, extra in options.items()
            for name, library in libraries.items()
        }
        self.tokens: dict[str, list[str]] = {}
        self.cursor = dict.fromkeys(libraries, 0)

    async def open(self, cases: list[str]) -> None:
        for auth in self.auth.values():
            await auth.open()
        self.tokens["warm"] = await signed(self.auth["plain", "B"], range(WARM_POOL))
        self.tokens["node"] = await signed(self.auth["node", "B"], range(WARM_POOL))
        if "cold" in cases:
            # Users of their own: the pool's tokens must not be among the warm ones.
            self.tokens["cold"] = await signed(
                self.auth["plain", "B"], range(COLD_POOL), prefix="cold"
            )

    async def aclose(self) -> None:
        for auth in self.auth.values():
            await auth.aclose()

    def op(self, case: str, name: str) -> Op:
        """The operation of ``case`` on version ``name``."""
        warm = self.tokens["warm"]
        if case == "cold":
            auth, tokens, start = self.auth["plain", name], self.tokens["cold"], self.cursor[name]
            # Every operation a token this version has not seen for COLD_POOL operations.
            self.cursor[name] += self.count
            return lambda i: auth.verify(tokens[(start + i) % COLD_POOL])
        if case == "sign":
            auth = self.auth["plain", name]
            return lambda i: auth.sign(f"signer-{name}-{i % 5000}")
        if case == "slide":
            auth = self.auth["slide", name]
            return lambda i: auth.verify(warm[i % WARM_POOL], with_session=True)
        if case == "node":
            auth, tokens = self.auth["node", name], self.tokens["node"]
            return lambda i: auth.verify(tokens[i % WARM_POOL])
        auth = self.auth["local" if case == "local" else "plain", name]
        return lambda i: auth.verify(warm[i % WARM_POOL])


async def run(base: ModuleType, cases: list[str], rounds: int, count: int) -> None:
    server = RedisServer().start()
    try:
        versions = Versions({"A": base, "B": redis_jwt}, server.url, count)
        try:
            await versions.open(cases)
            await measure(versions, base, cases, rounds, count)
        finally:
            await versions.aclose()
    finally:
        server.stop()


async def measure(
    versions: Versions, base: ModuleType, cases: list[str], rounds: int, count: int
) -> None:
    print(f"A: {base.__file__}\nB: {redis_jwt.__file__}")
    print(f"CPU us per op, c={CONCURRENCY}, {rounds} rounds of {count} ops, median")
    for case in cases:
        spent: dict[str, list[float]] = {"A": [], "B": []}
        for r in range(-WARMUP_ROUNDS, rounds):
            for name in ("A", "B") if r % 2 == 0 else ("B", "A"):
                per_op = await cpu_per_op(versions.op(case, name), count)
                if r >= 0:
                    spent[name].append(per_op)
        a, b = (statistics.median(spent[n]) * 1e6 for n in ("A", "B"))
        ratio = statistics.median(y / x for x, y in zip(spent["A"], spent["B"], strict=True))
        hits = ""
        if case == "local":
            counts = [versions.auth["local", n]._cache.hits for n in ("A", "B")]
            hits = f"  (hits A {counts[0]}, B {counts[1]})"
        print(f"{case:6s} A {a:6.1f}  B {b:6.1f}  B/A per round {ratio:.3f}{hits}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", default="main", help="git revision to compare with")
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--ops", type=int, default=1500, help="operations per measurement")
    args = parser.parse_args()
    cases = args.cases.split(",")
    unknown = set(cases) - set(CASES)
    if unknown:
        parser.error(f"unknown cases {sorted(unknown)}; choose from {', '.join(CASES)}")
    with tempfile.TemporaryDirectory() as folder:
        base = import_base(args.base, Path(folder))
        asyncio.run(run(base, cases, args.rounds, args.ops))


if __name__ == "__main__":
    main()
