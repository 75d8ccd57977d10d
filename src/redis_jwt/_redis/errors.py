"""The one table from Redis and redis-py failures to :mod:`redis_jwt.errors`.

Every call site of the boundary translates through :func:`translate` (the
store's deadline, the auto-pipeline's error replies, the schedule's batches),
so a failure means the same thing wherever it happened::

    asyncio / redis-py timeout           -> StoreTimeout      (503)
    a script run past its call's deadline -> StoreTimeout     (503)
    connection, cluster, readonly, ACL   -> StoreUnavailable  (503)
    any other Redis error reply          -> StoreError        (503)
    redis-py failing inside itself       -> StoreUnavailable  (503)
      (AttributeError... from a connection torn down under it)
    anything else                        -> not translated: a bug looks like a bug
"""

from __future__ import annotations

from redis import exceptions as rex

from .._compat_cluster import raised_by_redis_py
from ..errors import StoreError, StoreTimeout, StoreUnavailable

__all__ = ["LATE", "LINK_FAILURES", "UNAVAILABLE", "translate"]

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
#: What a writing script answers when it ran after its call's deadline (docs/layout.md).
LATE = "redis-jwt: late"
# Not Redis's errors, but raised from inside redis-py when a connection it was
# still using was torn down: Redis trouble for the caller, not a bug of ours.
_CLIENT_SIDE: tuple[type[BaseException], ...] = (AttributeError, TypeError, ValueError)

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
    if isinstance(exc, rex.ResponseError) and LATE in str(exc):
        # The script refused to apply: the caller is told it failed, as on a timeout.
        return StoreTimeout(f"Redis did not answer within {deadline_seconds:g} s")
    if isinstance(exc, _CLIENT_SIDE) and raised_by_redis_py(exc):
        return StoreUnavailable(f"the Redis connection broke: {exc!r}")
    for classes, error, message in _TABLE:
        if isinstance(exc, classes):
            return error(message.format(deadline=deadline_seconds, exc=exc))
    return None
