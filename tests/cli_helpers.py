"""Running ``redis-jwt`` in tests: in-process (``main([...])``) and as a real subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from redis_jwt import RedisJWT
from redis_jwt.__main__ import main

from .conftest import SECRET

__all__ = ["Result", "cli", "cli_process", "sign_sessions"]


@dataclass(frozen=True)
class Result:
    """What one run printed and returned."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        """stdout parsed as one JSON document."""
        return json.loads(self.out)

    def assert_one_line_error(self, code: int) -> str:
        """Assert exit ``code``, nothing on stdout, one line on stderr, no traceback."""
        assert self.code == code, (self.code, self.out, self.err)
        assert "Traceback" not in self.err
        lines = self.err.strip().splitlines()
        assert len(lines) == 1, self.err
        return lines[0]


def clean_env(env: Mapping[str, str]) -> dict[str, str]:
    """The process environment without REDIS_JWT_* / REDIS_URL, plus ``env``."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("REDIS_JWT_") and k not in ("REDIS_URL", "NO_COLOR")
    }
    return {**base, **env}


def cli(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    *args: str,
    env: Mapping[str, str] | None = None,
) -> Result:
    """Run ``main(args)`` in this process with only ``env`` as REDIS_JWT_* variables."""
    for name in list(os.environ):
        if name.startswith("REDIS_JWT_"):
            monkeypatch.delenv(name)
    for name, value in (env or {}).items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    code = main(list(args))
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def cli_process(*args: str, env: Mapping[str, str] | None = None, timeout: float = 60) -> Result:
    """Run ``python -m redis_jwt args`` as a real process."""
    done = subprocess.run(
        [sys.executable, "-m", "redis_jwt", *args],
        env=clean_env(env or {}),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def sign_sessions(url: str, user_id: str, n: int, **options: Any) -> list[str]:
    """Sign ``n`` sessions of ``user_id``; return their session ids (outside any loop)."""

    async def sign() -> list[str]:
        async with RedisJWT(secret=SECRET, redis_url=url, **options) as auth:
            ids = []
            for _ in range(n):
                session = await auth.verify(await auth.sign(user_id))
                ids.append(session.session_id)
            return ids

    return asyncio.run(sign())
