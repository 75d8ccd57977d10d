"""The owner of background tasks: starting them, and stopping them for sure, in bounded time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["Supervisor", "stop"]

T = TypeVar("T")

logger = logging.getLogger("redis_jwt")


async def stop(task: asyncio.Task[Any] | None, *, grace_seconds: float = 2.0) -> None:
    """Cancel ``task`` and wait for it, at most ``grace_seconds``.

    One ``cancel()`` is not always enough on Python 3.11: a cancellation that
    races with a timeout inside a library call (``asyncio.wait_for``) can be
    swallowed. The loops of this package also check a closed flag; this
    cancels again until the task is done, and gives up (logging it) rather
    than hang a shutdown.
    """
    if task is None or task.done():
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace_seconds
    for _ in range(20):
        task.cancel()
        await asyncio.wait((task,), timeout=min(0.1, max(0.0, deadline - loop.time())))
        if task.done():
            if not task.cancelled() and task.exception() is not None:
                logger.debug("%s ended with %r", task.get_name(), task.exception())
            return
        if loop.time() >= deadline:
            break
    logger.warning("%s did not stop within %g s", task.get_name(), grace_seconds)


class Supervisor:
    """Starts, holds and stops background tasks: the one owner of those of a ``RedisJWT``.

    The event loop keeps only weak references to tasks; this keeps strong
    ones until each ends, and :meth:`aclose` stops them all in one place,
    each in bounded time (see :func:`stop`).
    """

    __slots__ = ("_tasks", "closed")

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        #: Set by :meth:`aclose`; the loops of the library check it.
        self.closed = False

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, T], *, name: str | None = None) -> asyncio.Task[T]:
        """Run ``coro`` as a task owned here."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def aclose(self, *, grace_seconds: float = 0.0) -> None:
        """Stop every task: give them ``grace_seconds`` to finish, then cancel them."""
        self.closed = True
        tasks = tuple(self._tasks)
        if tasks and grace_seconds > 0:
            await asyncio.wait(tasks, timeout=grace_seconds)
        await asyncio.gather(*(stop(task) for task in tasks if not task.done()))
