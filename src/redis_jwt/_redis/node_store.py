"""Redis commands of layout ``"redis-jwt"`` (Node interop), with the store's error translation.

The Node package keeps no per-user index, so a user's sessions can only be
found by their key pattern. Instead of Node's ``KEYS <id>:*`` (which blocks
Redis for the whole keyspace) this uses ``SCAN MATCH <id>:*``: it does not
block other clients, but its cost grows with the size of the database, and it
is bounded (:data:`MAX_SCAN_CALLS` calls of ``COUNT`` :data:`SCAN_COUNT`), past
which it fails with :class:`~redis_jwt.errors.StoreTimeout`.
"""

from __future__ import annotations

from typing import Any

from .._node_layout import node_pattern, parse_node_value, split_node_key
from ..errors import StoreTimeout
from .replies import Liveness, NodeRow, TouchFlag, liveness
from .store import Store

__all__ = ["MAX_SCAN_CALLS", "SCAN_COUNT", "NodeRow", "NodeStore"]

SCAN_COUNT = 1000
MAX_SCAN_CALLS = 10_000


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class NodeStore:
    """Session storage in the Node package's layout, on a standalone or Sentinel Redis."""

    __slots__ = ("_store",)

    def __init__(self, store: Store) -> None:
        self._store = store

    async def create(self, key: str, value: str, ttl_seconds: int, replaced: list[str]) -> None:
        """Delete ``replaced`` and ``SET key value EX ttl`` in one transaction."""
        pipe = self._store.client.pipeline(transaction=True)
        if replaced:
            pipe.delete(*replaced)
        pipe.set(key, value, ex=ttl_seconds)
        await self._store.run(pipe.execute())

    async def alive(self, key: str) -> Liveness | None:
        """The key's ttl; None when it does not exist.

        Through the store's auto-pipeline when it has one, as layout v1's alive.lua.
        """
        return liveness(await self._store.command(("PTTL", key)))

    async def touch(self, key: str, flags: TouchFlag, ttl_ms: int) -> Liveness | None:
        """Run node_touch.lua; None when the key does not exist."""
        reply = await self._store.eval("node_touch", (key,), (int(flags), ttl_ms))
        value = reply[1] if len(reply) > 1 else None
        return liveness(reply[0], None if value is None else _text(value))

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
        candidates = await self._scan(node_pattern(user_id))
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
                ms = int(pttl)
                rows.append(NodeRow(key, None if ms < 0 else ms, value))
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
