"""Outages and failovers of a Cluster shard and of a Sentinel primary: 503s, never 401s.

Each test builds its own set (it kills nodes), with the newest ``redis-server``.
The measured windows are written to the terminal (visible without ``-s``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from redis_jwt import RedisJWT, errors
from redis_jwt._redis.listener import TOPOLOGY_CHECK_SECONDS
from redis_jwt.starlette import RedisJWTMiddleware
from redis_jwt.testing import RedisClusterSet, RedisSentinelSet, RedisServer, default_redis_server

from .conftest import SECRET
from .events_helpers import Recorder
from .test_topologies import _hello
from .topologies import cluster_url, slot_of
from .web_helpers import bearer, client

pytestmark = pytest.mark.slow

USERS = [f"user-{n}" for n in range(30)]


def _report(capsys: pytest.CaptureFixture[str], line: str) -> None:
    with capsys.disabled():
        print(f"\n[failover] {line}")


@pytest.fixture
def partial_cluster() -> Iterator[RedisClusterSet]:
    """A cluster whose healthy shards keep serving while one is down."""
    args = ["--cluster-require-full-coverage", "no"]
    with RedisClusterSet(default_redis_server(), extra_args=args) as cluster:
        yield cluster


@pytest.fixture
def cluster() -> Iterator[RedisClusterSet]:
    """A cluster with the default settings (full coverage required)."""
    with RedisClusterSet(default_redis_server()) as started:
        yield started


@pytest.fixture
def sentinel_set() -> Iterator[RedisSentinelSet]:
    with RedisSentinelSet(default_redis_server()) as started:
        yield started


def _replica_of(cluster: RedisClusterSet, primary: RedisServer) -> RedisServer:
    for node in cluster.replicas():
        role = node.command("ROLE")
        assert isinstance(role, list)
        if int(str(role[2])) == primary.port:
            return node
    raise LookupError(f"no replica of {primary!r}")


def _offset(server: RedisServer, field: str) -> int:
    info = str(server.command("INFO", "replication"))
    return int(info.split(f"{field}:", 1)[1].split("\r\n", 1)[0])


async def _replicated(cluster: RedisClusterSet, primary: RedisServer) -> None:
    """Wait (bounded) until the replica of ``primary`` has every write made there so far.

    Replication is asynchronous: a primary killed before its replica caught up
    takes the latest sessions with it, which no failover can bring back.
    """
    replica = _replica_of(cluster, primary)
    written = _offset(primary, "master_repl_offset")
    for _ in range(500):
        if _offset(replica, "slave_repl_offset") >= written:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{replica!r} never caught up with {primary!r}")


async def _tokens_by_node(auth: RedisJWT, cluster: RedisClusterSet) -> dict[int, dict[str, str]]:
    by_node: dict[int, dict[str, str]] = {}
    for user in USERS:
        port = cluster.node_for_slot(slot_of(auth.layout.index_key(user))).port
        by_node.setdefault(port, {})[user] = await auth.sign(user)
    assert len(by_node) == 3
    return by_node


@pytest.mark.cluster
async def test_a_whole_shard_down_is_a_503_for_its_users_only(
    partial_cluster: RedisClusterSet, capsys: pytest.CaptureFixture[str]
) -> None:
    async with RedisJWT(secret=SECRET, redis_url=cluster_url(partial_cluster)) as auth:
        by_node = await _tokens_by_node(auth, partial_cluster)
        primary = partial_cluster.node_for_slot(slot_of(auth.layout.index_key(USERS[0])))
        replica = _replica_of(partial_cluster, primary)
        partial_cluster.kill(replica)
        partial_cluster.kill(primary)
        app = RedisJWTMiddleware(_hello, auth=auth)
        async with client(app) as http:
            for port, tokens in by_node.items():
                for user, token in tokens.items():
                    started = time.monotonic()
                    if port == primary.port:
                        with pytest.raises(errors.StoreError):
                            await auth.verify(token)
                        answer = await http.get("/", headers=bearer(token))
                        assert answer.status_code == 503
                    else:
                        assert (await auth.verify(token)).user_id == user
                        answer = await http.get("/", headers=bearer(token))
                        assert (answer.status_code, answer.text) == (200, user)
                    assert time.monotonic() - started < 3
        # Past cluster-node-timeout the survivors mark the shard failed: still 503 / 200.
        await asyncio.sleep(partial_cluster.node_timeout_ms / 1000 + 0.5)
        for port, tokens in by_node.items():
            for user, token in tokens.items():
                if port == primary.port:
                    with pytest.raises(errors.StoreError):
                        await auth.verify(token)
                else:
                    assert (await auth.verify(token)).user_id == user
    _report(capsys, "shard down: its users 503, the other shards' users 200")


@pytest.mark.cluster
async def test_with_full_coverage_required_a_lost_shard_is_a_503_for_everyone(
    cluster: RedisClusterSet,
) -> None:
    async with RedisJWT(secret=SECRET, redis_url=cluster_url(cluster)) as auth:
        by_node = await _tokens_by_node(auth, cluster)
        primary = cluster.node_for_slot(slot_of(auth.layout.index_key(USERS[0])))
        cluster.kill(_replica_of(cluster, primary))
        cluster.kill(primary)
        # The survivors answer CLUSTERDOWN for every slot once they agree that the
        # shard failed: past cluster-node-timeout, and later on a busy machine.
        for _ in range(300):
            states = [str(node.command("CLUSTER", "INFO")) for node in cluster.primaries()]
            if all("cluster_state:fail" in state for state in states):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"the survivors never marked the cluster failed: {states}")
        for tokens in by_node.values():
            for token in list(tokens.values())[:2]:
                with pytest.raises(errors.StoreError):
                    await auth.verify(token)


async def _probe_until_back(
    auth: RedisJWT, token: str, failover: asyncio.Task[float]
) -> tuple[float, float, int]:
    """Verify ``token`` every 20 ms until it works again after failing; return the window."""
    first_failure: float | None = None
    failures = 0
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        try:
            await auth.verify(token)
        except errors.StoreError:
            failures += 1
            if first_failure is None:
                first_failure = time.monotonic()
        else:
            if first_failure is not None or failover.done():
                break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the token never worked again within 40 s")
    back = time.monotonic()
    return (back - first_failure if first_failure is not None else 0.0), back, failures


@pytest.mark.cluster
async def test_a_cluster_primary_failover_is_a_short_503_window(
    cluster: RedisClusterSet, capsys: pytest.CaptureFixture[str]
) -> None:
    async with RedisJWT(secret=SECRET, redis_url=cluster_url(cluster)) as auth:
        by_node = await _tokens_by_node(auth, cluster)
        victim = cluster.node_for_slot(slot_of(auth.layout.index_key(USERS[0])))
        token = by_node[victim.port][USERS[0]]
        await _replicated(cluster, victim)
        killed = time.monotonic()
        cluster.kill(victim)
        failover = asyncio.create_task(asyncio.to_thread(cluster.wait_failover, victim))
        window, back, failures = await _probe_until_back(auth, token, failover)
        failover_seconds = await failover
        _report(
            capsys,
            f"cluster: failover {failover_seconds:.2f} s, 503 window {window:.2f} s "
            f"({failures} failed verifies), back {back - killed:.2f} s after the kill",
        )
        assert back - killed <= failover_seconds + 1
        for tokens in by_node.values():  # every user of every shard, same RedisJWT
            for user, other in tokens.items():
                assert (await auth.verify(other)).user_id == user
        fresh = await auth.sign(USERS[0])
        assert await auth.count(USERS[0]) == 2
        assert await auth.destroy(fresh) is True


@pytest.mark.sentinel
async def test_a_sentinel_failover_is_a_short_503_window(
    sentinel_set: RedisSentinelSet, capsys: pytest.CaptureFixture[str]
) -> None:
    async with RedisJWT(secret=SECRET, redis_url=sentinel_set.url) as auth:
        tokens = {user: await auth.sign(user) for user in USERS[:5]}
        await asyncio.sleep(0.2)  # let the replicas catch up (asynchronous replication)
        killed = time.monotonic()
        sentinel_set.kill_primary()
        failover = asyncio.create_task(asyncio.to_thread(sentinel_set.wait_failover))
        window, back, failures = await _probe_until_back(auth, tokens[USERS[0]], failover)
        failover_seconds = await failover
        _report(
            capsys,
            f"sentinel: failover {failover_seconds:.2f} s, 503 window {window:.2f} s "
            f"({failures} failed verifies), back {back - killed:.2f} s after the kill",
        )
        assert back - killed <= failover_seconds + 1
        for user, token in tokens.items():
            assert (await auth.verify(token)).user_id == user
        assert await auth.destroy(await auth.sign("after")) is True


async def _one_per_shard(auth: RedisJWT, cluster: RedisClusterSet) -> dict[int, str]:
    users: dict[int, str] = {}
    for user in USERS:
        users.setdefault(cluster.node_for_slot(slot_of(auth.layout.index_key(user))).port, user)
    assert len(users) == 3
    return users


async def _expiries_and_raw_deletes_are_heard(
    auth: RedisJWT, cluster: RedisClusterSet, seen: Recorder
) -> None:
    users = list((await _one_per_shard(auth, cluster)).values())
    before = len(seen.of("expired")), len(seen.of("destroyed"))
    for user in users:
        await auth.sign(user, ttl=1)
    doomed = [await auth.sign(user) for user in users]
    for token in doomed:  # a raw DEL on each shard: seen only through its keyspace events
        session = await auth.verify(token)
        await auth.redis.delete(auth.layout.session_key(session.user_id, session.session_id))
    await seen.wait_for(
        lambda r: len(r.of("expired")) - before[0] == 3 and len(r.of("destroyed")) - before[1] == 3,
        timeout_seconds=6,
        what="3 expiries and 3 external deletions, one per shard",
    )
    assert {e.reason for e in seen.of("destroyed")[before[1] :]} == {"external"}


@pytest.mark.cluster
async def test_the_cluster_listener_covers_every_primary_before_and_after_a_failover(
    cluster: RedisClusterSet, capsys: pytest.CaptureFixture[str]
) -> None:
    async with RedisJWT(secret=SECRET, redis_url=cluster_url(cluster), kea=True) as auth:
        seen = Recorder(auth)
        await _expiries_and_raw_deletes_are_heard(auth, cluster, seen)
        victim = next(iter(await _one_per_shard(auth, cluster)))
        victim_node = next(node for node in cluster.nodes if node.port == victim)
        cluster.kill(victim_node)
        failover_seconds = await asyncio.to_thread(cluster.wait_failover, victim_node)
        covered = time.monotonic()
        await asyncio.sleep(TOPOLOGY_CHECK_SECONDS)  # the longest the listener may take
        await _expiries_and_raw_deletes_are_heard(auth, cluster, seen)
        _report(
            capsys,
            f"cluster listener: failover {failover_seconds:.2f} s; every shard heard again, "
            f"checked {time.monotonic() - covered:.2f} s after it",
        )
