"""Redis commands of layout ``"redis-jwt"`` (Node interop), with the store's error translation.

The Node package keeps no per-user index, so a user's sessions can only be
found by their key pattern. Instead of Node's ``KEYS <id>:*`` (which blocks
Redis for the whole keyspace) this uses ``SCAN MATCH <id>:*``: it does not
block other clients, but its cost grows with the size of the database, and it
is bounded (:data:`MAX_SCAN_CALLS` calls of ``COUNT`` :data:`SCAN_COUNT`), past
which it fails with :class:`~redis_jwt.errors.StoreTimeout`.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from typing import Any

from redis import exceptions as rex

from ._node_layout import parse_node_value, split_node_key
from ._store import Store
from .errors import StoreTimeout

__all__ = ["MAX_SCAN_CALLS", "SCAN_COUNT", "NodeRow", "NodeStore"]

SCAN_COUNT = 1000
MAX_SCAN_CALLS = 10_000
# Flags of node_touch.lua.
SLIDE, LOAD = 1, 2

#: One live session: key, ttl in ms (-1: no expiry), stored object.
NodeRow = tuple[str, int, dict[str, Any]]


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class NodeStore:
    """Session storage in the Node package's layout, on a standalone or Sentinel Redis."""

    __slots__ = ("_sha", "_source", "_store")

    def __init__(self, store: Store) -> None:
        self._store = store
        self._source = (resources.files("redis_jwt") / "scripts" / "node_touch.lua").read_text(
            "utf-8"
        )
        self._sha = hashlib.sha1(self._source.encode(), usedforsecurity=False).hexdigest()

    async def create(self, key: str, value: str, ttl_seconds: int, replaced: list[str]) -> None:
        """Delete ``replaced`` and ``SET key value EX ttl`` in one transaction."""
        pipe = self._store.client.pipeline(transaction=True)
        if replaced:
            pipe.delete(*replaced)
        pipe.set(key, value, ex=ttl_seconds)
        await self._store.run(pipe.execute())

    async def pttl(self, key: str) -> int:
        """Return the key's ttl in ms: -2 when it does not exist, -1 when it never expires."""
        return int(await self._store.run(self._store.client.pttl(key)))

    async def touch(self, key: str, flags: int, ttl_ms: int) -> tuple[int, str | None]:
        """Run node_touch.lua: return (ttl ms or -2, stored value or None)."""
        reply = await self._store.run(self._eval(key, flags, ttl_ms))
        value = reply[1] if len(reply) > 1 else None
        return int(reply[0]), None if value is None else _text(value)

    async def _eval(self, key: str, flags: int, ttl_ms: int) -> Any:
        client = self._store.client
        try:
            return await client.evalsha(self._sha, 1, key, flags, ttl_ms)
        except rex.NoScriptError:
            return await client.eval(self._source, 1, key, flags, ttl_ms)

    async def delete(self, keys: list[str]) -> int:
        """Delete ``keys``; return how many existed."""
        if not keys:
            return 0
        return int(await self._store.run(self._store.client.delete(*keys)))

    async def user_sessions(self, user_id: str) -> list[NodeRow]:
        """Return the live sessions of ``user_id``: every ``<user id>:<session id>`` key whose
        value is a session of its own key (other keys matching the pattern are left alone).

        ``user_id`` must be free of glob characters (checked by the caller).
        """
        candidates = await self._scan(f"{user_id}:*")
        if not candidates:
            return []
        pipe = self._store.client.pipeline(transaction=False)
        for key in candidates:
            pipe.pttl(key)
            pipe.get(key)
        replies = await self._store.run(pipe.execute(raise_on_error=False))
        rows: list[NodeRow] = []
        for i, key in enumerate(candidates):
            pttl, raw = replies[2 * i], replies[2 * i + 1]
            if isinstance(pttl, Exception) or isinstance(raw, Exception) or int(pttl) == -2:
                continue
            value = parse_node_value(key, None if raw is None else _text(raw))
            if value is not None:
                rows.append((key, int(pttl), value))
        return rows

    async def _scan(self, pattern: str) -> list[str]:
        client = self._store.client
        found: dict[str, None] = {}  # SCAN may return a key twice; keep the first, in order
        cursor = 0
        for _ in range(MAX_SCAN_CALLS):
            cursor, keys = await self._store.run(
                client.scan(cursor=cursor, match=pattern, count=SCAN_COUNT)
            )
            for raw in keys:
                key = _text(raw)
                if split_node_key(key) is not None:
                    found[key] = None
            if int(cursor) == 0:
                return list(found)
        raise StoreTimeout(
            f"the database is too large to find a user's sessions with SCAN "
            f"({MAX_SCAN_CALLS} x COUNT {SCAN_COUNT}); layout v1 keeps a per-user index"
        )
