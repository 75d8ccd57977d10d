"""The one table from Redis and redis-py failures to :mod:`redis_jwt.errors`.

Every call site of the boundary translates through :func:`translate` (the
store's deadline, the auto-pipeline's error replies, the schedule's batches),
so a failure means the same thing wherever it happened::

    asyncio / redis-py timeout           -> StoreTimeout      (503)
    connection, cluster, readonly, ACL   -> StoreUnavailable  (503)
    any other Redis error reply          -> StoreError        (503)
    anything else                        -> not translated: a bug looks like a bug
"""

from __future__ import annotations

from redis import exceptions as rex

from ..errors import StoreError, StoreTimeout, StoreUnavailable

__all__ = ["LINK_FAILURES", "UNAVAILABLE", "translate"]

# Redis errors that mean "this node cannot serve right now", as opposed to a
# reply about the data. They all deserve a 503 and a retry later.
UNAVAILABLE: tuple[type[BaseException], ...] = (
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
_TIMEOUTS: tuple[type[BaseException], ...] = (TimeoutError, rex.TimeoutError)

#: What ends a side connection (listener, invalidation link) without being a bug.
LINK_FAILURES: tuple[type[BaseException], ...] = (
    rex.RedisError,
    OSError,
    StoreError,
    TimeoutError,
)

# Checked in order: the first row whose classes match decides.
_TABLE: tuple[tuple[tuple[type[BaseException], ...], type[StoreError], str], ...] = (
    (_TIMEOUTS, StoreTimeout, "Redis did not answer within {deadline:g} s"),
    (UNAVAILABLE, StoreUnavailable, "Redis is unavailable: {exc}"),
    ((rex.RedisError,), StoreError, "Redis failed: {exc}"),
)


def translate(exc: BaseException, *, deadline_seconds: float) -> StoreError | None:
    """The :class:`~redis_jwt.errors.StoreError` for ``exc``, or None when it is not Redis's.

    A :class:`StoreError` (already translated) comes back as is.
    """
    if isinstance(exc, StoreError):
        return exc
    for classes, error, message in _TABLE:
        if isinstance(exc, classes):
            return error(message.format(deadline=deadline_seconds, exc=exc))
    return None
