"""The server checks of ``redis-jwt doctor``: each gives a verdict, a detail and a one-line fix."""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from redis import exceptions as rex

from ._nodes import Node

__all__ = [
    "Check",
    "check_clock",
    "check_connectivity",
    "check_eviction_policy",
    "check_keyspace_events",
    "check_memory_headroom",
    "check_persistence",
    "check_version",
]

Status = Literal["ok", "problem", "skipped"]
MIN_VERSION = (6, 2, 0)
#: A ``noeviction`` server this full refuses new logins soon.
NEAR_MAXMEMORY = 0.90
#: Above this median PING round trip, every verify pays it: Redis is too far away.
# Generous on purpose: a busy host adds milliseconds, a distant region adds tens.
SLOW_ROUND_TRIP_SECONDS = 0.050
MAX_CLOCK_SKEW_SECONDS = 1.0
#: notify-keyspace-events flags the kea listener needs (``A`` covers ``g`` and ``x``).
KEA_FLAGS = "Egx"
_FAILURES = (rex.RedisError, OSError, TimeoutError)


@dataclass(frozen=True, slots=True)
class Check:
    """One verdict of ``doctor``."""

    name: str
    status: Status
    detail: str
    fix: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The check as ``--json`` prints it."""
        return {"name": self.name, "status": self.status, "detail": self.detail, "fix": self.fix}


def _label(node: Node, many: bool) -> str:
    return f"{node.address}: " if many else ""


async def _config(node: Node, name: str) -> str | None:
    """``CONFIG GET name``, or None when the user may not run CONFIG."""
    try:
        reply = await node.client.config_get(name)
    except rex.ResponseError:
        return None
    value = reply.get(name)
    return None if value is None else str(value)


async def _each(
    name: str,
    nodes: list[Node],
    judge: Callable[[Node], Awaitable[tuple[Status, str]]],
    fixes: Mapping[Status, str],
) -> Check:
    """Judge every node: the worst verdict wins, the details are joined, its fix is given."""
    verdicts = [(node, *await judge(node)) for node in nodes]
    many = len(nodes) > 1
    worst: Status = "ok"
    for _, status, _ in verdicts:
        if status == "problem" or (status == "skipped" and worst == "ok"):
            worst = status
    shown = [v for v in verdicts if v[1] == worst] if many and worst != "ok" else verdicts
    detail = "; ".join(f"{_label(node, many)}{detail}" for node, _, detail in shown)
    return Check(name, worst, detail, fixes.get(worst))


async def check_connectivity(nodes: list[Node], pings: int = 5) -> Check:
    """PING each primary a few times; report the median round trip."""
    samples: list[float] = []
    for node in nodes:
        for _ in range(pings):
            began = time.perf_counter()
            await node.client.ping()
            samples.append(time.perf_counter() - began)
    median = statistics.median(samples)
    detail = f"PING round trip {median * 1000:.2f} ms (median of {len(samples)})"
    if median > SLOW_ROUND_TRIP_SECONDS:
        return Check(
            "connectivity",
            "problem",
            detail + f", above {SLOW_ROUND_TRIP_SECONDS * 1000:g} ms: every verify waits for it",
            "run Redis in the same network zone as the app",
        )
    return Check("connectivity", "ok", detail)


async def check_version(nodes: list[Node]) -> Check:
    """Redis 6.2 or newer on every primary."""

    async def judge(node: Node) -> tuple[Status, str]:
        info = await node.client.info("server")
        text = str(info.get("redis_version", "0"))
        version = tuple(int(p) for p in text.split(".")[:3] if p.isdigit())
        name = "Valkey" if "valkey_version" in info else "Redis"
        if version < MIN_VERSION:
            return "problem", f"{name} {text} is older than 6.2"
        return "ok", f"{name} {text}"

    fix = "upgrade to Redis 6.2 or newer (or Valkey)"
    return await _each("server_version", nodes, judge, {"problem": fix})


async def check_eviction_policy(nodes: list[Node]) -> Check:
    """An eviction policy may drop sessions or a user's index when memory runs out."""

    async def judge(node: Node) -> tuple[Status, str]:
        info = await node.client.info("memory")
        policy = str(info.get("maxmemory_policy", "noeviction"))
        maxmemory = int(info.get("maxmemory", 0))
        if maxmemory == 0:
            return "ok", f"maxmemory-policy {policy} (no maxmemory set: nothing is evicted)"
        if policy != "noeviction":
            return "problem", f"maxmemory-policy {policy} can evict sessions and session indexes"
        return "ok", "maxmemory-policy noeviction"

    fix = "CONFIG SET maxmemory-policy noeviction (and size maxmemory for the sessions you keep)"
    return await _each("eviction_policy", nodes, judge, {"problem": fix})


async def check_memory_headroom(nodes: list[Node]) -> Check:
    """Near ``maxmemory`` under ``noeviction``, Redis refuses new logins."""

    async def judge(node: Node) -> tuple[Status, str]:
        info = await node.client.info("memory")
        maxmemory = int(info.get("maxmemory", 0))
        used = int(info.get("used_memory", 0))
        if maxmemory == 0:
            return "ok", f"no maxmemory; {used / 2**20:.1f} MiB used"
        share = used / maxmemory
        detail = f"{used / 2**20:.1f} MiB used of maxmemory {maxmemory / 2**20:.1f} MiB"
        if share >= NEAR_MAXMEMORY:
            return "problem", f"{detail} ({share:.0%}): new logins will be refused"
        return "ok", f"{detail} ({share:.0%})"

    fix = "raise maxmemory or add memory before logins fail"
    return await _each("memory_headroom", nodes, judge, {"problem": fix})


async def check_persistence(nodes: list[Node]) -> Check:
    """Without RDB snapshots or an AOF, a restart ends every session."""

    async def judge(node: Node) -> tuple[Status, str]:
        save = await _config(node, "save")
        info = await node.client.info("persistence")
        aof = int(info.get("aof_enabled", 0)) == 1
        if aof:
            return "ok", "AOF on" + (f", RDB save {save!r}" if save else "")
        if save is None:
            return "skipped", "AOF off; CONFIG GET save is not allowed for this user"
        if save.strip():
            return "ok", f"RDB snapshots (save {save!r})"
        return "problem", "no RDB snapshots and no AOF: a restart ends every session"

    fixes: dict[Status, str] = {
        "problem": "CONFIG SET appendonly yes (or a save schedule), then CONFIG REWRITE",
        "skipped": "ask an administrator to confirm that RDB or AOF is on",
    }
    return await _each("persistence", nodes, judge, fixes)


async def check_keyspace_events(nodes: list[Node], kea: bool) -> Check:
    """With ``REDIS_JWT_KEA=true`` the listener needs ``notify-keyspace-events`` ``Egx``."""
    if not kea:
        return Check("keyspace_events", "skipped", "REDIS_JWT_KEA is off: not needed")

    async def judge(node: Node) -> tuple[Status, str]:
        flags = await _config(node, "notify-keyspace-events")
        if flags is None:
            return "skipped", "CONFIG GET is not allowed for this user"
        missing = "".join(
            f for f in KEA_FLAGS if f not in flags and not (f in "gx" and "A" in flags)
        )
        if missing:
            return "problem", f"notify-keyspace-events is {flags!r}, missing {missing!r}"
        return "ok", f"notify-keyspace-events {flags!r}"

    fixes: dict[Status, str] = {
        "problem": f"CONFIG SET notify-keyspace-events {KEA_FLAGS} (or set it in redis.conf)",
        "skipped": f"ask an administrator to set notify-keyspace-events {KEA_FLAGS}",
    }
    return await _each("keyspace_events", nodes, judge, fixes)


async def check_clock(nodes: list[Node]) -> Check:
    """This host's clock against Redis ``TIME`` (half the round trip allowed for)."""

    async def judge(node: Node) -> tuple[Status, str]:
        before = time.time()
        seconds, micros = await node.client.time()
        after = time.time()
        skew = seconds + micros / 1e6 - (before + after) / 2
        detail = f"Redis clock {skew * 1000:+.0f} ms from this host"
        if abs(skew) > MAX_CLOCK_SKEW_SECONDS:
            return "problem", detail + ": session expiry times and token checks disagree"
        return "ok", detail

    fix = "synchronise the clocks of this host and Redis (NTP)"
    return await _each("clock_skew", nodes, judge, {"problem": fix})
