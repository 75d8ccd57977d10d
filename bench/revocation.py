"""Revocation visibility: how soon another instance's local cache stops serving a destroyed session.

``python bench/revocation.py [--trials 300]`` (also part of ``bench/run.py``).

On a throwaway ``redis-server`` of its own, instance A (``local_cache=True``,
in a fresh process, so that no other benchmark's heap lengthens its garbage
collections) verifies a token in a loop, served from its cache; instance B
(no cache, another process, as another app server would be) destroys that
session. Per trial:

- A signs a session, verifies it once (the cache fills), hands the token to B
  through a pipe, and keeps verifying it every millisecond, idle in between
  as a server between requests (a loop spinning at full speed would mostly
  measure how the kernel shares two cores between A, B and Redis); the
  polling adds up to 1 ms to every figure, which are thus upper bounds;
- B takes a monotonic timestamp ``t0`` right before ``await auth.destroy(token)``
  and reports it, and ``t1`` when the destroy returned;
- A takes ``t2`` when its verify first raises ``SessionNotFound``.

Reported: ``t2 - t0`` (destroy called -> seen by A's cache) and ``t2 - t1``
(destroy returned -> seen; negative when A saw it before B's call returned),
p50/p99/max over the trials. ``CLOCK_MONOTONIC`` is one clock for every
process of the machine. As a check that A really verified from memory, the
server's ``PTTL`` count is read before and after: three per trial (the one
``sign.lua`` runs, the fill, and the miss after the invalidation).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__" and not __package__:
    # Like bench/run.py: the repository root first, so bench/http.py never shadows `http`.
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import asyncio
import contextlib
import json
import math
import os
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench._common import event_loop_factory, format_table, resolve_loop
from redis_jwt import RedisJWT
from redis_jwt.errors import SessionNotFound
from redis_jwt.testing import RedisServer

__all__ = ["RevocationResult", "format_revocation", "run_revocation"]

SECRET = "revocation-benchmark-secret-of-at-least-32-bytes"
ROOT = Path(__file__).resolve().parents[1]
#: A trial that takes longer than this is counted as "not seen" (p99 then says inf).
_GIVE_UP_SECONDS = 2.0
#: A verifies this often: uvloop's timer tick (shorter sleeps do not sleep at all).
_POLL_SECONDS = 0.001


@dataclass(frozen=True, slots=True)
class RevocationResult:
    """Per-trial delays in ms, and the PTTL commands the server ran per trial."""

    since_call_ms: tuple[float, ...]
    since_return_ms: tuple[float, ...]
    trials: int
    pttl_per_trial: float

    def quantile(self, values: tuple[float, ...], q: float) -> float:
        """Nearest-rank quantile over all trials; unseen trials count as infinitely late."""
        rank = max(1, math.ceil(q * self.trials))
        ordered = sorted(values)
        return ordered[rank - 1] if rank <= len(ordered) else math.inf

    @property
    def p99_ms(self) -> float:
        """p99 of destroy called -> seen, the figure the target is about."""
        return self.quantile(self.since_call_ms, 0.99)

    def as_dict(self) -> dict[str, float | int]:
        """The machine-readable form used by ``--json``."""
        out: dict[str, float | int] = {"trials": self.trials, "pttl_per_trial": self.pttl_per_trial}
        for name, values in (
            ("since_call", self.since_call_ms),
            ("since_return", self.since_return_ms),
        ):
            for label, q in (("p50", 0.5), ("p99", 0.99), ("max", 1.0)):
                out[f"{name}_{label}_ms"] = self.quantile(values, q)
        return out


def format_revocation(result: RevocationResult) -> str:
    """The revocation table."""
    rows = []
    for label, values in (
        ("destroy called -> A's cache stops serving", result.since_call_ms),
        ("destroy returned -> A's cache stops serving", result.since_return_ms),
    ):
        cells = [f"{result.quantile(values, q):.3f}" for q in (0.5, 0.99, 1.0)]
        rows.append([label, *cells])
    table = format_table(["delay (ms)", "p50", "p99", "max"], rows)
    return (
        f"{table}\n\n{result.trials} trials; {len(result.since_call_ms)} seen within "
        f"{_GIVE_UP_SECONDS:g} s; {result.pttl_per_trial:.2f} PTTL per trial at the server "
        "(3 = sign.lua's own, the fill, the miss after the invalidation: the loop in between "
        "was served from memory)"
    )


def _pttl_calls(server: RedisServer) -> int:
    stats = str(server.command("INFO", "commandstats"))
    _, found, rest = stats.partition("cmdstat_pttl:calls=")
    return int(rest.split(",", 1)[0]) if found else 0


async def _measure(
    url: str, server: RedisServer, trials: int, destroyer: subprocess.Popen[str]
) -> RevocationResult:
    assert destroyer.stdin is not None
    assert destroyer.stdout is not None
    since_call: list[float] = []
    since_return: list[float] = []
    if destroyer.stdout.readline().strip() != "ready":
        raise RuntimeError("the destroyer process did not start")
    async with RedisJWT(secret=SECRET, redis_url=url, local_cache=True) as auth:
        before = _pttl_calls(server)
        for i in range(trials):
            token = await auth.sign(f"revoked-{i % 50}")
            await auth.verify(token)
            destroyer.stdin.write(token + "\n")
            destroyer.stdin.flush()
            sent = time.monotonic()
            seen: float | None = None
            while time.monotonic() - sent < _GIVE_UP_SECONDS:
                try:
                    await auth.verify(token)
                except SessionNotFound:
                    seen = time.monotonic()
                    break
                await asyncio.sleep(_POLL_SECONDS)
            called, returned = map(float, destroyer.stdout.readline().split())
            if seen is not None:
                since_call.append((seen - called) * 1000)
                since_return.append((seen - returned) * 1000)
        after = _pttl_calls(server)
    return RevocationResult(
        tuple(since_call), tuple(since_return), trials, (after - before) / max(trials, 1)
    )


def run_revocation(
    trials: int, loop: str, progress: Callable[[str], None] = lambda _: None
) -> RevocationResult:
    """Measure in a fresh process (instance A), on a redis-server of its own.

    A fresh interpreter, not the caller's: after the other benchmarks the
    caller's heap is large, and its garbage collections would show up as the
    tail of this measurement.
    """
    progress(f"revocation visibility: {trials} trials (fresh process)")
    out = subprocess.run(
        [sys.executable, "-m", "bench.revocation", "--trials", str(trials), "--loop", loop,
         "--json-stdout"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=True,
    ).stdout  # fmt: skip
    data = json.loads(out)
    return RevocationResult(
        tuple(data["since_call_ms"]),
        tuple(data["since_return_ms"]),
        data["trials"],
        data["pttl_per_trial"],
    )


def _measure_here(trials: int, loop: str) -> RevocationResult:
    with RedisServer() as server:
        destroyer = subprocess.Popen(
            [sys.executable, "-m", "bench.revocation", "--destroyer", server.url],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
        )  # fmt: skip
        try:
            with asyncio.Runner(loop_factory=event_loop_factory(resolve_loop(loop))) as runner:
                return runner.run(_measure(server.url, server, trials, destroyer))
        finally:
            if destroyer.stdin is not None:
                destroyer.stdin.close()
            try:
                destroyer.wait(timeout=10)
            except subprocess.TimeoutExpired:
                destroyer.kill()
                destroyer.wait(timeout=10)


async def _destroy_forever(url: str) -> None:
    async with RedisJWT(secret=SECRET, redis_url=url) as auth:
        await auth.ping()
        print("ready", flush=True)
        for line in sys.stdin:  # one token per trial, until A closes the pipe
            token = line.strip()
            called = time.monotonic()
            if not await auth.destroy(token):
                raise SystemExit("the session to destroy was already gone")
            print(f"{called} {time.monotonic()}", flush=True)


def main() -> None:
    """Run the measurement alone (or, with ``--destroyer``, be instance B)."""
    parser = argparse.ArgumentParser(description="redis-jwt revocation visibility")
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto")
    parser.add_argument("--destroyer", metavar="REDIS_URL", help=argparse.SUPPRESS)
    parser.add_argument("--json-stdout", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.destroyer:
        with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):
            asyncio.run(_destroy_forever(args.destroyer))
        return
    trials = min(args.trials, 10_000)
    if args.json_stdout:  # instance A for run_revocation
        measured = _measure_here(trials, args.loop)
        raw = {
            "since_call_ms": measured.since_call_ms,
            "since_return_ms": measured.since_return_ms,
            "trials": measured.trials,
            "pttl_per_trial": measured.pttl_per_trial,
        }
        print(json.dumps(raw))
        return
    load = os.getloadavg()[0]
    result = run_revocation(trials, args.loop, print)
    print(f"\nload average (1 min) at start: {load:.2f}\n")
    print(format_revocation(result))
    print(f"\nmedian destroy called -> seen: {statistics.median(result.since_call_ms):.3f} ms")


if __name__ == "__main__":
    main()
