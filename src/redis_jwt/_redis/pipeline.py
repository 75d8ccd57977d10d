"""Auto-pipelining: the Redis commands of one event-loop pass go out as one pipeline.

Every ``verify`` costs one command. Sent one by one, each pays a pool
checkout, a ``send`` system call, a deadline and redis-py's retry layers; at
concurrency 64 that overhead is most of the work. :class:`AutoPipeline`
gathers the commands submitted during one pass of the event loop and sends
them as one non-transactional pipeline (one write of every command, packed by
hiredis, then every reply read in order), on one pooled connection, from a
task this library owns:

- a caller only waits on its own future, so a caller cancelled mid-flight
  (a client that disconnected, an ``asyncio.timeout`` of the app) never
  interrupts the connection: its reply is read and dropped, the connection
  stays in step, and no other caller can receive it;
- an error reply (``NOSCRIPT``, ``WRONGTYPE``...) belongs to its own caller:
  ``NOSCRIPT`` is retried once as ``EVAL`` (a restarted or failed-over Redis
  has an empty script cache), any other error is raised to that caller only;
- a connection failure or the deadline fails the whole batch, each caller
  getting its own copy of the translated :class:`~redis_jwt.errors.StoreError`;
- a batch of one is a plain command: one write, one reply, no pipeline object.

Batches do not wait for each other: while one is in flight the next pass's
commands form the next batch on another pooled connection. Under load,
callers resumed by one batch tend to submit together, so batches grow with
concurrency by themselves.

Used for a pooled ``redis.asyncio.Redis`` (standalone or Sentinel); see
:func:`usable_with`. For a ``RedisCluster`` the store sends its commands
directly (a pipeline there would have to be split by node).

Why not redis-py's ``Pipeline``: it packs every argument in Python and wraps
every reply in a timeout of its own, which made up most of a pipelined
``sign``; the batch here is packed by hiredis and bounded by the store's one
deadline (plus redis-py's socket timeout per read). Connections, their
handshake, the retry policy and error replies stay redis-py's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeGuard

import hiredis
from redis import exceptions as rex
from redis.asyncio import Redis

from .._compat import buffered_replies, checkout, hiredis_parser, untimed_reads
from .._tasks import Supervisor
from .._telemetry import Switch
from ..errors import StoreUnavailable
from .scripts import Command, with_fallback

__all__ = ["AutoPipeline", "usable_with"]

# A submitted call: the command and the caller's future (None: nobody waits).
# How many callers a batch's replies wake in one pass of the event loop.
_WAKE_GROUP = 32
_Entry = tuple[Command, "asyncio.Future[Any] | None"]


def usable_with(client: object) -> TypeGuard[Redis]:
    """Whether ``client`` can be auto-pipelined: a pooled ``redis.asyncio.Redis``.

    Not a ``RedisCluster`` (commands would have to be split by node) nor a
    ``single_connection_client`` (its one connection has a lock of its own).
    """
    return isinstance(client, Redis) and not getattr(client, "single_connection_client", False)


def _own_copy(exc: BaseException) -> BaseException:
    """A separate instance per caller: one exception object raised in many tasks
    would collect every task's traceback."""
    try:
        copy = type(exc)(*exc.args)
    except Exception:  # an exception type with an unusual constructor
        return exc
    copy.__cause__ = exc.__cause__
    return copy


class AutoPipeline:
    """Coalesces the commands of one event-loop pass into one pipeline.

    Args:
        client: the data client (a ``redis.asyncio.Redis``).
        tasks: the owner of the batches' tasks (they stop when it closes).
        run: awaits a Redis call within the store's deadline and translates
            its failures (``Store.run``); applied once per batch.
        translate: the store's translation of one error reply.
        telemetry: when on, each batch is a ``redis_jwt.redis`` client span.
    """

    __slots__ = ("_client", "_loop", "_pending", "_run", "_tasks", "_telemetry", "_translate")

    def __init__(
        self,
        client: Redis,
        tasks: Supervisor,
        run: Callable[[Awaitable[Any]], Awaitable[Any]],
        translate: Callable[[BaseException], BaseException],
        telemetry: Switch | None = None,
    ) -> None:
        self._client = client
        self._telemetry = telemetry or Switch()
        self._tasks = tasks
        self._run = run
        self._translate = translate
        self._pending: list[_Entry] = []
        # The loop of the batch being gathered (set by its first call).
        self._loop: asyncio.AbstractEventLoop | None = None

    def submit(self, command: Command) -> asyncio.Future[Any]:
        """Queue ``command`` for this pass's batch and return the future of its reply.

        An ``EVALSHA`` of one of the package's scripts that gets ``NOSCRIPT``
        is sent again as ``EVAL`` (see scripts.py).
        """
        loop = self._loop
        if loop is None or not self._pending:
            # A batch's later calls come in the same pass of the same loop as
            # its first: only the first asks which loop runs.
            loop = self._loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue((command, future))
        return future

    def send(self, command: Command) -> None:
        """Queue ``command`` in this pass's batch and ignore its reply (e.g. a cleanup)."""
        if not self._pending:  # the batch's first call: its loop, as in submit()
            self._loop = asyncio.get_running_loop()
        self._queue((command, None))

    def _queue(self, entry: _Entry) -> None:
        pending = self._pending
        pending.append(entry)
        if len(pending) == 1:
            # The task's first step runs after every callback already due in
            # this pass: whatever they submit joins the batch. It is created
            # here, in the first caller's task, so it runs in a copy of that
            # caller's context (contextvars): tracing hooks that look for the
            # current span (ours below, an instrumented connection class) see
            # the caller's span as the parent of the round trip.
            self._tasks.spawn(self._flush())

    async def _flush(self) -> None:
        batch, self._pending = self._pending, []
        try:
            telemetry = self._telemetry.active
            if telemetry is None:
                replies = await self._run(self._execute(batch))
            else:
                with telemetry.redis_span(batch[0][0], len(batch)):
                    replies = await self._run(self._execute(batch))
        except Exception as exc:
            # The connection, the deadline or a bug: every caller gets it.
            self._fail(batch, exc)
            return
        except BaseException:
            # This task was cancelled (the loop is closing): nobody will answer these callers.
            self._fail(batch, StoreUnavailable("the Redis call was interrupted"))
            raise
        woken = 0
        for index, ((_command, future), reply) in enumerate(zip(batch, replies, strict=True)):
            if future is None or future.done():  # nobody waits, or the caller gave up
                continue
            if isinstance(reply, rex.RedisError):
                future.set_exception(self._translate(reply))
            else:
                future.set_result(reply)
            woken += 1
            if woken % _WAKE_GROUP == 0 and index + 1 < len(batch):
                # Let the callers woken so far run before waking the others: their
                # next commands form a batch that is sent while the others are still
                # busy (decoding their next token), so Redis and this process work
                # at the same time instead of in turn.
                try:
                    await asyncio.sleep(0)
                except BaseException:
                    self._fail(
                        batch[index + 1 :], StoreUnavailable("the Redis call was interrupted")
                    )
                    raise

    @staticmethod
    def _fail(batch: Sequence[_Entry], exc: BaseException) -> None:
        for _command, future in batch:
            if future is not None and not future.done():
                future.set_exception(_own_copy(exc))

    async def _execute(self, batch: Sequence[_Entry]) -> list[Any]:
        return await with_fallback(self._round_trip, [command for command, _future in batch])

    async def _round_trip(self, commands: Sequence[Command]) -> list[Any]:
        """Send ``commands`` in one write on one pooled connection; read every reply.

        An error reply is returned in its place. Anything else that goes wrong
        (the connection, a timeout, this task being cancelled) leaves redis-py
        to drop the connection, so it never goes back to the pool out of step.
        The client's retry policy applies to the batch as a whole, as for a
        redis-py pipeline.
        """
        pool: Any = self._client.connection_pool  # typed differently by each redis-py
        # hiredis's stub says a 1-tuple; it packs a command of any length.
        packed = b"".join([hiredis.pack_command(c) for c in commands])  # type: ignore[arg-type]
        conn = await checkout(pool)
        try:
            replies: list[Any] = await conn.retry.call_with_retry(
                lambda: _send_and_read(conn, packed, len(commands)),
                lambda _error: conn.disconnect(),
            )
            return replies
        finally:
            await pool.release(conn)


async def _send_and_read(conn: Any, packed: bytes, count: int) -> list[Any]:
    # With a socket timeout, redis-py runs every write in a task of its own
    # (asyncio.wait_for): a task, a timer and two switches per batch, the whole
    # cost of a write that lands in the socket buffer at once. The store's
    # deadline bounds the write instead; the first read keeps the socket
    # timeout, so a dead connection is still found and retried.
    with untimed_reads(conn):
        await conn.send_packed_command(packed, check_health=False)
    # The first reply within the socket timeout: is Redis answering at all?
    replies = [await _read(conn)]
    if count > 1:
        # The others follow it at once. redis-py would wrap each in a timeout of
        # its own, which costs more than reading the reply; the store's deadline
        # bounds the whole batch instead. The connection is ours alone meanwhile.
        # With hiredis, the replies already received are taken straight from its
        # reader, as redis-py's read_response would return them (see _compat.py).
        parser = hiredis_parser(conn)
        with untimed_reads(conn):
            while True:
                if parser is not None:
                    await buffered_replies(conn, parser, replies, count)
                if len(replies) == count:
                    break
                try:  # inlined _read(): no coroutine per reply
                    replies.append(await conn.read_response())
                except rex.ResponseError as exc:
                    replies.append(exc)
    return replies


async def _read(conn: Any) -> Any:
    try:
        return await conn.read_response()
    except rex.ResponseError as exc:  # read in full: the connection is still in step
        return exc
