"""The shipped example apps: their self-checks pass, and no login body makes them answer 500."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import httpx
import pytest

from .web_helpers import ASGIApp

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# Login bodies a client can send: none of them may be a 500.
HOSTILE_LOGINS: dict[str, bytes] = {
    "lone surrogate password": b'{"username": "alice", "password": "\\ud800"}',
    "lone surrogate user": b'{"username": "\\ud800", "password": "wonderland"}',
    "surrogate pair halves swapped": b'{"username": "alice", "password": "\\udc00\\ud800"}',
    "NUL in the password": b'{"username": "alice", "password": "won\\u0000derland"}',
    "spaces-only user": b'{"username": "   ", "password": "x"}',
    "not JSON": b"\xff{",
    "a JSON array": b'["alice", "wonderland"]',
    "numbers": b'{"username": 1, "password": 2}',
    "empty object": b"{}",
}


def load(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` (the examples are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered first: dataclasses and type hints look the module up by name.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@contextlib.asynccontextmanager
async def serving(name: str, redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The example's app with its lifespan running, behind an in-process client."""
    app: Any = cast(Callable[[str], object], load(name).create_app)(redis_url)
    lifespan = app.lifespan() if name == "litestar_app" else app.router.lifespan_context(app)
    transport = httpx.ASGITransport(app=cast(ASGIApp, app))
    async with lifespan, httpx.AsyncClient(transport=transport, base_url="https://app") as http:
        yield http


@pytest.mark.parametrize("name", ["fastapi_app", "starlette_app", "litestar_app"])
@pytest.mark.parametrize("body", list(HOSTILE_LOGINS.values()), ids=list(HOSTILE_LOGINS))
async def test_no_login_body_is_a_500(name: str, body: bytes, redis_url: str) -> None:
    async with serving(name, redis_url) as http:
        answer = await http.post(
            "/login", content=body, headers={"content-type": "application/json"}
        )
        # The Starlette example asks no password: a valid name there is a 200.
        assert answer.status_code in (200, 400, 401, 422), answer.text
        if answer.status_code != 200:
            assert isinstance(answer.json()["detail"], str | list)
        elif name != "starlette_app":
            raise AssertionError(f"{name} logged in with {body!r}")


async def test_a_lone_surrogate_password_is_a_401_in_the_fastapi_example(redis_url: str) -> None:
    async with serving("fastapi_app", redis_url) as http:
        answer = await http.post(
            "/login",
            content=HOSTILE_LOGINS["lone surrogate password"],
            headers={"content-type": "application/json"},
        )
        assert answer.status_code == 401
        assert answer.json() == {"detail": "Wrong username or password"}
        good = await http.post("/login", json={"username": "alice", "password": "wonderland"})
        assert good.status_code == 200


@pytest.mark.parametrize(
    "script",
    [
        ["quickstart.py"],
        ["fastapi_app.py", "--check"],
        ["starlette_app.py", "--check"],
        ["litestar_app.py", "--check"],
        ["worker.py", "--check"],
    ],
    ids=lambda s: s[0],
)
def test_the_examples_check_themselves(script: list[str], redis_url: str) -> None:
    env = {**os.environ, "REDIS_URL": redis_url}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script[0]), *script[1:]],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
