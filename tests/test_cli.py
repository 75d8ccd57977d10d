"""``redis-jwt sessions ...``, ``stats``, ``events`` and usage errors, on a real Redis."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator

import pytest

from redis_jwt import RedisJWT
from redis_jwt.testing import RedisServer, free_port

from .cli_helpers import clean_env, cli, cli_process, sign_sessions
from .conftest import SECRET

Capsys = pytest.CaptureFixture[str]
Patch = pytest.MonkeyPatch


def test_sessions_list_json_has_every_field_and_iso_times(
    redis_url: str, capsys: Capsys, monkeypatch: Patch
) -> None:
    ids = sign_sessions(redis_url, "alice", 2)
    result = cli(capsys, monkeypatch, "sessions", "list", "alice", "--json",
                 env={"REDIS_JWT_REDIS_URL": redis_url})  # fmt: skip
    assert result.code == 0, result.err
    rows = result.json()
    assert sorted(row["session_id"] for row in rows) == sorted(ids)
    for row in rows:
        assert row["user_id"] == "alice"
        assert {"issued_at", "expires_at", "ttl", "data_session", "ip", "user_agent"} <= set(row)
        assert "T" in row["issued_at"]
        assert row["ttl"] > 0


def test_sessions_list_table_prints_full_ids_without_colour_off_a_tty(
    redis_url: str, capsys: Capsys, monkeypatch: Patch
) -> None:
    ids = sign_sessions(redis_url, "bob", 2)
    result = cli(capsys, monkeypatch, "--url", redis_url, "sessions", "list", "bob")
    assert result.code == 0
    for session_id in ids:
        assert session_id in result.out
    assert "unknown device" in result.out
    assert "\x1b[" not in result.out
    assert result.out.splitlines()[0].startswith("SESSION ID")


def test_sessions_count_and_options_after_the_command(
    redis_url: str, capsys: Capsys, monkeypatch: Patch
) -> None:
    sign_sessions(redis_url, "carol", 3)
    result = cli(capsys, monkeypatch, "sessions", "count", "carol", "--url", redis_url, "--json")
    assert result.code == 0
    assert result.json() == {"user_id": "carol", "count": 3}
    plain = cli(capsys, monkeypatch, "--json", "--url", redis_url, "sessions", "count", "carol")
    assert plain.json() == {"user_id": "carol", "count": 3}


def test_prefix_override_reads_another_namespace(
    redis_url: str, capsys: Capsys, monkeypatch: Patch
) -> None:
    sign_sessions(redis_url, "dave", 2, prefix="other")
    default = cli(capsys, monkeypatch, "--url", redis_url, "--json", "sessions", "count", "dave")
    assert default.json()["count"] == 0
    other = cli(capsys, monkeypatch, "sessions", "count", "dave", "--prefix", "other", "--json",
                env={"REDIS_JWT_REDIS_URL": redis_url})  # fmt: skip
    assert other.json()["count"] == 2


def test_revoke_one_then_all(redis_url: str, capsys: Capsys, monkeypatch: Patch) -> None:
    ids = sign_sessions(redis_url, "erin", 3)
    env = {"REDIS_JWT_REDIS_URL": redis_url}
    one = cli(capsys, monkeypatch, "--json", "sessions", "revoke", "erin", ids[0], env=env)
    assert (one.code, one.json()) == (0, {"revoked": 1})
    again = cli(capsys, monkeypatch, "--json", "sessions", "revoke", "erin", ids[0], env=env)
    assert again.json() == {"revoked": 0}
    assert again.code == 1
    assert "no live session" in again.err
    rest = cli(capsys, monkeypatch, "--json", "sessions", "revoke", "erin", "--all", env=env)
    assert (rest.code, rest.json()) == (0, {"revoked": 2})
    count = cli(capsys, monkeypatch, "--json", "sessions", "count", "erin", env=env)
    assert count.json()["count"] == 0


def test_revoke_needs_an_id_or_all_but_not_both(
    redis_url: str, capsys: Capsys, monkeypatch: Patch
) -> None:
    env = {"REDIS_JWT_REDIS_URL": redis_url}
    for args in (("sessions", "revoke", "x"), ("sessions", "revoke", "x", "abc", "--all")):
        result = cli(capsys, monkeypatch, *args, env=env)
        assert result.code == 2
        assert result.err.startswith("usage:")
        assert result.err.strip().splitlines()[-1].startswith("redis-jwt sessions revoke: error:")


def test_no_secret_is_needed_and_a_configured_one_is_fine(
    redis_url: str, capsys: Capsys, monkeypatch: Patch
) -> None:
    sign_sessions(redis_url, "fay", 1)
    env = {"REDIS_JWT_REDIS_URL": redis_url, "REDIS_JWT_SECRET": SECRET}
    assert cli(capsys, monkeypatch, "--json", "sessions", "count", "fay", env=env).json() == {
        "user_id": "fay",
        "count": 1,
    }


def test_stats_counts_sessions_and_users_exactly_per_prefix(
    redis_url: str, capsys: Capsys, monkeypatch: Patch
) -> None:
    sign_sessions(redis_url, "u1", 3)
    sign_sessions(redis_url, "u:{2}*", 2)
    sign_sessions(redis_url, "u3", 4, prefix="elsewhere")
    env = {"REDIS_JWT_REDIS_URL": redis_url}
    stats = cli(capsys, monkeypatch, "--json", "stats", env=env).json()
    assert (stats["sessions"], stats["users"], stats["complete"]) == (5, 2, True)
    other = cli(capsys, monkeypatch, "stats", "--json", "--prefix", "elsewhere", env=env).json()
    assert (other["sessions"], other["users"]) == (4, 1)
    table = cli(capsys, monkeypatch, "stats", env=env)
    assert table.code == 0
    assert "sessions  5" in table.out
    assert "users     2" in table.out


def test_stats_on_the_node_layout(redis_url: str, capsys: Capsys, monkeypatch: Patch) -> None:
    sign_sessions(redis_url, "n1", 2, layout="redis-jwt")
    sign_sessions(redis_url, "n2", 1, layout="redis-jwt")
    sign_sessions(redis_url, "v1user", 1)
    env = {"REDIS_JWT_REDIS_URL": redis_url, "REDIS_JWT_LAYOUT": "redis-jwt"}
    stats = cli(capsys, monkeypatch, "--json", "stats", env=env).json()
    assert (stats["sessions"], stats["users"], stats["layout"]) == (3, 2, "redis-jwt")


def test_stats_reads_a_replica_when_there_is_one(
    redis_url: str, capsys: Capsys, monkeypatch: Patch
) -> None:
    from redis_jwt.testing import RedisServer, wait_until

    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    with RedisServer(extra_args=["--replicaof", "127.0.0.1", str(port)]) as replica:
        wait_until(
            lambda: "master_link_status:up" in str(replica.command("INFO", "replication")) or None,
            timeout_seconds=20,
            what="the replica to attach",
        )
        sign_sessions(redis_url, "r1", 2)
        env = {"REDIS_JWT_REDIS_URL": redis_url}
        seen: list[dict[str, object]] = []

        from_replica = [f"127.0.0.1:{replica.port} (replica)"]

        def counted() -> bool | None:
            # A replica that does not answer in time (a busy machine) is skipped
            # for the primary, rightly: wait for a count the replica gave.
            seen.append(cli(capsys, monkeypatch, "--json", "stats", env=env).json())
            answer = seen[-1]
            return True if answer["sources"] == from_replica and answer["sessions"] == 2 else None

        wait_until(counted, timeout_seconds=30, what="both sessions counted on the replica")
        assert seen[-1]["sources"] == from_replica


def test_usage_errors_print_usage_and_one_error_line(capsys: Capsys, monkeypatch: Patch) -> None:
    for args in (
        (),
        ("nope",),
        ("sessions",),
        ("sessions", "list"),
        ("stats", "--max-seconds", "x"),
    ):
        result = cli(capsys, monkeypatch, *args)
        assert result.code == 2, args
        lines = result.err.strip().splitlines()
        assert lines[0].startswith("usage:")
        assert sum("error:" in line for line in lines) == 1
        assert "Traceback" not in result.err


def test_expected_failures_are_one_line(capsys: Capsys, monkeypatch: Patch) -> None:
    closed = f"redis://127.0.0.1:{free_port()}/0"
    for args in (("sessions", "list", "x"), ("stats",), ("events",), ("doctor",)):
        line = cli(capsys, monkeypatch, "--url", closed, *args).assert_one_line_error(2)
        assert "cannot connect to Redis" in line
    bad = cli(capsys, monkeypatch, "--url", "http://x", "stats").assert_one_line_error(2)
    assert "redis_url must start with" in bad
    env = {"REDIS_JWT_TTL": "forever"}
    ttl = cli(capsys, monkeypatch, "stats", env=env).assert_one_line_error(2)
    assert "ttl" in ttl
    port = cli(capsys, monkeypatch, "--url", "redis://127.0.0.1:99999/0", "stats")
    port.assert_one_line_error(2)
    prefix = cli(capsys, monkeypatch, "--prefix", "a{b}", "stats").assert_one_line_error(2)
    assert "prefix" in prefix


def test_bad_user_id_is_one_line(redis_url: str, capsys: Capsys, monkeypatch: Patch) -> None:
    long_id = "x" * 600
    result = cli(capsys, monkeypatch, "--url", redis_url, "sessions", "list", long_id)
    assert "user_id" in result.assert_one_line_error(2)


def test_real_processes_print_no_traceback(redis_url: str) -> None:
    sign_sessions(redis_url, "proc", 1)
    ok = cli_process("sessions", "count", "proc", "--json", env={"REDIS_JWT_REDIS_URL": redis_url})
    assert (ok.code, ok.json()) == (0, {"user_id": "proc", "count": 1})
    closed = f"redis://127.0.0.1:{free_port()}/0"
    cli_process("--url", closed, "stats").assert_one_line_error(2)
    cli_process("--url", "redis://127.0.0.1:abc/0", "doctor").assert_one_line_error(2)
    usage = cli_process("sessions", "revoke", "x")
    assert usage.code == 2
    assert "Traceback" not in usage.err


@contextlib.contextmanager
def events_process(*args: str, env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """``python -m redis_jwt events ...``, once it says it is following; killed at the end."""
    with subprocess.Popen(
        [sys.executable, "-m", "redis_jwt", "events", *args],
        env=clean_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stderr is not None
            assert "following events" in process.stderr.readline()
            yield process
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)


def _read_line(process: subprocess.Popen[str], what: str) -> str:
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line, f"{what}: the process ended: {process.stderr.read() if process.stderr else ''}"
    return line


def _read_until(process: subprocess.Popen[str], what: str, found: Callable[[str], bool]) -> str:
    # Bounded: the connection events before it are a handful.
    for _ in range(50):
        line = _read_line(process, what)
        if found(line):
            return line
    raise AssertionError(f"no {what} line among the first 50")


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_events_prints_one_flushed_line_per_event_until_a_signal(
    redis_url: str, stop: signal.Signals
) -> None:
    with events_process("--json", env={"REDIS_JWT_REDIS_URL": redis_url}) as process:
        _read_until(process, "ready", lambda line: json.loads(line)["kind"] == "ready")

        async def act() -> None:
            async with RedisJWT(secret=SECRET, redis_url=redis_url) as auth:
                await auth.destroy(await auth.sign("watched"))

        asyncio.run(act())
        created = json.loads(_read_until(process, "created", lambda line: '"created"' in line))
        destroyed = json.loads(_read_line(process, "destroyed"))
        assert (created["kind"], destroyed["kind"]) == ("created", "destroyed")
        assert created["user_id"] == destroyed["user_id"] == "watched"
        assert created["session_id"] == destroyed["session_id"]
        assert destroyed["reason"] == "logout"
        assert set(created) == {"kind", "user_id", "session_id", "at", "reason", "error"}
        process.send_signal(stop)
        assert process.wait(timeout=20) == 0
        assert process.stderr is not None
        assert "Traceback" not in process.stderr.read()


def test_events_human_lines(redis_url: str) -> None:
    with events_process("--url", redis_url, env={}) as process:
        _read_until(process, "ready", lambda line: " ready " in line)
        ids = sign_sessions(redis_url, "human", 1)
        line = _read_until(process, "created", lambda line: " created " in line)
        assert "human" in line
        assert ids[0] in line
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0


async def test_main_called_from_async_code_still_works(
    redis_url: str, capsys: Capsys, monkeypatch: Patch
) -> None:
    async with RedisJWT(secret=SECRET, redis_url=redis_url) as auth:
        await auth.sign("async-caller")
    result = cli(capsys, monkeypatch, "--json", "sessions", "count", "async-caller",
                 env={"REDIS_JWT_REDIS_URL": redis_url})  # fmt: skip
    assert (result.code, result.json()) == (0, {"user_id": "async-caller", "count": 1})


def _on_a_terminal(args: list[str], env: dict[str, str]) -> str:
    """Run the CLI with stdout on a pseudo-terminal; return what it printed there."""
    import pty

    leader, follower = pty.openpty()
    with subprocess.Popen(
        [sys.executable, "-m", "redis_jwt", *args],
        env=clean_env(env),
        stdout=follower,
        stderr=subprocess.DEVNULL,
    ) as process:
        os.close(follower)
        chunks = []
        try:
            while True:
                chunk = os.read(leader, 4096)
                if not chunk:
                    break
                chunks.append(chunk)
        except OSError:  # the terminal closed: the process is done
            pass
        finally:
            os.close(leader)
        assert process.wait(timeout=30) == 0
    return b"".join(chunks).decode()


def test_colour_only_on_a_terminal_and_never_with_no_color(redis_url: str) -> None:
    ids = sign_sessions(redis_url, "tty", 1)
    env = {"REDIS_JWT_REDIS_URL": redis_url}
    coloured = _on_a_terminal(["sessions", "list", "tty"], env)
    assert "\x1b[" in coloured
    assert ids[0] in coloured
    plain = _on_a_terminal(["sessions", "list", "tty"], {**env, "NO_COLOR": "1"})
    assert "\x1b[" not in plain
    assert ids[0] in plain


def test_a_command_waits_for_a_busy_redis(
    own_server: RedisServer, capsys: Capsys, monkeypatch: Patch
) -> None:
    """A command's Redis calls may take 5 s (a request's default deadline is 0.5 s)."""
    sign_sessions(own_server.url, "gail", 2)
    env = {"REDIS_JWT_REDIS_URL": own_server.url}
    own_server.pause()
    resume = threading.Timer(1.5, own_server.resume)
    resume.start()
    try:
        result = cli(capsys, monkeypatch, "--json", "sessions", "count", "gail", env=env)
    finally:
        resume.join()
    assert result.code == 0, result.err
    assert result.json() == {"user_id": "gail", "count": 2}


def test_the_timeout_variable_sets_a_command_deadline(
    own_server: RedisServer, capsys: Capsys, monkeypatch: Patch
) -> None:
    env = {"REDIS_JWT_REDIS_URL": own_server.url, "REDIS_JWT_TIMEOUT_SECONDS": "0.2"}
    own_server.pause()
    try:
        result = cli(capsys, monkeypatch, "sessions", "count", "gail", env=env)
    finally:
        own_server.resume()
    assert "did not answer" in result.assert_one_line_error(2)
