"""The only module that sends commands to Redis: layout v1 scripts and error translation.

(The events listener keeps its own pub/sub connections: see ``_listener.py``.)
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from importlib import resources
from typing import Any, TypeVar

from redis import exceptions as rex
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from ._layout import Layout
from ._pipeline import AutoPipeline, Command, usable_with
from .errors import StoreError, StoreTimeout, StoreUnavailable

__all__ = ["AnyRedis", "SessionRow", "Store"]

logger = logging.getLogger("redis_jwt")

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
SCRIPT_NAMES = (
    "sign",
    "touch",
    "destroy",
    "destroy_all",
    "list",
    # The expiry schedule (see docs/layout.md, "Expiry schedule").
    "schedule",
    "claim",
    "inspect",
    "settle",
)
#: Schedule entries overdue by longer than this are dropped when a new one is
#: added (no sweeper ran for a day); it also bounds the buckets' lifetime.
SCHEDULE_HORIZON_MS = 86_400_000

# Flags of touch.lua.
SLIDE, LOAD, ANNOUNCE = 1, 2, 4

#: One row of ``list.lua``: session id, ttl ms, created us, idle ttl s, data JSON.
SessionRow = tuple[str, int, int, int, str | None]
#: One call of a batch: a script name (sent as EVALSHA) or a command, its keys, its arguments.
Call = tuple[str, Sequence[str], Sequence[str | int]]


def text(value: Any) -> str:
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

    __slots__ = (
        "_deadline",
        "_pipe",
        "_scripts",
        "channel",
        "client",
        "layout",
        "on_failure",
        "origin",
        "scheduling",
    )

    def __init__(self, client: AnyRedis, layout: Layout, *, deadline_seconds: float) -> None:
        self.client = client
        self.layout = layout
        self._deadline = deadline_seconds
        # Commands of one event-loop pass share a pipeline (see _pipeline.py); a
        # cluster client gets direct calls instead (a pipeline would span nodes).
        self._pipe = AutoPipeline(client, self.run, self.translate) if usable_with(client) else None
        self._scripts = _load_scripts()
        #: The channel the scripts publish session events on ('' for none).
        self.channel = layout.channel
        #: This instance's id in the notices it publishes (field ``o``).
        self.origin = ""
        #: Whether sign() also puts the session on the expiry schedule.
        self.scheduling = False
        #: Called with the error when Redis is unreachable or too slow (must not raise).
        self.on_failure: Callable[[StoreError], None] | None = None

    @property
    def deadline_seconds(self) -> float:
        """How long one call may take, retry included."""
        return self._deadline

    async def run(self, awaitable: Awaitable[T]) -> T:
        """Await one Redis call within the deadline, translating its errors."""
        try:
            async with asyncio.timeout(self._deadline):
                return await awaitable
        except (TimeoutError, rex.TimeoutError) as exc:
            error: StoreError = StoreTimeout(f"Redis did not answer within {self._deadline:g} s")
            raise self._failed(error) from exc
        except _UNAVAILABLE as exc:
            raise self._failed(StoreUnavailable(f"Redis is unavailable: {exc}")) from exc
        except rex.RedisError as exc:
            raise StoreError(f"Redis failed: {exc}") from exc

    def translate(self, exc: BaseException) -> StoreError:
        """The error :meth:`run` raises for ``exc``, for one error reply of a pipeline."""
        if isinstance(exc, rex.TimeoutError | TimeoutError):
            return self._failed(StoreTimeout(f"Redis did not answer within {self._deadline:g} s"))
        if isinstance(exc, _UNAVAILABLE):
            return self._failed(StoreUnavailable(f"Redis is unavailable: {exc}"))
        return StoreError(f"Redis failed: {exc}")

    def _script(self, name: str, keys: Sequence[str], args: Sequence[str | int]) -> Awaitable[Any]:
        """Run a script by SHA, through the auto-pipeline when there is one."""
        if self._pipe is None:
            return self.run(self._eval(name, keys, args))
        script = self._scripts[name]
        tail: Command = (len(keys), *keys, *args)
        return self._pipe.submit(("EVALSHA", script.sha, *tail), ("EVAL", script.source, *tail))

    def _failed(self, error: StoreError) -> StoreError:
        if self.on_failure is not None:
            self.on_failure(error)
        return error

    async def _eval(self, name: str, keys: Sequence[str], args: Sequence[str | int]) -> Any:
        script = self._scripts[name]
        try:
            return await self.client.evalsha(script.sha, len(keys), *keys, *args)
        except rex.NoScriptError:
            # After a restart or failover the script cache is empty: EVAL runs
            # the script and caches it again.
            return await self.client.eval(script.source, len(keys), *keys, *args)

    async def batch(self, calls: Sequence[Call], *, required: int = 0) -> list[Any]:
        """Send ``calls`` in one round trip.

        An error reply to one of the first ``required`` calls is raised; the
        others come back as values.
        """
        pipe = self.client.pipeline(transaction=False)
        for name, keys, args in calls:
            script = self._scripts.get(name)
            if script is None:
                pipe.execute_command(name, *keys, *args)
            else:
                pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, rex.NoScriptError)]
        if missing:  # an empty script cache (restart, failover): EVAL caches them again
            pipe = self.client.pipeline(transaction=False)
            for i in missing:
                name, keys, args = calls[i]
                source = self._scripts[name].source
                pipe.execute_command("EVAL", source, len(keys), *keys, *args)
            again = await pipe.execute(raise_on_error=False)
            for i, reply in zip(missing, again, strict=True):
                replies[i] = reply
        for reply in replies[:required]:
            if isinstance(reply, Exception):
                raise reply
        return replies

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
        key = f"{tag}:s:{session_id}"
        call: Call = (
            "sign",
            (key, f"{tag}:i"),
            (session_id, idle_seconds, exp, data, limit, self.channel, f"{tag}:s:", user_id,
             self.origin),
        )  # fmt: skip
        if self.scheduling:
            reply = await self.run(self._sign_scheduled(call, key, idle_seconds, exp))
        else:
            reply = await self._script(*call)
        return int(reply[0]), int(reply[1]), [text(v) for v in reply[2:]]

    async def _sign_scheduled(self, call: Call, key: str, idle_seconds: int, exp: int) -> Any:
        # One round trip: the session (user's slot), then its schedule entry (a bucket's slot).
        bucket = self.layout.schedule_key(self.layout.bucket(key))
        schedule: Call = ("schedule", (bucket,), (key, idle_seconds, exp, SCHEDULE_HORIZON_MS))
        signed, scheduled = await self.batch((call, schedule))
        if isinstance(signed, Exception):
            if not isinstance(scheduled, Exception):  # no session: no schedule entry either
                with contextlib.suppress(rex.RedisError, OSError):
                    await self.client.zrem(bucket, key)
            raise signed
        if isinstance(scheduled, Exception):
            # The session is stored, so the token stands; only its expired event may be late.
            logger.warning("could not put a session on the expiry schedule: %s", scheduled)
        return signed

    async def pttl(self, user_id: str, session_id: str) -> int:
        """Return the session's ttl in ms, -2 when it does not exist (one plain command)."""
        key = self.layout.session_key(user_id, session_id)
        if self._pipe is not None:
            return int(await self._pipe.submit(("PTTL", key)))
        return int(await self.run(self.client.pttl(key)))

    async def touch(self, user_id: str, session_id: str, flags: int) -> tuple[int, str | None]:
        """Run touch.lua: return (ttl ms or -2, private data JSON or None)."""
        tag = self.layout.user_tag(user_id)
        reply = await self._script(
            "touch",
            (f"{tag}:s:{session_id}", f"{tag}:i"),
            (flags, self.channel, user_id, session_id, self.origin),
        )
        data = reply[1] if len(reply) > 1 else None
        return int(reply[0]), None if data is None else text(data)

    async def destroy(self, user_id: str, session_id: str, reason: str) -> bool:
        """End one session; return whether it existed."""
        tag = self.layout.user_tag(user_id)
        key = f"{tag}:s:{session_id}"
        # Same round trip: drop the schedule entry, so that it is not reported as expired.
        bucket = self.layout.schedule_key(self.layout.bucket(key))
        if self._pipe is not None:
            ended = self._script(
                "destroy",
                (key, f"{tag}:i"),
                (session_id, self.channel, user_id, reason, self.origin),
            )
            self._pipe.send(("ZREM", bucket, key))
            return int(await ended) == 1
        reply = await self.run(
            self.batch(
                (
                    ("destroy", (key, f"{tag}:i"), (session_id, self.channel, user_id, reason,
                                                    self.origin)),
                    ("ZREM", (bucket,), (key,)),
                ),
                required=1,
            )
        )  # fmt: skip
        return int(reply[0]) == 1

    async def destroy_all(self, user_id: str) -> list[str]:
        """End every session of a user; return the ids that existed."""
        tag = self.layout.user_tag(user_id)
        reply = await self.run(
            self._eval(
                "destroy_all", (f"{tag}:i",), (f"{tag}:s:", self.channel, user_id, self.origin)
            )
        )
        return [text(v) for v in reply]

    async def list(self, user_id: str) -> list[SessionRow]:
        """Return the user's live sessions, unordered."""
        tag = self.layout.user_tag(user_id)
        flat = await self.run(self._eval("list", (f"{tag}:i",), (f"{tag}:s:", "list")))
        rows: list[SessionRow] = []
        for i in range(0, len(flat), 5):
            sid, pttl, created, idle, data = flat[i : i + 5]
            rows.append(
                (
                    text(sid),
                    int(pttl),
                    int(created or 0),
                    int(idle or 0),
                    None if data is None else text(data),
                )
            )
        return rows

    async def count(self, user_id: str) -> int:
        """Return the number of live sessions of a user."""
        tag = self.layout.user_tag(user_id)
        return int(await self.run(self._eval("list", (f"{tag}:i",), (f"{tag}:s:", "count"))))

    async def wait_replicas(self, user_id: str, replicas: int, timeout_ms: int) -> int:
        """Return how many replicas of the user's primary have the user's writes so far.

        ``WAIT`` counts the writes of its own connection only, and an earlier
        call may have used another pooled connection: so, on one connection to
        the primary of the user's slot, write a 1-second marker ``{tag}:w``
        (its offset is past every earlier write there), then ``WAIT``.
        """
        marker = f"{self.layout.user_tag(user_id)}:w"
        commands: list[tuple[str | int, ...]] = [
            ("SET", marker, "1", "PX", 1000),
            ("WAIT", replicas, timeout_ms),
        ]
        client = self.client
        if isinstance(client, RedisCluster):
            found = client.get_node_from_key(marker)
            if found is None:
                raise self._failed(StoreUnavailable(f"no Cluster node serves {marker!r}"))
            node = found
            conn = node.acquire_connection()

            async def on_node() -> Any:
                try:
                    await conn.send_packed_command(conn.pack_commands(commands))
                    replies = [await conn.read_response() for _ in commands]
                except BaseException:
                    await conn.disconnect(nowait=True)
                    raise
                finally:
                    node.release(conn)
                return replies[-1]

            return int(await self.run(on_node()))

        async def on_one_connection() -> Any:
            async with client.client() as single:
                await single.execute_command(*commands[0])  # type: ignore[no-untyped-call]
                return await single.execute_command(*commands[1])  # type: ignore[no-untyped-call]

        return int(await self.run(on_one_connection()))

    async def aclose(self) -> None:
        """Close the client (only called for clients the library built)."""
        await self.client.aclose()
        # A client built from a redis+sentinel:// URL also holds links to the sentinels.
        pool = getattr(self.client, "connection_pool", None)
        sentinels = getattr(pool, "sentinel_manager", None)
        if sentinels is not None:
            await sentinels.aclose()
