"""Building the redis.asyncio client from a URL, with our timeouts and retry budget."""

from __future__ import annotations

from redis import exceptions as rex
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from ._store import AnyRedis
from .errors import ConfigurationError

__all__ = ["client_from_url"]

_SCHEMES = ("redis://", "rediss://", "unix://")


def client_from_url(url: str, *, timeout_seconds: float, retries: int) -> AnyRedis:
    """Return a client for ``url`` whose every call fails fast when Redis is away.

    redis-py's defaults wait for the OS (about a minute on a black-holed
    address); a dead Redis must instead become a fast 503. Each attempt gets
    ``timeout_seconds`` to connect and to answer, and a failed attempt is
    retried ``retries`` times at once (a stale pooled connection costs one
    reconnect, not an error).
    """
    if not isinstance(url, str) or not url.startswith(_SCHEMES):
        raise ConfigurationError(
            f"redis_url must start with one of {', '.join(_SCHEMES)}; got {url!r}"
        )
    try:
        return Redis.from_url(
            url,
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            retry=Retry(NoBackoff(), retries),
            retry_on_error=[rex.ConnectionError, rex.TimeoutError, OSError],
            health_check_interval=0,
        )
    except ValueError as exc:
        raise ConfigurationError(f"redis_url={url!r} is not a valid Redis URL: {exc}") from exc
