"""Each reach-in of ``redis_jwt._compat_cluster`` into redis-py, checked on the installed version.

Written for redis-py 8.1 (``redis.__version__`` at the time) and kept working on
6.2, the lowest declared version: if an upgrade breaks one of these, the
workaround must be revisited, not the test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Literal

import pytest
import redis
from redis import exceptions as rex
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot

from redis_jwt._compat import refresh_cluster_slots
from redis_jwt._compat_cluster import (
    _patch_slot,
    _replaced,
    call_in_slot,
    raised_by_redis_py,
    refresh_later,
    send_on_node,
)
from redis_jwt.testing import RedisClusterSet

from .topologies import (  # noqa: F401 (fixtures)
    Topology,
    cluster_topology_fixture,
)

pytestmark = pytest.mark.cluster


@pytest.fixture
async def cluster(cluster_topology: Topology) -> RedisClusterSet:
    cluster_topology.flush()
    assert cluster_topology.cluster is not None
    return cluster_topology.cluster


@pytest.fixture
async def client(cluster: RedisClusterSet) -> AsyncIterator[RedisCluster]:
    host, port = cluster.startup_nodes[0]
    instance = RedisCluster(host=host, port=port)
    await instance.initialize()
    try:
        yield instance
    finally:
        await instance.aclose()


def _other_primary(client: RedisCluster, node: ClusterNode) -> ClusterNode:
    return next(n for n in client.get_primaries() if n.name != node.name)


def _owner(client: RedisCluster, key: str) -> ClusterNode:
    node = client.get_node_from_key(key)
    assert node is not None
    return node


def _version() -> tuple[int, int]:
    major, minor = redis.__version__.split(".")[:2]
    return int(major), int(minor)


def test_the_version_these_reach_ins_were_checked_on() -> None:
    assert _version() >= (6, 2)  # the lowest declared version


async def test_refresh_later_makes_the_next_initialize_reload_the_slot_map(
    client: RedisCluster,
) -> None:
    owner = _owner(client, "k")
    _patch_slot(client, key_slot(b"k"), _other_primary(client, owner))
    assert _owner(client, "k") is not owner
    refresh_later(client)  # reach-in: RedisCluster._initialize
    await client.initialize()
    assert _owner(client, "k").name == owner.name


async def test_patch_slot_routes_one_slot_without_closing_connections(
    client: RedisCluster,
) -> None:
    await client.set("a", "1")
    owner = _owner(client, "a")
    elsewhere = _other_primary(client, owner)
    busy = owner.acquire_connection()  # a command in flight on the owner
    await busy.connect()  # type: ignore[no-untyped-call]
    try:
        # A MOVED storm: every call finds the slot routed to the wrong node.
        for _ in range(12):
            _patch_slot(client, key_slot(b"a"), elsewhere)  # reach-in: slots_cache
            assert await call_in_slot(client, "a", ("GET", "a")) == b"1"
            assert _owner(client, "a").name == owner.name
        assert busy.is_connected  # redis-py's own path closes it (reinitialize_steps)
    finally:
        owner.release(busy)


async def test_asking_travels_on_the_connection_of_its_command(
    cluster: RedisClusterSet, client: RedisCluster
) -> None:
    key = "moving"
    slot = key_slot(key.encode())
    owner = _owner(client, key)
    target = _other_primary(client, owner)
    servers = {n.port: n for n in cluster.primaries()}
    source, importing = servers[int(owner.port)], servers[int(target.port)]
    importing.command("CLUSTER", "SETSLOT", slot, "IMPORTING", cluster.node_id(source))
    source.command("CLUSTER", "SETSLOT", slot, "MIGRATING", cluster.node_id(importing))
    try:
        with pytest.raises(rex.MovedError):
            await send_on_node(target, [("SET", key, "v")])
        # reach-in: ClusterNode.acquire_connection/release, Connection.pack_commands
        assert await send_on_node(target, [("ASKING",), ("SET", key, "v")]) == b"OK"
        # The key is on the importing node only: the source answers ASK, followed here.
        assert await call_in_slot(client, key, ("GET", key)) == b"v"
    finally:
        await send_on_node(target, [("ASKING",), ("DEL", key)])
        for server in (importing, source):
            server.command("CLUSTER", "SETSLOT", slot, "STABLE")


async def test_a_reload_replaces_the_nodes_up_to_redis_py_7_1(client: RedisCluster) -> None:
    """redis-py 6.2 - 7.1 build new ``ClusterNode`` objects at every reload of the
    slot map; 7.2+ keep the ones they find again. A connection of a node that is
    no longer the client's is closed after use, since nobody else ever would."""
    old = _owner(client, "k")
    refresh_later(client)
    await client.initialize()
    assert (client.get_node(node_name=old.name) is not old) == (_version() < (7, 2))
    stranger = ClusterNode(old.host, old.port)  # a node the client does not hold
    assert await send_on_node(stranger, [("PING",)], client) == b"PONG"
    conn = stranger.acquire_connection()  # its only connection, the one just used
    try:
        assert not conn.is_connected
    finally:
        stranger.release(conn)
    # The client's own node keeps its connections. (Checked by the decision
    # itself: which connection acquire_connection() hands out next depends on
    # what the reload's background work did to the node's other connections.)
    own = _owner(client, "k")
    assert not _replaced(client, own)
    assert _replaced(client, stranger)
    assert await send_on_node(own, [("PING",)], client) == b"PONG"


async def test_slot_map_reloads_share_redis_pys_initialisation_lock(
    client: RedisCluster,
) -> None:
    """redis-py 5.2 - 8.x: ``RedisCluster.initialize`` reloads under ``_lock``;
    ``refresh_cluster_slots`` takes the same lock, so two reloads never overlap."""
    taken: list[str] = []

    class Recording(asyncio.Lock):
        async def acquire(self) -> Literal[True]:
            taken.append("acquire")
            return await super().acquire()

    assert isinstance(client._lock, asyncio.Lock)  # made by the first initialize
    client._lock = Recording()
    await refresh_cluster_slots(client)
    assert taken == ["acquire"]
    refresh_later(client)
    await client.initialize()
    assert taken == ["acquire", "acquire"]


def test_raised_by_redis_py_tells_redis_py_failures_from_our_bugs() -> None:
    with pytest.raises(AttributeError) as inside:
        key_slot(None)  # type: ignore[arg-type]
    assert raised_by_redis_py(inside.value)
    with pytest.raises(AttributeError) as ours:
        _ = None.missing  # type: ignore[attr-defined]
    assert not raised_by_redis_py(ours.value)
