"""pytest fixtures for real Redis servers (registered as the ``redis_jwt`` pytest11 plugin).

The plugin only defines fixtures: nothing starts until a test requests one, and the
session-scoped servers are stopped at the end of the session.

Fixtures:
    redis_jwt_binary: The :class:`~redis_jwt.testing.RedisBinary` used (session).
    redis_jwt_server: A started :class:`~redis_jwt.testing.RedisServer` (session).
    redis_jwt_url: URL of ``redis_jwt_server`` after ``FLUSHALL`` (function).
    redis_jwt_cluster: A started :class:`~redis_jwt.testing.RedisClusterSet` (session).
    redis_jwt_sentinel: A started :class:`~redis_jwt.testing.RedisSentinelSet` (session).

Tests that kill or pause nodes should build their own ``RedisClusterSet`` /
``RedisSentinelSet`` rather than damage the shared session ones.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from redis_jwt.testing._binary import RedisBinary, default_redis_server
from redis_jwt.testing.cluster import RedisClusterSet
from redis_jwt.testing.sentinel import RedisSentinelSet
from redis_jwt.testing.server import RedisServer

__all__ = [
    "redis_jwt_binary",
    "redis_jwt_cluster",
    "redis_jwt_sentinel",
    "redis_jwt_server",
    "redis_jwt_url",
]


@pytest.fixture(scope="session")
def redis_jwt_binary() -> RedisBinary:
    """The ``redis-server`` binary the fixtures run (``default_redis_server()``)."""
    return default_redis_server()


@pytest.fixture(scope="session")
def redis_jwt_server(redis_jwt_binary: RedisBinary) -> Iterator[RedisServer]:
    """A standalone Redis for the whole session, stopped at the end."""
    with RedisServer(redis_jwt_binary) as server:
        yield server


@pytest.fixture
def redis_jwt_url(redis_jwt_server: RedisServer) -> str:
    """``redis://127.0.0.1:<port>/0`` of an empty ``redis_jwt_server``.

    A server that an earlier test killed or paused is restarted or resumed first.
    """
    if redis_jwt_server.paused:
        redis_jwt_server.resume()
    if not redis_jwt_server.running:
        redis_jwt_server.restart()
    else:
        redis_jwt_server.command("FLUSHALL")
    return redis_jwt_server.url


@pytest.fixture(scope="session")
def redis_jwt_cluster(redis_jwt_binary: RedisBinary) -> Iterator[RedisClusterSet]:
    """A 3-primary, 3-replica Redis Cluster, started on first use."""
    with RedisClusterSet(redis_jwt_binary) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def redis_jwt_sentinel(redis_jwt_binary: RedisBinary) -> Iterator[RedisSentinelSet]:
    """One primary, two replicas and three sentinels, started on first use."""
    with RedisSentinelSet(redis_jwt_binary) as sentinel_set:
        yield sentinel_set
