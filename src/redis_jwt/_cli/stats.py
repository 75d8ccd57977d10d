"""``redis-jwt stats``: live sessions and users under one prefix, counted without blocking Redis.

Counting walks the keyspace with ``SCAN`` (never ``KEYS``): ``COUNT`` keys per
step, a bounded number of steps and seconds, on a replica of each shard when
one answers. The admin page shows the same numbers through :func:`collect_stats`.
"""

from __future__ import annotations

import json
import re
import sys
import time
from dataclasses import dataclass
from typing import Any

from redis import exceptions as rex

from .. import RedisJWT
from ..errors import StoreTimeout, StoreUnavailable
from ._common import (
    EXIT_OK,
    EXIT_PROBLEM,
    Options,
    build_auth,
    load_settings,
    namespace_of,
    print_json,
    print_table,
    redis_url,
    require_redis,
)
from ._nodes import Node, call, close_nodes, read_targets

__all__ = ["Stats", "collect_stats", "command"]

SCAN_COUNT = 1000
MAX_SCAN_STEPS = 100_000
MAX_SCAN_SECONDS = 60.0
_GLOB = re.compile(r"([*?\[\]\\])")
# Layout "redis-jwt": <user id>:<session id>, user ids without ':' or glob characters.
_NODE_KEY = re.compile(r"([^:*?\[\]\\]+):([A-Za-z0-9]{11,64})")


@dataclass(frozen=True, slots=True)
class Stats:
    """What a count found.

    Attributes:
        sessions: live sessions under the prefix.
        users: distinct users with at least one live session.
        complete: False when the scan stopped at its step or time bound.
        matched_keys: keys the scan returned (those matching the session pattern).
        sources: the servers read (``host:port (replica)``).
        layout: ``v1`` or ``redis-jwt``.
        prefix: the key prefix counted (v1 only; ``redis-jwt`` keys have none).
    """

    sessions: int
    users: int
    complete: bool
    matched_keys: int
    sources: tuple[str, ...]
    layout: str
    prefix: str | None

    def as_json(self) -> dict[str, Any]:
        """The ``--json`` document."""
        return {
            "sessions": self.sessions,
            "users": self.users,
            "complete": self.complete,
            "matched_keys": self.matched_keys,
            "layout": self.layout,
            "prefix": self.prefix,
            "sources": list(self.sources),
        }


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class _Counter:
    def __init__(self, layout: str, prefix: str, deadline: float) -> None:
        self.layout = layout
        self.deadline = deadline
        self.sessions = 0
        self.users: set[str] = set()
        self.matched = 0
        self.complete = True
        if layout == "v1":
            self.pattern = _GLOB.sub(r"\\\1", prefix) + ":{*}:s:*"
            self._v1 = re.compile(re.escape(prefix) + r":\{([^{}]*)\}:s:[A-Za-z0-9_-]{22}")
        else:
            self.pattern = "*:*"

    async def scan(self, node: Node) -> None:
        cursor: int | bytes | str = 0
        for _ in range(MAX_SCAN_STEPS):
            if time.monotonic() > self.deadline:
                break
            reply = await call(
                node.client, "SCAN", cursor, "MATCH", self.pattern, "COUNT", SCAN_COUNT
            )
            cursor, keys = reply[0], [_text(k) for k in reply[1]]
            self.matched += len(keys)
            await self._classify(node, keys)
            if int(cursor) == 0:
                return
        self.complete = False

    async def _classify(self, node: Node, keys: list[str]) -> None:
        if self.layout == "v1":
            for key in keys:
                match = self._v1.fullmatch(key)
                if match:
                    self.sessions += 1
                    self.users.add(match.group(1))
            return
        # A key of the right shape is only a session when its value names it.
        candidates = [(key, m) for key in keys if (m := _NODE_KEY.fullmatch(key))]
        if not candidates:
            return
        pipe = node.client.pipeline(transaction=False)
        for key, _ in candidates:
            pipe.execute_command("GET", key)
        values = await pipe.execute(raise_on_error=False)
        for (key, match), value in zip(candidates, values, strict=True):
            if isinstance(value, bytes | str) and _names(key, _text(value)):
                self.sessions += 1
                self.users.add(match.group(1))


def _names(key: str, value: str) -> bool:
    try:
        document = json.loads(value)
    except ValueError:
        return False
    return isinstance(document, dict) and document.get("rjwt") == key


async def collect_stats(auth: RedisJWT, *, max_seconds: float = MAX_SCAN_SECONDS) -> Stats:
    """Count the live sessions and users of ``auth``'s namespace without blocking Redis.

    Exact while nothing changes during the count (a scan of a replica sees what
    has reached the replica).

    Args:
        auth: an open RedisJWT.
        max_seconds: stop scanning after this long (then ``complete`` is False).

    Returns:
        The counts.

    Raises:
        StoreError: Redis could not be reached or timed out.
    """
    layout, prefix = namespace_of(auth)
    counter = _Counter(layout, prefix, time.monotonic() + max_seconds)
    try:
        targets = await read_targets(auth.redis)
        try:
            for node in targets:
                await counter.scan(node)
        finally:
            await close_nodes(targets)
    except rex.TimeoutError as exc:
        raise StoreTimeout(f"Redis did not answer while counting: {exc}") from exc
    except (rex.ConnectionError, OSError) as exc:
        raise StoreUnavailable(f"Redis is unavailable: {exc}") from exc
    return Stats(
        sessions=counter.sessions,
        users=len(counter.users),
        complete=counter.complete,
        matched_keys=counter.matched,
        sources=tuple(f"{n.address} ({n.role})" for n in targets),
        layout=layout,
        prefix=prefix if layout == "v1" else None,
    )


async def command(options: Options, max_seconds: float) -> int:
    """Run ``redis-jwt stats``."""
    settings = load_settings()
    auth = build_auth(settings, options)
    async with auth:
        await require_redis(auth, redis_url(settings, options))
        stats = await collect_stats(auth, max_seconds=max_seconds)
    if options.json:
        print_json(stats.as_json())
    else:
        where = f"prefix {stats.prefix}" if stats.prefix else "layout redis-jwt"
        print_table(
            ("WHAT", "COUNT"),
            [("sessions", str(stats.sessions)), ("users", str(stats.users))],
            styles=((), ("bold",)),
        )
        print(f"({where}; read from {', '.join(stats.sources)})", flush=True)
    if not stats.complete:
        print(
            f"redis-jwt: the count stopped after {max_seconds:g} s; the numbers are partial "
            "(raise --max-seconds)",
            file=sys.stderr,
        )
        return EXIT_PROBLEM
    return EXIT_OK
