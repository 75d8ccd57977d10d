"""``redis-jwt demo`` as a real process: what it says before and while it serves."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx

from redis_jwt.testing import RedisBinary, RedisServer, free_port, wait_until

from .cli_helpers import clean_env, cli_process


def test_a_bad_redis_url_is_one_line_and_exit_2_before_any_claim() -> None:
    for url in ("http://example.invalid/", "redis://127.0.0.1:notaport/0", "redis+sentinel://h/"):
        result = cli_process("demo", "--port", str(free_port()), env={"REDIS_URL": url})
        assert "REDIS_URL" in result.assert_one_line_error(2)
        assert "open http" not in result.out


def test_a_port_out_of_range_is_a_usage_error() -> None:
    for port in ("70000", "0", "http"):
        result = cli_process("demo", "--port", port)
        assert result.code == 2
        assert result.err.startswith("usage:")
        assert "Traceback" not in result.err
        assert "error: argument --port" in result.err


def test_a_port_in_use_is_one_line_printed_before_anything_claims_success(
    redis_url: str,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = cli_process("demo", "--port", str(port), env={"REDIS_URL": redis_url})
    line = result.assert_one_line_error(2)
    assert f"127.0.0.1:{port}" in line
    assert "open http" not in result.out


@contextlib.contextmanager
def demo(tmp_path: Path, redis_url: str) -> Iterator[tuple[str, Path, subprocess.Popen[bytes]]]:
    """The demo on a free port against ``redis_url``, serving (whatever /health says)."""
    port = free_port()
    log = tmp_path / "demo.log"
    with (
        log.open("wb") as out,
        subprocess.Popen(
            [sys.executable, "-m", "redis_jwt", "demo", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=clean_env({"REDIS_URL": redis_url}),
        ) as process,
    ):
        base = f"http://127.0.0.1:{port}"
        try:

            def serving() -> bool | None:
                assert process.poll() is None, log.read_text()
                with contextlib.suppress(httpx.TransportError):
                    return httpx.get(f"{base}/health", timeout=2).status_code > 0
                return None

            wait_until(serving, timeout_seconds=30, what="the demo to serve")
            yield base, log, process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)


def test_an_unreachable_redis_is_said_at_once_then_503s_until_it_is_back(
    tmp_path: Path, redis_jwt_binary: RedisBinary
) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    with demo(tmp_path, url) as (base, log, process):
        lines = log.read_text().splitlines()
        unreachable = [line for line in lines if "unreachable" in line]
        assert len(unreachable) == 1, lines
        opened = next(i for i, line in enumerate(lines) if "open http" in line)
        assert lines.index(unreachable[0]) < opened
        assert httpx.get(f"{base}/health", timeout=5).status_code == 503
        login = httpx.post(f"{base}/api/login", json={"user": "ann"}, timeout=5)
        assert login.status_code == 503
        with RedisServer(redis_jwt_binary, port=port):
            wait_until(
                lambda: httpx.get(f"{base}/health", timeout=5).status_code == 200 or None,
                timeout_seconds=30,
                what="the demo to reach Redis again",
            )
            assert httpx.post(f"{base}/api/login", json={"user": "ann"}, timeout=5).is_success
            wait_until(
                lambda: "is back" in log.read_text() or None,
                timeout_seconds=30,
                what="the console to say Redis is back",
            )
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    assert "Traceback" not in log.read_text()


def test_the_demo_serves_and_stops_cleanly(tmp_path: Path, redis_url: str) -> None:
    with demo(tmp_path, redis_url) as (base, log, process):
        assert httpx.get(f"{base}/health", timeout=5).status_code == 200
        assert "unreachable" not in log.read_text()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
    assert "Traceback" not in log.read_text()
