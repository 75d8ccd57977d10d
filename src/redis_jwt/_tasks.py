"""Stopping background tasks for sure, in bounded time."""

from __future__ import annotations

import asyncio
import logging

__all__ = ["stop"]

logger = logging.getLogger("redis_jwt")


async def stop(task: asyncio.Task[None] | None, *, grace_seconds: float = 2.0) -> None:
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
