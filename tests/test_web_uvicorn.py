"""End to end over real sockets: ``python -m redis_jwt demo`` under uvicorn, driven by httpx."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from .web_helpers import demo_process


@contextlib.asynccontextmanager
async def http_client(base: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base, timeout=5) as http:
        yield http


async def login(http: httpx.AsyncClient, user: str, agent: str) -> dict[str, str]:
    # A script's login: the pair in the body (the page's login puts it in cookies).
    body = {"user": user, "transport": "bearer"}
    response = await http.post("/api/login", json=body, headers={"user-agent": agent})
    assert response.status_code == 200
    data: dict[str, str] = response.json()
    return data


def _pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def test_the_demo_end_to_end_with_its_own_redis(tmp_path: Path) -> None:
    with demo_process(tmp_path, None) as (base, log):
        output = log.read_text()
        assert "REDIS_URL is not set, so started a throwaway redis-server" in output
        async with http_client(base) as http:
            page = await http.get("/")
            assert page.status_code == 200
            assert "redis-jwt demo" in page.text
            laptop = await login(http, "alice", "Laptop/1.0")
            phone = await login(http, "alice", "Phone/2.0")
            a = {"authorization": f"Bearer {laptop['access_token']}"}
            b = {"authorization": f"Bearer {phone['access_token']}"}

            listed = (await http.get("/api/sessions", headers=a)).json()
            assert {row["user_agent"] for row in listed} == {"Laptop/1.0", "Phone/2.0"}
            assert {row["ip"] for row in listed} == {"127.0.0.1"}
            assert [row["current"] for row in listed] == [False, True]  # newest first
            for row in listed:
                assert row["issued_at"] <= row["last_seen_at"] < row["expires_at"]

            events: list[dict[str, str]] = []
            stream_open = asyncio.Event()

            async def watch_phone() -> None:
                async with http.stream("GET", "/api/events", headers=b) as response:
                    assert response.headers["content-type"].startswith("text/event-stream")
                    async for line in response.aiter_lines():
                        stream_open.set()
                        if line.startswith("data: "):
                            events.append(json.loads(line[6:]))

            watcher = asyncio.create_task(watch_phone())
            async with asyncio.timeout(5):
                await stream_open.wait()
            revoked = await http.delete(f"/api/sessions/{phone['session_id']}", headers=a)
            assert revoked.status_code == 204
            async with asyncio.timeout(5):
                await watcher  # the stream ends with its own session
            assert events[-1]["kind"] == "destroyed"
            assert events[-1]["session_id"] == phone["session_id"]
            assert events[-1]["reason"] == "revoke"

            refused = await http.get("/api/me", headers=b)
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"] == 'Bearer error="invalid_token"'
            assert len((await http.get("/api/sessions", headers=a)).json()) == 1
            missing = await http.delete(f"/api/sessions/{phone['session_id']}", headers=a)
            assert missing.status_code == 404
            assert (await http.post("/api/logout-all", headers=a)).json() == {"ended": 1}
            assert (await http.get("/api/me", headers=a)).status_code == 401
    # Stopping the demo stopped its throwaway redis-server too.
    redis_pid = int(output.split("(pid ")[1].split(")")[0])
    assert _pid_gone(redis_pid)


async def test_the_demo_uses_redis_url_when_set(tmp_path: Path, redis_url: str) -> None:
    with demo_process(tmp_path, redis_url) as (base, log):
        assert "using Redis at REDIS_URL=" in log.read_text()
        async with http_client(base) as http:
            token = (await login(http, "bob", "Test/1.0"))["access_token"]
            headers = {"authorization": f"Bearer {token}"}
            me = (await http.get("/api/me", headers=headers)).json()
            assert me["user"] == "bob"
            assert (await http.post("/api/logout", headers=headers)).json() == {"ended": True}
            assert (await http.get("/api/me", headers=headers)).status_code == 401
            bad = await http.post("/api/login", json={"user": ""})
            assert bad.status_code == 422


def test_the_command_line_explains_itself() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "redis_jwt", "--help"], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0
    assert "demo" in done.stdout
    bare = subprocess.run([sys.executable, "-m", "redis_jwt"], capture_output=True, timeout=30)
    assert bare.returncode == 2


@pytest.mark.parametrize("url", ["redis://:s3cret@127.0.0.1:1/0", "redis://user:s3cret@h:1/0"])
def test_the_demo_never_prints_a_redis_password(url: str) -> None:
    from redis_jwt.__main__ import _redacted

    assert "s3cret" not in _redacted(url)
    assert _redacted("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
