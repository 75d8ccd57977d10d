"""A full Redis, lost replies and a paused server: no call applies twice, none applies late.

Every Redis here is real: ``maxmemory`` with ``noeviction`` on one server (each
binary, 6.2 and 7.x), a Cluster and a Sentinel set; a proxy that forwards a
call and loses its reply; a server stopped with ``SIGSTOP``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from importlib import resources

import pytest
from redis.asyncio import Redis

from redis_jwt import RedisJWT, errors
from redis_jwt.testing import RedisClusterSet, RedisSentinelSet, RedisServer, TCPProxy

from .conftest import BINARIES, SECRET
from .events_helpers import Recorder, settle
from .topologies import (  # noqa: F401 (fixtures)
    Topology,
    cluster_topology_fixture,
    cluster_url,
    sentinel_topology_fixture,
    standalone_topology_fixture,
    topology_fixture,
)


def _info(server: RedisServer, section: str) -> dict[str, str]:
    text = server.command("INFO", section)
    assert isinstance(text, str)
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


@contextlib.contextmanager
def _full(servers: list[RedisServer]) -> Iterator[None]:
    """Make every server "full": maxmemory below what it uses, nothing to evict."""
    for server in servers:
        used = int(_info(server, "memory")["used_memory"])
        server.command("CONFIG", "SET", "maxmemory-policy", "noeviction")
        server.command("CONFIG", "SET", "maxmemory", str(used // 2))
    try:
        yield
    finally:
        for server in servers:
            with contextlib.suppress(Exception):
                server.command("CONFIG", "SET", "maxmemory", "0")


def _dbsize(servers: list[RedisServer]) -> int:
    return sum(int(str(server.command("DBSIZE"))) for server in servers)


async def _refuses_when_full(url: str, servers: list[RedisServer]) -> None:
    async with (
        RedisJWT(secret=SECRET, redis_url=url, max_sessions=2) as auth,
        RedisJWT(secret=SECRET, redis_url=url, sliding=True) as sliding,
    ):
        first = await auth.sign("full", data_session={"n": 1})
        second = await auth.sign("full")
        keys_before = _dbsize(servers)
        with _full(servers):
            for _ in range(20):
                with pytest.raises(errors.StoreError):
                    await auth.sign("full", data_session={"pad": "x" * 1000})
                with pytest.raises(errors.StoreError):
                    await auth.sign("someone else")
            # Nothing written, nothing evicted: both sessions still live and listed.
            assert _dbsize(servers) == keys_before
            assert (await auth.verify(first)).user_id == "full"
            assert (await auth.verify(first, with_session=True)).data_session == {"n": 1}
            assert (await sliding.verify(second)).user_id == "full"
            assert await auth.extend(second)
            assert await auth.count("full") == 2
            assert {i.session_id for i in await auth.sessions("full")} == {
                (await auth.verify(t)).session_id for t in (first, second)
            }
            # Logging out frees memory, so it is allowed.
            assert await auth.destroy(first) is True
            with pytest.raises(errors.SessionNotFound):
                await auth.verify(first)
        # Memory back: signing works again.
        assert (await auth.verify(await auth.sign("full"))).user_id == "full"


async def test_a_full_redis_refuses_sessions_on_each_binary(redis_server: RedisServer) -> None:
    redis_server.command("FLUSHALL")
    await _refuses_when_full(redis_server.url, [redis_server])


async def test_a_full_redis_refuses_sessions_on_every_topology(topology: Topology) -> None:
    await _refuses_when_full(topology.url, topology.primaries())


@pytest.mark.slow
@pytest.mark.cluster
@pytest.mark.sentinel
async def test_a_full_redis_refuses_sessions_on_cluster_and_sentinel_of_the_oldest_binary() -> None:
    # The topologies above run the newest binary; the 6.2 floor has no script flags at all.
    oldest = min(BINARIES, key=lambda binary: binary.version)
    with RedisClusterSet(oldest) as cluster:
        await _refuses_when_full(cluster_url(cluster), cluster.primaries())
    with RedisSentinelSet(oldest) as sentinels:
        await _refuses_when_full(sentinels.url, [sentinels.primary()])


async def test_a_full_redis_refuses_a_single_session_login_without_ending_the_old_one(
    redis_server: RedisServer,
) -> None:
    redis_server.command("FLUSHALL")
    async with RedisJWT(secret=SECRET, redis_url=redis_server.url, multiple=False) as auth:
        only = await auth.sign("solo")
        with _full([redis_server]), pytest.raises(errors.StoreError):
            await auth.sign("solo")
        assert (await auth.verify(only)).user_id == "solo"
        assert await auth.count("solo") == 1


# -- lost replies ----------------------------------------------------------------


@pytest.fixture
async def proxy(redis_server: RedisServer) -> AsyncIterator[TCPProxy]:
    redis_server.command("FLUSHALL")
    async with TCPProxy(redis_server.host, redis_server.port) as running:
        yield running


async def test_a_sign_whose_reply_is_lost_applies_once(proxy: TCPProxy) -> None:
    async with RedisJWT(secret=SECRET, redis_url=proxy.url, max_sessions=3, listen=True) as auth:
        seen = Recorder(auth)
        old = [await auth.sign("lost") for _ in range(2)]
        await seen.wait_for(
            lambda r: len(r.of("created")) == 2, timeout_seconds=5, what="two created"
        )
        proxy.drop_next_reply(b"EVALSHA")
        token = await auth.sign("lost")
        assert proxy.replies_dropped == 1
        new = (await auth.verify(token)).session_id
        for kept in old:  # no second run evicted anything: 3 live, as the limit allows
            await auth.verify(kept)
        assert await auth.count("lost") == 3
        await settle()
        assert seen.session_ids("created").count(new) == 1
        assert seen.of("destroyed") == []


async def test_a_single_session_sign_whose_reply_is_lost_ends_the_old_one_only(
    proxy: TCPProxy,
) -> None:
    async with RedisJWT(secret=SECRET, redis_url=proxy.url, multiple=False, listen=True) as auth:
        seen = Recorder(auth)
        before = await auth.sign("one")
        old = (await auth.verify(before)).session_id
        proxy.drop_next_reply(b"EVALSHA")
        token = await auth.sign("one")
        assert proxy.replies_dropped == 1
        new = (await auth.verify(token)).session_id
        with pytest.raises(errors.SessionNotFound):
            await auth.verify(before)
        assert await auth.count("one") == 1
        await seen.wait_for(
            lambda r: old in r.session_ids("destroyed"), timeout_seconds=5, what="old destroyed"
        )
        await settle()
        assert seen.session_ids("created").count(new) == 1
        assert seen.session_ids("destroyed") == [old]
        assert [e.reason for e in seen.of("destroyed")] == ["evicted"]


async def test_a_destroy_whose_reply_is_lost_still_returns_true(proxy: TCPProxy) -> None:
    async with RedisJWT(secret=SECRET, redis_url=proxy.url) as auth:
        token = await auth.sign("bye")
        proxy.drop_next_reply(b"EVALSHA")
        assert await auth.destroy(token) is True
        assert proxy.replies_dropped == 1
        with pytest.raises(errors.SessionNotFound):
            await auth.verify(token)
        assert await auth.destroy(token) is False


async def test_a_destroy_all_whose_reply_is_lost_still_counts_every_session(
    proxy: TCPProxy,
) -> None:
    async with RedisJWT(secret=SECRET, redis_url=proxy.url) as auth:
        tokens = [await auth.sign("all") for _ in range(3)]
        proxy.drop_next_reply(b"EVALSHA")
        assert await auth.destroy_all("all") == 3
        assert proxy.replies_dropped == 1
        for token in tokens:
            with pytest.raises(errors.SessionNotFound):
                await auth.verify(token)


# -- a paused server ---------------------------------------------------------------


def _script_runs(server: RedisServer) -> int:
    stats = _info(server, "commandstats")
    total = 0
    for name in ("cmdstat_evalsha", "cmdstat_eval"):
        fields = dict(part.split("=", 1) for part in stats.get(name, "calls=0").split(","))
        total += int(fields["calls"]) + int(fields.get("failed_calls", "0"))
    return total


async def _wait(check: Callable[[], bool], what: str, timeout_seconds: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_a_sign_that_timed_out_on_a_paused_server_never_applies(
    own_server: RedisServer,
) -> None:
    url = own_server.url
    async with RedisJWT(secret=SECRET, redis_url=url, multiple=False) as auth:
        only = await auth.sign("paused")
        runs = _script_runs(own_server)
        own_server.pause()
        try:
            with pytest.raises(errors.StoreError):
                await auth.sign("paused")
            with pytest.raises(errors.StoreError):
                await auth.destroy(only)
        finally:
            own_server.resume()
    # The calls reached Redis before it stopped and run when it resumes: wait for them.
    await _wait(lambda: _script_runs(own_server) > runs, "the late calls to run")
    await _wait(
        lambda: int(_info(own_server, "clients")["connected_clients"]) <= 1,
        "the closed connections to be gone",
    )
    async with RedisJWT(secret=SECRET, redis_url=url, multiple=False) as auth:
        assert (await auth.verify(only)).user_id == "paused"
        assert await auth.count("paused") == 1
    raw = Redis.from_url(url)
    try:
        assert await raw.dbsize() == 2  # the session and its index, nothing else
    finally:
        await raw.aclose()


# -- sign run twice: the call marker --------------------------------------------


async def _sign_twice(auth: RedisJWT, user_id: str, sid: str, limit: int) -> list[object]:
    # A retry after a lost reply reaches Redis a second time: the call marker answers it.
    layout = auth.layout
    keys = (
        layout.session_key(user_id, sid),
        layout.index_key(user_id),
        layout.call_key(user_id, sid),
    )
    deadline = int((time.time() + 5) * 1000)
    exp = int(time.time()) + 3600
    args = (sid, 60, exp, "", limit, "", layout.session_prefix(user_id), user_id, "test",
            deadline, "", "", 0)  # fmt: skip
    source = (resources.files("redis_jwt") / "scripts" / "sign.lua").read_text("utf-8")
    first = await auth.redis.eval(source, len(keys), *keys, *args)
    marker = await auth.redis.object("encoding", keys[2])
    second = await auth.redis.eval(source, len(keys), *keys, *args)
    assert second == first
    assert [int(v) for v in first[:3]] == [1, int(first[1]), 60_000]
    return [marker, *first[3:]]


async def test_a_sign_run_twice_returns_its_first_outcome(auth: RedisJWT) -> None:
    # Nothing evicted: the marker holds the creation time alone, stored as an integer.
    assert await _sign_twice(auth, "twice", "A" * 22, 0) == [b"int"]
    assert await auth.count("twice") == 1
    # An eviction is remembered in full: the second run evicts nothing more.
    assert (await _sign_twice(auth, "twice", "B" * 22, 1))[1:] == [b"A" * 22]
    assert [i.session_id for i in await auth.sessions("twice")] == ["B" * 22]
