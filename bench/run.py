"""redis-jwt benchmark: ``python bench/run.py [--quick] [--json PATH]`` (``nox -s bench``).

In one process, against one throwaway ``redis-server`` of its own (never the
machine's 6379), it measures operations per second at concurrency 1 and 64 of:

- the floor: PyJWT decode (HS256, algorithms pinned) + one redis-py GET, by hand;
- redis-jwt ``verify`` (plain, ``sliding=True``, ``with_session=True``), ``sign``, ``destroy``;
- fastapi-users 15 ``RedisStrategy.read_token`` / ``write_token`` / ``destroy_token``;
- starsessions ``RedisStore.read`` / ``write``;

then Redis memory per session (100 000 sessions), then the HTTP benchmark of
``bench/http.py``, and prints the tables, the versions, the machine and the
performance targets of DESIGN.md section 7 as PASS/MISS (goals, not tests).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__" and not __package__:
    # `python bench/run.py` puts bench/ first on sys.path, where bench/http.py
    # would shadow the standard library's `http`: use the repository root.
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import asyncio
import json
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench._common import (
    LoopName,
    event_loop_factory,
    format_table,
    human_rate,
    machine_info,
    package_versions,
    resolve_loop,
)
from bench._memory import MemoryResult, run_memory
from bench._micro import COLD_POOL, POOL, MicroResult, Settings, accepts_local_cache, run_micro
from bench.http import HttpResult, HttpSettings, format_http, run_http
from bench.revocation import RevocationResult, format_revocation, run_revocation
from redis_jwt.testing import RedisServer

# fastapi-users' counterpart of each kind of operation, for the ratio column.
_FU_COUNTERPART = {"read": "fu_read", "write": "fu_write", "destroy": "fu_destroy"}


@dataclass(frozen=True, slots=True)
class Target:
    """One goal of DESIGN.md section 7, evaluated on this run."""

    name: str
    goal: float
    ratio: float | None
    unavailable: str = ""
    #: What the "measured" column shows instead of the ratio (e.g. "p99 1.2 ms").
    shown: str = ""

    @property
    def verdict(self) -> str:
        """PASS, MISS, or why it could not be measured."""
        if self.ratio is None:
            return self.unavailable or "not measured"
        if self.goal <= 0:  # no number set: a ratio reported beside its reference
            return "reported"
        return "PASS" if self.ratio >= self.goal else "MISS"

    def as_dict(self) -> dict[str, Any]:
        """The machine-readable form used by ``--json``."""
        return {
            "target": self.name,
            "goal": self.goal,
            "ratio": self.ratio,
            "shown": self.shown or None,
            "verdict": self.verdict,
        }


def _median(micro: MicroResult, key: str, c: int) -> float | None:
    stats = micro.stats.get((key, c))
    return stats.median if stats else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _paired(micro: MicroResult, a: str, b: str, c: int) -> float | None:
    """Case ``a`` against case ``b``: the median over rounds of their ratio in the same round.

    Both are measured in every round, one after the other, so a round's ratio
    compares them under the same conditions; a machine that slows down or
    speeds up between rounds moves both. (With rounds of unequal count, the
    ratio of the medians.)
    """
    first, second = micro.stats.get((a, c)), micro.stats.get((b, c))
    if first is None or second is None:
        return None
    if len(first.samples) != len(second.samples):
        return _ratio(first.median, second.median)
    ratios = [x / y for x, y in zip(first.samples, second.samples, strict=True) if y]
    return statistics.median(ratios) if ratios else None


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def micro_rows(micro: MicroResult, concurrencies: tuple[int, ...]) -> list[list[str]]:
    """One row per (case, concurrency), grouped by concurrency."""
    rows = []
    for c in concurrencies:
        for key, label in micro.labels.items():
            stats = micro.stats[key, c]
            floor = _median(micro, micro.floor_of(key), c)
            counterpart = _FU_COUNTERPART.get(micro.kinds[key], "fu_read")
            rows.append(
                [
                    label,
                    str(c),
                    human_rate(stats.median),
                    f"{human_rate(stats.low)}-{human_rate(stats.high)}",
                    f"{stats.iqr_percent:.1f}%",
                    _x(_ratio(stats.median, floor)),
                    _x(_ratio(stats.median, _median(micro, counterpart, c))),
                ]
            )
        for key, why in micro.unavailable.items():
            rows.append([f"({key}: {why})", str(c), "-", "-", "-", "-", "-"])
    return rows


def format_micro(micro: MicroResult, concurrencies: tuple[int, ...]) -> str:
    """The operations table, as printed and as pasted in docs/benchmarks.md."""
    headers = ["operation", "c", "ops/s", "min-max", "IQR", "x floor", "x fastapi-users"]
    return format_table(headers, micro_rows(micro, concurrencies))


def format_memory(memory: MemoryResult) -> str:
    """The memory table, the breakdown of one session's bytes, and the call marker."""
    rows = [
        [
            f"redis-jwt session ({memory.sessions} sessions, 1 per user)",
            f"{memory.bytes_per_session:.0f}",
            f"{memory.session_key_bytes:.0f} + {memory.index_key_bytes:.0f}",
        ],
        [
            f"fastapi-users token ({memory.fu_tokens} tokens)",
            f"{memory.fu_bytes_per_token:.0f}",
            f"{memory.fu_key_bytes:.0f}",
        ],
    ]
    headers = ["what", "INFO used_memory / session", "MEMORY USAGE: session + index key"]
    parts: list[tuple[str, float]] = [
        (
            "session hash (MEMORY USAGE: name, object, listpack, dict entry)",
            memory.session_key_bytes,
        ),
        ("per-user index zset (MEMORY USAGE, the same parts)", memory.index_key_bytes),
        ("expiry entries + key-table slots (MEMORY STATS)", memory.keyspace_bytes),
        ("the rest: allocator rounding of dict entries, script cache", memory.other_bytes),
        ("total: INFO used_memory growth / session", memory.bytes_per_session),
    ]
    breakdown = format_table(
        ["where one session's bytes go", "bytes"], [[p, f"{b:.1f}"] for p, b in parts]
    )
    marker = (
        f"main key table grown by {memory.table_slots} slots for {memory.tables.keys} keys; "
        f"connection buffers {memory.tables.clients:+d} B, script cache "
        f"{memory.tables.scripts:+d} B (in the rest);\n"
        f"call marker (one per sign, kept until the call's deadline): MEMORY USAGE "
        f"{memory.marker_key_bytes:.0f} B + a 24 B expiry entry, at most "
        f"{memory.markers_pending} pending after a chunk of signs; "
        f"{memory.stray_keys} keys beyond 2 per session when measured"
    )
    return "\n".join([format_table(headers, rows), "", breakdown, marker])


def memory_target(memory: MemoryResult | None) -> Target:
    """Issue 15: at most 300 bytes of INFO used_memory per session at 100 000 sessions."""
    per = memory.bytes_per_session if memory is not None else 0.0
    return Target(
        "memory per session <= 300 B (INFO used_memory)",
        1.0,
        300.0 / per if per > 0 else None,
        "not measured: --skip-memory",
        shown=f"{per:.0f} B" if per > 0 else "",
    )


def targets(
    micro: MicroResult,
    http: HttpResult | None,
    local_cache: bool,
    revocation: RevocationResult | None = None,
) -> list[Target]:
    """DESIGN.md section 7, as ratios measured in this run."""
    out = [
        Target(
            "verify c=64 >= 5.0x fastapi-users read_token c=64",
            5.0,
            _paired(micro, "verify", "fu_read", 64),
        ),
        Target(
            "verify c=1 >= 1.0x floor c=1",
            1.0,
            _paired(micro, "verify", "floor", 1),
        ),
        Target(
            "sign c=64 >= 1.0x fastapi-users write_token c=64",
            1.0,
            _paired(micro, "sign", "fu_write", 64),
        ),
        Target(
            "verify track_activity=True c=64 >= 0.9x verify c=64",
            0.9,
            _paired(micro, "verify_activity", "verify", 64),
        ),
        Target(
            "cold verify c=64 >= 3.0x floor over distinct tokens c=64",
            3.0,
            _paired(micro, "verify_cold", "floor_cold", 64),
        ),
        Target(
            "cold verify c=1 >= 1.2x floor over distinct tokens c=1",
            1.2,
            _paired(micro, "verify_cold", "floor_cold", 1),
        ),
        Target(
            "refresh c=64 costs <= 1.5x a sign: >= 0.67x sign c=64",
            1 / 1.5,
            _paired(micro, "refresh", "sign", 64),
        ),
    ]
    out += http_targets(http, local_cache)
    unavailable = "not available: RedisJWT does not accept local_cache"
    out.append(
        Target(
            "cached verify c=64 >= 20x floor c=64",
            20.0,
            _paired(micro, "verify_cached", "floor", 64),
            unavailable if not local_cache else "not measured",
        )
    )
    out.append(
        Target(
            "verify c=64, OTel API installed and no SDK >= 0.97x verify c=64",
            0.97,
            _paired(micro, "verify_otel", "verify", 64),
        )
    )
    p99 = revocation.p99_ms if revocation is not None else None
    out.append(
        Target(
            "destroy seen by another instance's cache: p99 <= 5 ms",
            1.0,
            None if p99 is None else (5.0 / p99 if p99 > 0 else float("inf")),
            unavailable if not local_cache else "not measured: --skip-revocation",
            shown="" if p99 is None else f"p99 {p99:.2f} ms",
        )
    )
    return out


def http_targets(http: HttpResult | None, local_cache: bool) -> list[Target]:
    """The HTTP goals of DESIGN.md section 7, and the adapters' ratios (reported, no goal)."""
    skipped = http.skipped if http is not None else {}

    def ratio(app: str, base: str = "bare") -> float | None:
        return http.ratio(app, base) if http is not None else None

    def why(app: str) -> str:
        return "not measured: " + skipped.get(app, "HTTP benchmark skipped")

    cached_why = (
        "not available: RedisJWT does not accept local_cache"
        if not local_cache
        else why("middleware_cached")
    )
    return [
        Target(
            "middleware >= 0.7x bare Starlette req/s (64 connections)",
            0.7,
            ratio("middleware"),
            why("middleware"),
        ),
        Target(
            "middleware local_cache >= 0.9x bare Starlette req/s",
            0.9,
            ratio("middleware_cached"),
            cached_why,
        ),
        # No number is set for these two: reported beside their bare app (goal 0: "reported").
        Target(
            "FastAPI require_session / bare FastAPI req/s (reported)",
            0.0,
            ratio("fastapi_dependency", "fastapi"),
            why("fastapi_dependency"),
        ),
        Target(
            "Litestar RedisJWTPlugin / bare Litestar req/s (reported)",
            0.0,
            ratio("litestar_plugin", "litestar"),
            why("litestar_plugin"),
        ),
    ]


def format_targets(items: list[Target]) -> str:
    """The targets table."""
    rows = [
        [t.name, f"{t.goal:.2g}x" if t.goal > 0 else "-", t.shown or _x(t.ratio), t.verdict]
        for t in items
    ]
    note = (
        "(two operations: the median over rounds of their ratio in the same round; "
        "HTTP: the ratio of the median rounds)"
    )
    return format_table(["target", "goal", "measured", "verdict"], rows) + "\n" + note


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description="redis-jwt benchmark (docs/benchmarks.md)")
    parser.add_argument("--quick", action="store_true", help="a short smoke run (~30 s)")
    parser.add_argument("--json", type=Path, default=None, help="write results here")
    parser.add_argument("--rounds", type=int, default=None, help="measured rounds per case")
    parser.add_argument("--seconds", type=float, default=None, help="duration of one round")
    parser.add_argument("--sessions", type=int, default=None, help="sessions for the memory test")
    parser.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto")
    parser.add_argument("--load-generator", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument(
        "--micro-only",
        action="store_true",
        help="only the operations table and its targets (no HTTP, memory, revocation)",
    )
    parser.add_argument(
        "--only-http", action="store_true", help="the HTTP benchmark and its targets only"
    )
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument(
        "--only-memory", action="store_true", help="run only the memory test (and its target)"
    )
    parser.add_argument("--skip-revocation", action="store_true")
    parser.add_argument(
        "--revocation-trials", type=int, default=None, help="trials (default 300, quick 50)"
    )
    args = parser.parse_args(argv)
    if args.micro_only:
        args.skip_http = args.skip_memory = args.skip_revocation = True
    return args


def only_memory(
    args: argparse.Namespace, sessions: int, loop: LoopName, progress: Callable[[str], None]
) -> None:
    """``--only-memory``: the memory test on a fresh server, its table and its target."""
    with RedisServer() as fresh, asyncio.Runner(loop_factory=event_loop_factory(loop)) as r:
        redis_version = ".".join(map(str, fresh.version))
        progress(f"redis-server {redis_version} on {fresh.url}")
        memory = r.run(run_memory(fresh.url, sessions, progress))
    versions = package_versions()
    print()
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    print(f"redis-server {redis_version}")
    print()
    print(format_memory(memory))
    print()
    goal = memory_target(memory)
    print(format_targets([goal]))
    if args.json is not None:
        payload = {
            "machine": machine_info(),
            "versions": {**versions, "redis-server": redis_version},
            "memory": memory.as_dict(),
            "targets": [goal.as_dict()],
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {args.json}")


def http_only(args: argparse.Namespace) -> None:
    """``--only-http``: the HTTP table and the HTTP targets, on a redis-server of its own."""
    from bench.http import http_settings

    settings = http_settings(args)
    began = time.perf_counter()
    load_before = os.getloadavg()[0]

    def progress(message: str) -> None:
        print(f"  .. [{time.perf_counter() - began:5.0f} s] {message}", flush=True)

    with RedisServer() as server:
        redis_version = ".".join(map(str, server.version))
        http = run_http(server.url, settings, progress)
    goals = http_targets(http, accepts_local_cache())
    print(
        f"\nredis-server {redis_version}; {http.server}; load average (1 min) at start/end: "
        f"{load_before:.2f}/{os.getloadavg()[0]:.2f}"
    )
    print(
        f"HTTP load: {http.generator}, {settings.connections} connections, "
        f"{settings.rounds} x {settings.round_seconds:g} s"
    )
    print(format_http(http))
    print()
    print(format_targets(goals))
    if args.json is not None:
        payload = {
            "machine": machine_info(),
            "versions": {**package_versions(), "redis-server": redis_version},
            "http": http.as_dict(),
            "targets": [t.as_dict() for t in goals],
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {args.json}")


def main(argv: list[str] | None = None) -> None:
    """Run everything, print the report, optionally write JSON."""
    args = parse_args(argv)
    if args.only_http:
        http_only(args)
        return
    began = time.perf_counter()
    load_before = os.getloadavg()[0]
    loop = resolve_loop(args.loop)
    settings = (
        Settings(rounds=2, round_seconds=0.2, warmup_seconds=0.1) if args.quick else Settings()
    )
    settings = Settings(
        concurrencies=settings.concurrencies,
        rounds=min(args.rounds or settings.rounds, 20),
        round_seconds=min(args.seconds or settings.round_seconds, 10.0),
        warmup_seconds=settings.warmup_seconds,
    )
    sessions = min(args.sessions or (2000 if args.quick else 100_000), 1_000_000)
    http_settings = HttpSettings(
        rounds=1 if args.quick else 3,
        round_seconds=1.0 if args.quick else 4.0,
        warmup_seconds=1.0 if args.quick else 2.0,
        loop=args.loop,
        load_generator=args.load_generator,
    )

    def progress(message: str) -> None:
        print(f"  .. [{time.perf_counter() - began:5.0f} s] {message}", flush=True)

    if args.only_memory:
        only_memory(args, sessions, loop, progress)
        return
    memory: MemoryResult | None = None
    http: HttpResult | None = None
    revocation: RevocationResult | None = None
    with RedisServer() as server:
        redis_version = ".".join(map(str, server.version))
        progress(f"redis-server {redis_version} on {server.url}; event loop {loop}")
        with asyncio.Runner(loop_factory=event_loop_factory(loop)) as runner:
            micro = runner.run(run_micro(server.url, settings, progress))
        if not args.skip_http:
            server.command("FLUSHALL")
            http = run_http(server.url, http_settings, progress)
    if not args.skip_memory:
        # A fresh server: nothing else may share the used_memory figure.
        with RedisServer() as fresh, asyncio.Runner(loop_factory=event_loop_factory(loop)) as r:
            memory = r.run(run_memory(fresh.url, sessions, progress))
    local_cache = "verify_cached" not in micro.unavailable
    if local_cache and not args.skip_revocation:
        trials = args.revocation_trials or (50 if args.quick else 300)
        revocation = run_revocation(min(trials, 10_000), args.loop, progress)
    elapsed = time.perf_counter() - began
    load_after = os.getloadavg()[0]

    machine = machine_info()
    versions = package_versions()
    goals = [*targets(micro, http, local_cache, revocation), memory_target(memory)]
    print()
    print(
        f"machine: {machine['cpu']}, {machine['cores']} cores "
        f"({machine['usable_cores']} usable), {machine['os']}, {machine['python']}"
    )
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    print(f"redis-server {redis_version} (loopback TCP), event loop: {loop}")
    print(
        f"load average (1 min) at start/end: {load_before:.2f}/{load_after:.2f} "
        "(other processes on the machine add noise)"
    )
    print(
        f"rounds: {settings.rounds} x {settings.round_seconds:g} s per case after "
        f"{settings.warmup_seconds:g} s warm-up; ops/s = median round; "
        f"min-max = slowest/fastest round; IQR = (Q3-Q1)/median"
    )
    print(
        f"warm: {POOL:,} sessions, each token verified again and again (the token cache "
        f"answers the decode);\ncold: {COLD_POOL:,} sessions of as many users, every "
        "operation a different token (no cache can); x floor: the floor of the same kind"
    )
    print()
    print(format_micro(micro, settings.concurrencies))
    if memory is not None:
        print()
        print(format_memory(memory))
    if http is not None:
        print()
        print(
            f"HTTP: {http.server}; load: {http.generator}, {http_settings.connections} "
            f"connections, {http_settings.rounds} x {http_settings.round_seconds:g} s"
        )
        print(format_http(http))
    if revocation is not None:
        print()
        print("Revocation visibility (instance A with local_cache verifies in a loop; B, another")
        print("process, destroys):")
        print(format_revocation(revocation))
    print()
    print(format_targets(goals))
    print(f"\n(total {elapsed:.0f} s)")
    if args.json is not None:
        payload = {
            "machine": machine,
            "versions": {**versions, "redis-server": redis_version, "event-loop": loop},
            "settings": {
                "rounds": settings.rounds,
                "round_seconds": settings.round_seconds,
                "warmup_seconds": settings.warmup_seconds,
                "concurrencies": list(settings.concurrencies),
                "quick": args.quick,
            },
            "micro": [
                {
                    "case": key,
                    "label": micro.labels[key],
                    "concurrency": c,
                    "ops_per_second": stats.as_dict(),
                    "floor": micro.floor_of(key),
                    "ratio_to_floor": _ratio(stats.median, _median(micro, micro.floor_of(key), c)),
                    "ratio_to_fastapi_users": _ratio(
                        stats.median,
                        _median(micro, _FU_COUNTERPART.get(micro.kinds[key], "fu_read"), c),
                    ),
                }
                for (key, c), stats in micro.stats.items()
            ],
            "unavailable": micro.unavailable,
            "memory": memory.as_dict() if memory is not None else None,
            "http": http.as_dict() if http is not None else None,
            "revocation": revocation.as_dict() if revocation is not None else None,
            "targets": [t.as_dict() for t in goals],
            "seconds": elapsed,
            "load_average_1min": {"start": load_before, "end": load_after},
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
