"""``redis-jwt doctor`` and ``stats`` on a real Redis Cluster and a real Sentinel set."""

from __future__ import annotations

import pytest

from redis_jwt.testing import RedisClusterSet, RedisSentinelSet, default_redis_server, wait_until

from .cli_helpers import Result, cli, sign_sessions
from .test_cli_doctor import details, statuses
from .topologies import cluster_url

Capsys = pytest.CaptureFixture[str]
Patch = pytest.MonkeyPatch


def _doctor(capsys: Capsys, monkeypatch: Patch, url: str) -> Result:
    return cli(capsys, monkeypatch, "doctor", "--json", "--url", url)


@pytest.mark.cluster
@pytest.mark.slow
def test_cluster_healthy_then_a_replica_lost_then_slots_missing(
    capsys: Capsys, monkeypatch: Patch
) -> None:
    args = ("--appendonly", "yes", "--cluster-require-full-coverage", "no")
    with RedisClusterSet(default_redis_server(), extra_args=args) as cluster:
        url = cluster_url(cluster)
        healthy = _doctor(capsys, monkeypatch, url)
        found = statuses(healthy)
        assert healthy.code == 0, healthy.out
        assert (found["cluster_slots"], found["cluster_replicas"]) == ("ok", "ok")
        assert found["sentinel_quorum"] == "skipped"
        assert found["acl"] == "ok"
        assert "16384 slots" in details(healthy)["cluster_slots"]

        # stats: exact, summed over the shards, read from replicas.
        users = [f"user-{i}" for i in range(12)]
        for user in users:
            sign_sessions(url, user, 2)
        seen: list[dict[str, object]] = []

        def counted() -> bool | None:
            seen.append(cli(capsys, monkeypatch, "--json", "stats", "--url", url).json())
            return True if (seen[-1]["sessions"], seen[-1]["users"]) == (24, 12) else None

        wait_until(counted, timeout_seconds=30, what="the replicas to hold every session")
        sources = seen[-1]["sources"]
        assert isinstance(sources, list)
        assert len(sources) == 3
        assert all(source.endswith("(replica)") for source in sources)

        count = cli(capsys, monkeypatch, "--json", "sessions", "count", "user-3", "--url", url)
        assert count.json() == {"user_id": "user-3", "count": 2}
        revoked = cli(capsys, monkeypatch, "--json", "sessions", "revoke", "user-3", "--all",
                      "--url", url)  # fmt: skip
        assert revoked.json() == {"revoked": 2}

        replica = cluster.replicas()[0]
        cluster.kill(replica)
        last: list[Result] = []

        def replica_missing() -> bool | None:
            last.append(_doctor(capsys, monkeypatch, url))
            return True if statuses(last[-1])["cluster_replicas"] == "problem" else None

        wait_until(replica_missing, timeout_seconds=30, what="doctor to see a lone primary")
        assert last[-1].code == 1

        # Only the owner forgets them: the other nodes' views still list them.
        cluster.node_for_slot(100).command("CLUSTER", "DELSLOTSRANGE", 100, 199)
        gone = _doctor(capsys, monkeypatch, url)
        assert statuses(gone)["cluster_slots"] == "problem"
        assert "100-199" in details(gone)["cluster_slots"]


@pytest.mark.sentinel
@pytest.mark.slow
def test_sentinel_quorum_and_replicas(capsys: Capsys, monkeypatch: Patch) -> None:
    with RedisSentinelSet(default_redis_server()) as sentinels:
        url = sentinels.url
        result = _doctor(capsys, monkeypatch, url)
        found = statuses(result)
        assert (found["sentinel_quorum"], found["sentinel_replicas"]) == ("ok", "ok")
        assert found["cluster_slots"] == "skipped"
        assert "2 healthy replicas" in details(result)["sentinel_replicas"]

        sign_sessions(url, "s-user", 3)
        seen: list[dict[str, object]] = []

        def counted() -> bool | None:
            seen.append(cli(capsys, monkeypatch, "--json", "stats", "--url", url).json())
            return True if seen[-1]["sessions"] == 3 else None

        wait_until(counted, timeout_seconds=20, what="a replica to hold the sessions")
        sources = seen[-1]["sources"]
        assert isinstance(sources, list)
        assert sources[0].endswith("(replica)")

        for replica in sentinels.data_servers[1:]:
            replica.kill()
        last: list[Result] = []

        def no_replica() -> bool | None:
            last.append(_doctor(capsys, monkeypatch, url))
            return True if statuses(last[-1])["sentinel_replicas"] == "problem" else None

        wait_until(no_replica, timeout_seconds=30, what="the sentinels to mark the replicas down")
        assert last[-1].code == 1

        # A quorum larger than the sentinels there are: no failover could ever be agreed.
        for sentinel in sentinels.sentinel_servers:
            sentinel.command("SENTINEL", "SET", sentinels.service_name, "quorum", "4")
        stuck = _doctor(capsys, monkeypatch, url)
        assert statuses(stuck)["sentinel_quorum"] == "problem"
        assert "NOQUORUM" in details(stuck)["sentinel_quorum"]
