"""The three deployments the suite runs against: one server, a Cluster, a Sentinel set.

``topology`` is parametrized (ids ``standalone``, ``cluster``, ``sentinel``);
each set is started once per test session, with the newest ``redis-server``
only (the 6.2 floor is covered by the standalone suite), and emptied before
every test. Tests that kill nodes build their own sets (see test_failover.py).

Import the fixtures into a test module::

    from .topologies import (  # noqa: F401 (fixtures)
        Topology, cluster_topology_fixture, sentinel_topology_fixture,
        standalone_topology_fixture, topology_fixture,
    )
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import pytest
from redis.crc import key_slot

from redis_jwt.testing import RedisClusterSet, RedisSentinelSet, RedisServer, default_redis_server

Kind = Literal["standalone", "cluster", "sentinel"]


def cluster_url(cluster: RedisClusterSet) -> str:
    """The ``redis+cluster://`` URL of every node of ``cluster``."""
    return "redis+cluster://" + ",".join(f"{h}:{p}" for h, p in cluster.startup_nodes)


def slot_of(key: str) -> int:
    """The Cluster hash slot of ``key``."""
    return int(key_slot(key.encode()))


@dataclass
class Topology:
    """One running deployment and the URL that reaches it."""

    kind: Kind
    url: str
    server: RedisServer | None = None
    cluster: RedisClusterSet | None = None
    sentinel: RedisSentinelSet | None = None

    def primaries(self) -> list[RedisServer]:
        """The servers currently taking writes."""
        if self.cluster is not None:
            return self.cluster.primaries()
        if self.sentinel is not None:
            return [self.sentinel.primary()]
        assert self.server is not None
        return [self.server]

    def flush(self) -> None:
        """Empty every primary (replicas follow)."""
        for node in self.primaries():
            node.command("FLUSHALL")


@pytest.fixture(scope="session", name="standalone_topology")
def standalone_topology_fixture() -> Iterator[Topology]:
    with RedisServer(default_redis_server()) as server:
        yield Topology("standalone", server.url, server=server)


@pytest.fixture(scope="session", name="cluster_topology")
def cluster_topology_fixture() -> Iterator[Topology]:
    with RedisClusterSet(default_redis_server()) as cluster:
        yield Topology("cluster", cluster_url(cluster), cluster=cluster)


@pytest.fixture(scope="session", name="sentinel_topology")
def sentinel_topology_fixture() -> Iterator[Topology]:
    with RedisSentinelSet(default_redis_server()) as sentinel_set:
        yield Topology("sentinel", sentinel_set.url, sentinel=sentinel_set)


@pytest.fixture(
    name="topology",
    params=[
        "standalone",
        pytest.param("cluster", marks=pytest.mark.cluster),
        pytest.param("sentinel", marks=pytest.mark.sentinel),
    ],
)
def topology_fixture(request: pytest.FixtureRequest) -> Topology:
    """Each deployment in turn, emptied first."""
    found: Topology = request.getfixturevalue(f"{request.param}_topology")
    found.flush()
    return found
