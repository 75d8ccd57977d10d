"""Opening on a Redis that may evict keys says so: a WARNING and an ``error`` event.

``allkeys-*`` may drop any key, ``volatile-*`` any key with an expiry, which
is every key of this library: both are flagged, ``noeviction`` is not. The
policy is read from ``INFO memory``, so a user refused ``CONFIG`` (as on
managed services) is still told; a user refused ``INFO`` too opens quietly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest

from redis_jwt import Event, RedisJWT, errors
from redis_jwt.testing import RedisBinary, RedisClusterSet, RedisServer

from .conftest import SECRET


@pytest.fixture(params=["allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru"])
def evicting_server(
    request: pytest.FixtureRequest, redis_jwt_binary: RedisBinary
) -> Iterator[RedisServer]:
    """A server started with an evicting policy and a maxmemory."""
    policy: str = request.param
    args = ["--maxmemory", "64mb", "--maxmemory-policy", policy]
    with RedisServer(redis_jwt_binary, extra_args=args) as server:
        yield server


async def _open_and_collect(url: str) -> list[Event]:
    auth = RedisJWT(secret=SECRET, redis_url=url)
    seen: list[Event] = []
    auth.events.on("error", seen.append)
    async with auth:
        token = await auth.sign("u")  # the warning does not stop the library
        assert (await auth.verify(token)).user_id == "u"
        for _ in range(100):  # handlers run in tasks: wait (bounded) for delivery
            if seen:
                break
            await asyncio.sleep(0.01)
    return seen


def _policy_of(server: RedisServer) -> str:
    info = str(server.command("INFO", "memory"))
    return info.split("maxmemory_policy:", 1)[1].split()[0]


async def test_an_evicting_policy_is_reported(
    evicting_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    policy = _policy_of(evicting_server)
    with caplog.at_level(logging.WARNING, logger="redis_jwt"):
        seen = await _open_and_collect(evicting_server.url)
    assert len(seen) == 1
    assert seen[0].reason is not None
    assert policy in seen[0].reason
    assert isinstance(seen[0].error, errors.ConfigurationError)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and policy in r.message]
    assert len(warnings) == 1
    assert getattr(warnings[0], "maxmemory_policy", None) == policy


async def test_noeviction_is_not_reported(
    own_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    own_server.command("CONFIG", "SET", "maxmemory", "64mb")
    assert _policy_of(own_server) == "noeviction"
    with caplog.at_level(logging.WARNING, logger="redis_jwt"):
        seen = await _open_and_collect(own_server.url)
    assert seen == []
    assert not [r for r in caplog.records if "maxmemory-policy" in r.message]


async def test_a_policy_set_while_running_is_seen_at_the_next_open(
    own_server: RedisServer,
) -> None:
    assert await _open_and_collect(own_server.url) == []
    own_server.command("CONFIG", "SET", "maxmemory-policy", "allkeys-lru")
    seen = await _open_and_collect(own_server.url)
    assert [e.kind for e in seen] == ["error"]
    assert seen[0].reason is not None
    assert "allkeys-lru" in seen[0].reason


@pytest.mark.parametrize(("refused", "reported"), [("-config", True), ("-config -info", False)])
async def test_without_config_the_policy_is_read_from_info(
    own_server: RedisServer, refused: str, reported: bool
) -> None:
    own_server.command("CONFIG", "SET", "maxmemory-policy", "allkeys-lru")
    own_server.command("ACL", "SETUSER", "app", "on", ">app-password", "~*", "&*", "+@all")
    own_server.command("ACL", "SETUSER", "app", *refused.split())
    url = f"redis://app:app-password@127.0.0.1:{own_server.port}/0"
    seen = await _open_and_collect(url)
    assert bool(seen) is reported
    if reported:
        assert seen[0].reason is not None
        assert "allkeys-lru" in seen[0].reason


@pytest.mark.cluster
async def test_one_evicting_cluster_primary_is_reported(redis_jwt_cluster: RedisClusterSet) -> None:
    url = "redis+cluster://" + ",".join(f"{h}:{p}" for h, p in redis_jwt_cluster.startup_nodes)
    primary = redis_jwt_cluster.primaries()[-1]
    before = _policy_of(primary)
    primary.command("CONFIG", "SET", "maxmemory-policy", "allkeys-lfu")
    try:
        seen = await _open_and_collect(url)
    finally:
        primary.command("CONFIG", "SET", "maxmemory-policy", before)
    assert [e.kind for e in seen] == ["error"]
    assert seen[0].reason is not None
    assert "allkeys-lfu" in seen[0].reason
