"""``redis-jwt doctor`` on real servers, each misconfigured in one way at a time."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator

import pytest

from redis_jwt.testing import RedisBinary, RedisServer, TCPProxy, free_port

from .cli_helpers import Result, clean_env, cli, cli_process

Capsys = pytest.CaptureFixture[str]
Patch = pytest.MonkeyPatch
PERSISTED = ("--appendonly", "yes")
NAMES = {
    "connectivity", "server_version", "eviction_policy", "memory_headroom", "persistence",
    "keyspace_events", "acl", "clock_skew", "cluster_slots", "cluster_replicas",
    "sentinel_quorum", "sentinel_replicas",
}  # fmt: skip


def statuses(result: Result) -> dict[str, str]:
    """name -> status from ``doctor --json``; checks the document's shape on the way."""
    document = result.json()
    assert set(document) == {"ok", "checks"}
    assert isinstance(document["ok"], bool)
    for check in document["checks"]:
        assert {"name", "status", "detail"} <= set(check)
        assert check["status"] in ("ok", "problem", "skipped")
        assert isinstance(check["detail"], str)
        assert check["detail"]
        if check["status"] == "problem":
            assert check["fix"]
    assert document["ok"] == all(c["status"] != "problem" for c in document["checks"])
    return {check["name"]: check["status"] for check in document["checks"]}


def details(result: Result) -> dict[str, str]:
    return {check["name"]: check["detail"] for check in result.json()["checks"]}


@pytest.fixture
def server(redis_jwt_binary: RedisBinary, request: pytest.FixtureRequest) -> Iterator[RedisServer]:
    """A server of this test's own, started with the extra args the test passes (indirect)."""
    extra: tuple[str, ...] = getattr(request, "param", ())
    with RedisServer(redis_jwt_binary, extra_args=extra) as own:
        yield own


def doctor(capsys: Capsys, monkeypatch: Patch, url: str, **env: str) -> Result:
    return cli(capsys, monkeypatch, "doctor", "--json",
               env={"REDIS_JWT_REDIS_URL": url, **env})  # fmt: skip


@pytest.mark.parametrize("server", [PERSISTED], indirect=True, ids=["args"])
def test_a_healthy_server_passes_every_check(
    server: RedisServer, capsys: Capsys, monkeypatch: Patch
) -> None:
    result = doctor(capsys, monkeypatch, server.url)
    assert result.code == 0, result.out
    found = statuses(result)
    assert set(found) == NAMES
    assert {name for name, status in found.items() if status == "problem"} == set()
    for name in ("connectivity", "server_version", "eviction_policy", "persistence", "acl"):
        assert found[name] == "ok"
    human = cli(capsys, monkeypatch, "doctor", "--url", server.url)
    assert human.code == 0
    assert human.out.strip().splitlines()[-1] == "healthy"
    assert "\x1b[" not in human.out


def test_no_persistence_is_a_problem(
    server: RedisServer, capsys: Capsys, monkeypatch: Patch
) -> None:
    result = doctor(capsys, monkeypatch, server.url)
    assert result.code == 1
    assert statuses(result)["persistence"] == "problem"
    server.command("CONFIG", "SET", "save", "3600 1")
    again = doctor(capsys, monkeypatch, server.url)
    assert statuses(again)["persistence"] == "ok"
    assert again.code == 0


@pytest.mark.parametrize(
    "server",
    [
        (
            *PERSISTED,
            "--maxmemory",
            "512mb",
            "--maxmemory-policy",
            "allkeys-lru",
        )
    ],
    indirect=True,
    ids=["args"],
)
def test_an_eviction_policy_is_a_problem_with_maxmemory_only(
    server: RedisServer, capsys: Capsys, monkeypatch: Patch
) -> None:
    result = doctor(capsys, monkeypatch, server.url)
    assert result.code == 1
    assert statuses(result)["eviction_policy"] == "problem"
    assert "allkeys-lru" in details(result)["eviction_policy"]
    server.command("CONFIG", "SET", "maxmemory", "0")
    shown = doctor(capsys, monkeypatch, server.url)
    assert statuses(shown)["eviction_policy"] == "ok"
    assert "allkeys-lru" in details(shown)["eviction_policy"]
    server.command("CONFIG", "SET", "maxmemory-policy", "volatile-ttl")
    server.command("CONFIG", "SET", "maxmemory", "512mb")
    assert statuses(doctor(capsys, monkeypatch, server.url))["eviction_policy"] == "problem"


@pytest.mark.parametrize("server", [PERSISTED], indirect=True, ids=["args"])
def test_noeviction_near_maxmemory_is_a_problem(
    server: RedisServer, capsys: Capsys, monkeypatch: Patch
) -> None:
    info = str(server.command("INFO", "memory"))
    used = int(info.split("used_memory:", 1)[1].split("\r\n", 1)[0])
    server.command("CONFIG", "SET", "maxmemory", str(int(used / 0.95)))
    result = doctor(capsys, monkeypatch, server.url)
    assert statuses(result)["memory_headroom"] == "problem"
    assert result.code == 1
    server.command("CONFIG", "SET", "maxmemory", str(used * 4))
    assert statuses(doctor(capsys, monkeypatch, server.url))["memory_headroom"] == "ok"


@pytest.mark.parametrize("server", [PERSISTED], indirect=True, ids=["args"])
def test_a_user_missing_a_command_or_a_key_pattern_is_named(
    server: RedisServer, capsys: Capsys, monkeypatch: Patch
) -> None:
    server.command("ACL", "SETUSER", "app", "on", ">pw", "~*", "&*", "+@all", "-hset")
    url = f"redis://app:pw@127.0.0.1:{server.port}/0"
    result = doctor(capsys, monkeypatch, url)
    assert result.code == 1
    assert statuses(result)["acl"] == "problem"
    assert "HSET" in details(result)["acl"]
    assert "PTTL" not in details(result)["acl"]
    server.command("ACL", "SETUSER", "app", "reset", "on", ">pw", "~other:*", "&*", "+@all")
    keys = doctor(capsys, monkeypatch, url)
    assert statuses(keys)["acl"] == "problem"
    assert "PTTL" in details(keys)["acl"]
    server.command("ACL", "SETUSER", "app", "reset", "on", ">pw", "~rjwt:*", "&*", "+@all")
    assert statuses(doctor(capsys, monkeypatch, url))["acl"] == "ok"
    # Nothing was written by the probes.
    assert server.command("DBSIZE") == 0


@pytest.mark.parametrize("server", [PERSISTED], indirect=True, ids=["args"])
def test_acl_covers_the_options_in_use(
    server: RedisServer, capsys: Capsys, monkeypatch: Patch
) -> None:
    server.command("ACL", "SETUSER", "app", "on", ">pw", "~*", "&*", "+@all", "-subscribe", "-wait")
    url = f"redis://app:pw@127.0.0.1:{server.port}/0"
    assert statuses(doctor(capsys, monkeypatch, url))["acl"] == "ok"
    listening = doctor(capsys, monkeypatch, url, REDIS_JWT_LISTEN="true")
    assert "SUBSCRIBE" in details(listening)["acl"]
    waiting = doctor(capsys, monkeypatch, url, REDIS_JWT_WAIT_REPLICAS="1")
    assert "WAIT" in details(waiting)["acl"]


@pytest.mark.parametrize("server", [PERSISTED], indirect=True, ids=["args"])
def test_a_user_without_multi_has_no_probe_run_for_real(
    server: RedisServer, capsys: Capsys, monkeypatch: Patch
) -> None:
    """Refused MULTI: the commands tried are not sent at all (they would run, not be queued)."""
    server.command("ACL", "SETUSER", "app", "on", ">pw", "~*", "&*", "+@all", "-multi")
    url = f"redis://app:pw@127.0.0.1:{server.port}/0"
    result = doctor(capsys, monkeypatch, url, REDIS_JWT_KEA="true", REDIS_JWT_LOCAL_CACHE="true")
    # Redis 7 answers through ACL DRYRUN; 6.2 has none, so the check is skipped.
    assert statuses(result)["acl"] in ("ok", "skipped")
    # CONFIG SET notify-keyspace-events and SET cache-db were among the commands tried.
    assert server.command("CONFIG", "GET", "notify-keyspace-events") == [
        "notify-keyspace-events",
        "",
    ]
    assert server.command("DBSIZE") == 0


@pytest.mark.parametrize("server", [PERSISTED], indirect=True, ids=["args"])
def test_a_user_without_config_gets_skipped_checks_not_a_crash(
    server: RedisServer, capsys: Capsys, monkeypatch: Patch
) -> None:
    server.command("ACL", "SETUSER", "app", "on", ">pw", "~*", "&*", "+@all", "-config")
    url = f"redis://app:pw@127.0.0.1:{server.port}/0"
    result = doctor(capsys, monkeypatch, url, REDIS_JWT_KEA="true")
    found = statuses(result)
    assert found["keyspace_events"] == "skipped"
    assert found["persistence"] == "ok"  # AOF is seen in INFO
    assert found["acl"] == "problem"  # kea needs CONFIG
    assert "CONFIG" in details(result)["acl"]


@pytest.mark.parametrize("server", [PERSISTED], indirect=True, ids=["args"])
def test_keyspace_events_are_checked_when_kea_is_on(
    server: RedisServer, capsys: Capsys, monkeypatch: Patch
) -> None:
    assert statuses(doctor(capsys, monkeypatch, server.url))["keyspace_events"] == "skipped"
    result = doctor(capsys, monkeypatch, server.url, REDIS_JWT_KEA="true")
    assert result.code == 1
    assert statuses(result)["keyspace_events"] == "problem"
    # doctor only looks: it never turns the flags on itself.
    assert server.command("CONFIG", "GET", "notify-keyspace-events") == [
        "notify-keyspace-events",
        "",
    ]
    server.command("CONFIG", "SET", "notify-keyspace-events", "KEA")
    assert (
        statuses(doctor(capsys, monkeypatch, server.url, REDIS_JWT_KEA="true"))["keyspace_events"]
        == "ok"
    )


def test_a_closed_port_is_exit_2_with_one_line(capsys: Capsys, monkeypatch: Patch) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    result = doctor(capsys, monkeypatch, url)
    assert result.assert_one_line_error(2).startswith("redis-jwt: cannot connect to Redis")
    assert result.json()["ok"] is False
    human = cli(capsys, monkeypatch, "doctor", "--url", url)
    human.assert_one_line_error(2)
    assert human.out == ""


def test_a_wrong_password_is_exit_2(
    server: RedisServer, capsys: Capsys, monkeypatch: Patch
) -> None:
    server.command("CONFIG", "SET", "requirepass", "right")
    url = f"redis://:wrong@127.0.0.1:{server.port}/0"
    line = cli(capsys, monkeypatch, "doctor", "--url", url).assert_one_line_error(2)
    assert "wrong" not in line.replace("redis://:***@", "")


@pytest.mark.parametrize("server", [PERSISTED], indirect=True, ids=["args"])
def test_doctor_as_a_real_process(server: RedisServer) -> None:
    healthy = cli_process("doctor", env={"REDIS_JWT_REDIS_URL": server.url})
    assert healthy.code == 0, healthy.out + healthy.err
    assert healthy.err == ""
    server.command("CONFIG", "SET", "appendonly", "no")
    sick = cli_process("doctor", "--json", env={"REDIS_JWT_REDIS_URL": server.url})
    assert sick.code == 1
    assert statuses(sick)["persistence"] == "problem"
    gone = cli_process("doctor", "--url", f"redis://127.0.0.1:{free_port()}/0")
    gone.assert_one_line_error(2)


@pytest.mark.parametrize("server", [PERSISTED], indirect=True, ids=["args"])
async def test_a_distant_redis_is_a_connectivity_problem(server: RedisServer) -> None:
    async with TCPProxy("127.0.0.1", server.port) as proxy:
        proxy.delay_seconds = 0.06  # each way: a 120 ms round trip
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "redis_jwt", "doctor", "--json", "--url", proxy.url,
            env=clean_env({}), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(), 60)
    result = Result(process.returncode or 0, out.decode(), err.decode())
    assert result.code == 1, result.err
    assert statuses(result)["connectivity"] == "problem"
    assert "same network zone" in result.out
