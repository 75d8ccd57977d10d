"""The only module that talks to Redis: layout v1 scripts and error translation."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Sequence
from importlib import resources
from typing import Any, TypeVar

from redis import exceptions as rex
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from ._layout import Layout
from .errors import StoreError, StoreTimeout, StoreUnavailable

__all__ = ["AnyRedis", "SessionRow", "Store"]

T = TypeVar("T")
AnyRedis = Redis | RedisCluster

# Redis errors that mean "this node cannot serve right now", as opposed to a
# reply about the data. They all deserve a 503 and a retry later.
_UNAVAILABLE = (
    rex.ConnectionError,  # includes AuthenticationError and BusyLoadingError
    rex.ClusterDownError,
    rex.ClusterError,
    rex.RedisClusterException,
    rex.MasterDownError,
    rex.TryAgainError,
    rex.ReadOnlyError,
    rex.NoPermissionError,
    OSError,
)
SCRIPT_NAMES = ("sign", "touch", "destroy", "destroy_all", "list")

# Flags of touch.lua.
SLIDE, LOAD, ANNOUNCE = 1, 2, 4

#: One row of ``list.lua``: session id, ttl ms, created us, idle ttl s, data JSON.
SessionRow = tuple[str, int, int, int, str | None]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class _Script:
    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()


def _load_scripts() -> dict[str, _Script]:
    folder = resources.files("redis_jwt") / "scripts"
    return {name: _Script((folder / f"{name}.lua").read_text("utf-8")) for name in SCRIPT_NAMES}


class Store:
    """Session storage on one Redis deployment (standalone, Sentinel or Cluster)."""

    __slots__ = ("_deadline", "_scripts", "channel", "client", "layout")

    def __init__(self, client: AnyRedis, layout: Layout, *, deadline_seconds: float) -> None:
        self.client = client
        self.layout = layout
        self._deadline = deadline_seconds
        self._scripts = _load_scripts()
        #: The channel the scripts publish session events on ('' for none).
        self.channel = ""

    async def run(self, awaitable: Awaitable[T]) -> T:
        """Await one Redis call within the deadline, translating its errors."""
        try:
            async with asyncio.timeout(self._deadline):
                return await awaitable
        except (TimeoutError, rex.TimeoutError) as exc:
            raise StoreTimeout(f"Redis did not answer within {self._deadline:g} s") from exc
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"Redis is unavailable: {exc}") from exc
        except rex.RedisError as exc:
            raise StoreError(f"Redis failed: {exc}") from exc

    async def _eval(self, name: str, keys: Sequence[str], args: Sequence[str | int]) -> Any:
        script = self._scripts[name]
        try:
            return await self.client.evalsha(script.sha, len(keys), *keys, *args)
        except rex.NoScriptError:
            # After a restart or failover the script cache is empty: EVAL runs
            # the script and caches it again.
            return await self.client.eval(script.source, len(keys), *keys, *args)

    async def load_scripts(self) -> None:
        """Load every script (on every primary, for a cluster client)."""

        async def load() -> None:
            for script in self._scripts.values():
                await self.client.script_load(script.source)

        await self.run(load())

    async def ping(self) -> bool:
        """Return True when Redis answers PING."""
        return bool(await self.run(self.client.ping()))

    async def info(self, section: str | None = None) -> dict[str, Any]:
        """Return Redis ``INFO`` as a dict."""
        return dict(await self.run(self.client.info(section)))

    async def sign(
        self,
        user_id: str,
        session_id: str,
        *,
        idle_seconds: int,
        exp: int,
        data: str,
        limit: int,
    ) -> tuple[int, int, list[str]]:
        """Create a session; return (creation µs, ttl ms, evicted session ids)."""
        layout = self.layout
        tag = layout.user_tag(user_id)
        reply = await self.run(
            self._eval(
                "sign",
                (f"{tag}:s:{session_id}", f"{tag}:i"),
                (session_id, idle_seconds, exp, data, limit, self.channel, f"{tag}:s:", user_id),
            )
        )
        return int(reply[0]), int(reply[1]), [_text(v) for v in reply[2:]]

    async def pttl(self, user_id: str, session_id: str) -> int:
        """Return the session's ttl in ms, -2 when it does not exist (one plain command)."""
        key = self.layout.session_key(user_id, session_id)
        return int(await self.run(self.client.pttl(key)))

    async def touch(self, user_id: str, session_id: str, flags: int) -> tuple[int, str | None]:
        """Run touch.lua: return (ttl ms or -2, private data JSON or None)."""
        tag = self.layout.user_tag(user_id)
        reply = await self.run(
            self._eval(
                "touch",
                (f"{tag}:s:{session_id}", f"{tag}:i"),
                (flags, self.channel, user_id, session_id),
            )
        )
        data = reply[1] if len(reply) > 1 else None
        return int(reply[0]), None if data is None else _text(data)

    async def destroy(self, user_id: str, session_id: str, reason: str) -> bool:
        """End one session; return whether it existed."""
        tag = self.layout.user_tag(user_id)
        reply = await self.run(
            self._eval(
                "destroy",
                (f"{tag}:s:{session_id}", f"{tag}:i"),
                (session_id, self.channel, user_id, reason),
            )
        )
        return int(reply) == 1

    async def destroy_all(self, user_id: str) -> list[str]:
        """End every session of a user; return the ids that existed."""
        tag = self.layout.user_tag(user_id)
        reply = await self.run(
            self._eval("destroy_all", (f"{tag}:i",), (f"{tag}:s:", self.channel, user_id))
        )
        return [_text(v) for v in reply]

    async def list(self, user_id: str) -> list[SessionRow]:
        """Return the user's live sessions, unordered."""
        tag = self.layout.user_tag(user_id)
        flat = await self.run(self._eval("list", (f"{tag}:i",), (f"{tag}:s:", "list")))
        rows: list[SessionRow] = []
        for i in range(0, len(flat), 5):
            sid, pttl, created, idle, data = flat[i : i + 5]
            rows.append(
                (
                    _text(sid),
                    int(pttl),
                    int(created or 0),
                    int(idle or 0),
                    None if data is None else _text(data),
                )
            )
        return rows

    async def count(self, user_id: str) -> int:
        """Return the number of live sessions of a user."""
        tag = self.layout.user_tag(user_id)
        return int(await self.run(self._eval("list", (f"{tag}:i",), (f"{tag}:s:", "count"))))

    async def aclose(self) -> None:
        """Close the client (only called for clients the library built)."""
        await self.client.aclose()
