"""The local cache honours ``SWAPDB`` and ``FLUSHALL`` made by anyone on the server.

Redis's tracking sends a flush notice for ``FLUSHALL`` and ``FLUSHDB`` but
nothing at all for ``SWAPDB`` (6.2 and 7.0 alike); the cache's database check
covers it. The bound is the contract's: no accept more than 1.5 s after the
command returned. An accept is dated by when its ``verify`` was called (a
cached answer is decided at once; Redis's own answer comes after the command).
"""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio import Redis

from redis_jwt import RedisJWT, errors
from redis_jwt.testing import RedisServer

from .cli_helpers import cli
from .conftest import SECRET
from .topologies import Topology, sentinel_topology_fixture  # noqa: F401 (fixture)

BOUND_SECONDS = 1.5
TAIL_SECONDS = 0.5


async def _accepts_after(auth: RedisJWT, token: str, since: float) -> tuple[list[float], bool]:
    """Verify every 20 ms until ``since`` + bound + tail: (accept times after since, refused)."""
    accepts: list[float] = []
    refused = False
    for _ in range(500):  # bounded in count and in time
        called = time.monotonic()
        if called > since + BOUND_SECONDS + TAIL_SECONDS:
            break
        try:
            await auth.verify(token)
        except errors.SessionNotFound:
            refused = True
        else:
            accepts.append(called - since)
        await asyncio.sleep(0.02)
    return accepts, refused


async def _cached(auth: RedisJWT, token: str, server: RedisServer) -> None:
    """Wait (bounded) until ``token`` is served from the cache (no PTTL reaches Redis)."""
    for _ in range(200):
        await auth.verify(token)
        before = _pttl_calls(server)
        await auth.verify(token)
        if _pttl_calls(server) == before:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the cache never served the session")


def _pttl_calls(server: RedisServer) -> int:
    stats = str(server.command("INFO", "commandstats"))
    _, found, rest = stats.partition("cmdstat_pttl:calls=")
    return int(rest.split(",", 1)[0]) if found else 0


@pytest.mark.parametrize("command", [("SWAPDB",), ("FLUSHALL",), ("FLUSHALL", "ASYNC")])
async def test_the_server_wide_commands_flush_the_cache(
    own_server: RedisServer, command: tuple[str, ...]
) -> None:
    async with RedisJWT(secret=SECRET, redis_url=own_server.url, local_cache=True) as auth:
        token = await auth.sign("u", ttl=600)
        await _cached(auth, token, own_server)
        admin = Redis.from_url(own_server.url)
        try:
            if command[0] == "SWAPDB":
                await admin.swapdb(0, 1)
            else:
                await admin.flushall(asynchronous=len(command) > 1)
            done = time.monotonic()
        finally:
            await admin.aclose()
        accepts, refused = await _accepts_after(auth, token, done)
    late = [at for at in accepts if at > BOUND_SECONDS]
    assert late == [], f"accepted {len(late)} times more than {BOUND_SECONDS} s after {command}"
    assert refused


async def test_a_swap_back_serves_the_session_again(own_server: RedisServer) -> None:
    async with RedisJWT(secret=SECRET, redis_url=own_server.url, local_cache=True) as auth:
        token = await auth.sign("u", ttl=600)
        await _cached(auth, token, own_server)
        own_server.command("SWAPDB", 0, 1)
        accepts, refused = await _accepts_after(auth, token, time.monotonic())
        assert refused
        assert not [at for at in accepts if at > BOUND_SECONDS]
        own_server.command("SWAPDB", 0, 1)  # the session is in database 0 again
        await _cached(auth, token, own_server)
        assert (await auth.verify(token)).user_id == "u"


@pytest.mark.sentinel
async def test_swapdb_behind_sentinel(sentinel_topology: Topology) -> None:
    sentinel_topology.flush()
    primary = sentinel_topology.primaries()[0]
    async with RedisJWT(secret=SECRET, redis_url=sentinel_topology.url, local_cache=True) as auth:
        token = await auth.sign("u", ttl=600)
        await _cached(auth, token, primary)
        primary.command("SWAPDB", 0, 1)
        try:
            accepts, refused = await _accepts_after(auth, token, time.monotonic())
        finally:
            primary.command("SWAPDB", 0, 1)
    assert refused
    assert not [at for at in accepts if at > BOUND_SECONDS]


async def test_a_user_refused_the_marker_gets_no_cache_and_doctor_says_why(
    own_server: RedisServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every key of the users, but not <prefix>:cache-db.
    own_server.command("ACL", "SETUSER", "app", "on", ">pw", "~rjwt:{*", "&*", "+@all")
    url = f"redis://app:pw@127.0.0.1:{own_server.port}/0"
    async with RedisJWT(secret=SECRET, redis_url=url, local_cache=True) as auth:
        token = await auth.sign("u", ttl=600)
        for _ in range(10):  # every verify asks Redis: never a cached (possibly stale) answer
            before = _pttl_calls(own_server)
            assert (await auth.verify(token)).user_id == "u"
            assert _pttl_calls(own_server) == before + 1
            await asyncio.sleep(0.05)
    result = cli(capsys, monkeypatch, "doctor", "--json",
                 env={"REDIS_JWT_REDIS_URL": url, "REDIS_JWT_LOCAL_CACHE": "true"})  # fmt: skip
    acl = next(c for c in result.json()["checks"] if c["name"] == "acl")
    assert acl["status"] == "problem"
    assert "cache-db" in acl["detail"]
