"""The Litestar example under a real uvicorn: HTTP and a WebSocket over real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from redis_jwt.testing import free_port

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "litestar_app.py"


@contextlib.contextmanager
def litestar_process(tmp_path: Path, redis_url: str) -> Iterator[str]:
    """Serve the example on a free loopback port; yield its base URL; stop it by PID."""
    port = free_port()
    log = tmp_path / "litestar.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, str(EXAMPLE), "--host", "127.0.0.1", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "REDIS_URL": redis_url},
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        for _ in range(600):
            assert process.poll() is None, log.read_text()
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, f"the app did not start:\n{log.read_text()}"
            time.sleep(0.05)
        yield base
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


async def test_the_litestar_example_under_uvicorn(tmp_path: Path, redis_url: str) -> None:
    with litestar_process(tmp_path, redis_url) as base:
        ws_url = base.replace("http://", "ws://") + "/ws"
        async with httpx.AsyncClient(base_url=base, timeout=5) as http:
            assert (await http.get("/me")).status_code == 401
            login = await http.post("/login", json={"username": "alice", "password": "wonderland"})
            assert login.status_code == 200
            headers = {"authorization": f"Bearer {login.json()['access_token']}"}
            assert (await http.get("/me", headers=headers)).json()["user"] == "alice"

            # A handshake without a token is refused: uvicorn turns the close into HTTP 403.
            with pytest.raises(InvalidStatus) as refused:
                async with connect(ws_url, open_timeout=5):
                    pass
            assert refused.value.response.status_code == 403

            async with connect(ws_url, additional_headers=headers, open_timeout=5) as socket:
                assert await socket.recv(decode=True) == "hello alice"
                await socket.send("hi")
                assert await socket.recv(decode=True) == "echo: hi"
                assert (await http.post("/logout", headers=headers)).json() == {"ended": True}
                async with asyncio.timeout(5):
                    await socket.wait_closed()
                assert socket.close_code == 1008
                assert socket.close_reason == "session ended"
            assert (await http.get("/me", headers=headers)).status_code == 401
