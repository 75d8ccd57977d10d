"""The Redis boundary's core: one client, one deadline, one error table, the scripts.

Every command of the library goes through a :class:`Store`: the session
commands of each layout (``v1_store.py``, ``node_store.py``), the expiry
schedule (``schedule.py``), and the side connections reuse its client's
address (``links.py``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from redis import exceptions as rex
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from .._compat import close_sentinels
from .._compat_cluster import call_in_slot, gather_in_slots, send_on_node
from .._tasks import Supervisor
from .._telemetry import Switch
from ..errors import StoreError, StoreUnavailable
from .errors import translate
from .pipeline import AutoPipeline, usable_with
from .scripts import SCRIPTS, Command, evalsha, with_fallback

__all__ = ["AnyRedis", "Call", "Store", "is_cluster"]

logger = logging.getLogger("redis_jwt")

T = TypeVar("T")
AnyRedis = Redis | RedisCluster

#: One call of a batch: a script name (sent as EVALSHA) or a command, its keys, its arguments.
Call = tuple[str, Sequence[str], Sequence[str | int]]


def is_cluster(client: AnyRedis) -> bool:
    """Whether ``client`` talks to a Redis Cluster."""
    return isinstance(client, RedisCluster)


def _command(call: Call) -> Command:
    name, keys, args = call
    if name in SCRIPTS:
        return evalsha(name, keys, args)
    return (name, *keys, *args)


def _key_of(command: Command) -> str:
    """A key of ``command`` (the first one), which names its Cluster slot."""
    key = command[3] if command[0] in ("EVALSHA", "EVAL") else command[1]
    return key.decode() if isinstance(key, bytes) else str(key)


class Store:
    """Commands to one Redis deployment (standalone, Sentinel or Cluster), within a deadline.

    Args:
        client: the data client.
        tasks: the owner of the auto-pipeline's tasks.
        deadline_seconds: how long one call may take, retry included.
        on_failure: told (and must not raise) when Redis is unreachable or too slow.
        telemetry: where failures are counted (``redis_jwt.store.errors``) once
            telemetry is on.
    """

    __slots__ = ("_deadline", "_on_failure", "_pipe", "_telemetry", "client", "command")

    def __init__(
        self,
        client: AnyRedis,
        tasks: Supervisor,
        *,
        deadline_seconds: float,
        on_failure: Callable[[StoreError], None],
        telemetry: Switch | None = None,
    ) -> None:
        self.client = client
        self._telemetry = telemetry or Switch()
        self._deadline = deadline_seconds
        self._on_failure = on_failure
        # Commands of one event-loop pass share a pipeline (see pipeline.py); a
        # cluster client gets direct calls instead (a pipeline would span nodes).
        self._pipe = (
            AutoPipeline(client, tasks, self.run, self.translate, self._telemetry)
            if usable_with(client)
            else None
        )
        #: Send one command (through the auto-pipeline when there is one); see :meth:`_command`.
        self.command: Callable[[Command], Awaitable[Any]] = (
            self._pipe.submit if self._pipe is not None else self._command
        )

    @property
    def deadline_seconds(self) -> float:
        """How long one call may take, retry included."""
        return self._deadline

    @property
    def cluster(self) -> bool:
        """Whether the client talks to a Redis Cluster (its commands are routed by us)."""
        return isinstance(self.client, RedisCluster)

    def deadline_ms(self) -> int:
        """Unix ms after which a call starting now must not apply: its caller was told it failed.

        Passed to the writing scripts, which check it against Redis's clock (see
        docs/layout.md, "Clocks"); the last tenth of the budget is left for the
        reply to travel.
        """
        return int((time.time() + self._deadline * 0.9) * 1000)

    @property
    def pipelined(self) -> bool:
        """Whether commands are auto-pipelined (a pooled, non-Cluster client)."""
        return self._pipe is not None

    async def run(self, awaitable: Awaitable[T]) -> T:
        """Await one Redis call within the deadline, translating its errors."""
        try:
            async with asyncio.timeout(self._deadline):
                return await awaitable
        except Exception as exc:
            error = self.translate(exc)
            if error is exc:
                raise
            raise error from exc

    def translate(self, exc: BaseException) -> BaseException:
        """The error :meth:`run` raises for ``exc`` (``exc`` itself when it is not Redis's)."""
        error = translate(exc, deadline_seconds=self._deadline)
        if error is None:
            return exc
        if error is not exc:
            telemetry = self._telemetry.active
            if telemetry is not None:
                telemetry.store_error(error)
            if type(error) is not StoreError:
                self._on_failure(error)
        return error

    def fail(self, message: str) -> StoreError:
        """A :class:`StoreUnavailable` for ``message``, reported like any failure."""
        error = StoreUnavailable(message)
        self._on_failure(error)
        return error

    # -- sending -------------------------------------------------------------

    def script(self, name: str, keys: Sequence[str], args: Sequence[str | int]) -> Awaitable[Any]:
        """Run a script by SHA, through the auto-pipeline when there is one."""
        return self.command(evalsha(name, keys, args))

    def _command(self, command: Command) -> Awaitable[Any]:
        """Send one command directly, within the deadline (no auto-pipeline)."""
        return self.run(self._direct(command))

    def send(self, command: Command) -> bool:
        """Queue ``command`` in this pass's pipeline, ignoring its reply; False without one."""
        if self._pipe is None:
            return False
        self._pipe.send(command)
        return True

    async def direct(self, command: Command) -> Any:
        """Send one command directly, without a deadline of its own (inside :meth:`run`)."""
        return await self._direct(command)

    async def _direct(self, command: Command) -> Any:
        client = self.client

        async def send(commands: Sequence[Command]) -> list[Any]:
            try:
                if isinstance(client, RedisCluster):
                    # Routed by us: ASK, MOVED and TRYAGAIN followed (see _compat_cluster.py).
                    return [await call_in_slot(client, _key_of(commands[0]), commands[0])]
                return [await client.execute_command(*commands[0])]  # type: ignore[no-untyped-call]
            except rex.NoScriptError as exc:
                return [exc]

        reply = (await with_fallback(send, (command,)))[0]
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def eval(self, name: str, keys: Sequence[str], args: Sequence[str | int]) -> Any:
        """Run a script by SHA in a direct call (never pipelined), within the deadline."""
        return await self.run(self._direct(evalsha(name, keys, args)))

    async def batch(self, calls: Sequence[Call], *, required: int = 0) -> list[Any]:
        """Send ``calls`` in one round trip.

        An error reply to one of the first ``required`` calls is raised; the
        others come back as values.
        """

        client = self.client

        async def send(commands: Sequence[Command]) -> list[Any]:
            if isinstance(client, RedisCluster):  # each to its own slot's node, all at once
                return await gather_in_slots(client, [(_key_of(c), c, None) for c in commands])
            pipe = client.pipeline(transaction=False)
            for command in commands:
                pipe.execute_command(*command)
            replies: list[Any] = await pipe.execute(raise_on_error=False)
            return replies

        replies = await with_fallback(send, [_command(call) for call in calls])
        for reply in replies[:required]:
            if isinstance(reply, Exception):
                raise reply
        return replies

    # -- the connection --------------------------------------------------------

    async def load_scripts(self) -> None:
        """Load every script (on every primary, for a cluster client)."""

        async def load() -> None:
            for script in SCRIPTS.values():
                await self.client.script_load(script.source)

        await self.run(load())

    async def ping(self) -> bool:
        """Return True when Redis answers PING."""
        return bool(await self.run(self.client.ping()))

    async def info(self, section: str | None = None) -> dict[str, Any]:
        """Return Redis ``INFO`` as a dict."""
        return dict(await self.run(self.client.info(section)))

    async def time_ms(self) -> int:
        """Return Redis's clock in ms."""
        seconds, micros = await self.run(self.client.time())
        return int(seconds) * 1000 + int(micros) // 1000

    async def wait_replicas(self, marker: str, replicas: int, timeout_ms: int) -> int:
        """Return how many replicas of ``marker``'s primary have the writes made there so far.

        ``WAIT`` counts the writes of its own connection only, and an earlier
        call may have used another pooled connection: so, on one connection to
        the primary of the marker's slot, write the 1-second ``marker`` (its
        offset is past every earlier write there), then ``WAIT``.
        """
        commands: list[tuple[str | int, ...]] = [
            ("SET", marker, "1", "PX", 1000),
            ("WAIT", replicas, timeout_ms),
        ]
        client = self.client
        if isinstance(client, RedisCluster):
            node = client.get_node_from_key(marker)
            if node is None:
                raise self.fail(f"no Cluster node serves {marker!r}")
            return int(await self.run(send_on_node(node, commands, client)))

        async def on_one_connection() -> Any:
            async with client.client() as single:
                await single.execute_command(*commands[0])  # type: ignore[no-untyped-call]
                return await single.execute_command(*commands[1])  # type: ignore[no-untyped-call]

        return int(await self.run(on_one_connection()))

    async def aclose(self) -> None:
        """Close the client (only called for clients the library built)."""
        await self.client.aclose()
        # A client built from a redis+sentinel:// URL also holds links to the sentinels.
        await close_sentinels(self.client)
