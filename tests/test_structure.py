"""The structure the code relies on: one Redis boundary, one script registry."""

from __future__ import annotations

import ast
from importlib import resources
from pathlib import Path

from redis.asyncio import Redis

from redis_jwt import RedisJWT
from redis_jwt._redis.scripts import SCRIPTS
from redis_jwt.testing import RedisServer

SECRET = "a-structure-test-secret-of-at-least-32-bytes"
PACKAGE = Path(__file__).resolve().parents[1] / "src" / "redis_jwt"
# Where redis-py may be imported: the boundary, the compat modules, and the
# parts that are no library core: the test harness, and the operator's command
# line, whose doctor and stats talk to each node of a deployment on their own.
ALLOWED = ("_redis/", "_compat.py", "_compat_cluster.py", "testing/", "_cli/")


def _imports_redis(path: Path) -> bool:
    tree = ast.parse(path.read_text("utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(
            a.name == "redis" or a.name.startswith("redis.") for a in node.names
        ):
            return True
        if (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and node.module is not None
            and (node.module == "redis" or node.module.startswith("redis."))
        ):
            return True
    return False


def test_only_the_boundary_imports_redis_py() -> None:
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in sorted(PACKAGE.rglob("*.py"))
        if not str(path.relative_to(PACKAGE)).startswith(ALLOWED) and _imports_redis(path)
    ]
    assert offenders == []


def test_the_registry_holds_every_lua_file() -> None:
    folder = resources.files("redis_jwt") / "scripts"
    files = {entry.name[:-4] for entry in folder.iterdir() if entry.name.endswith(".lua")}
    assert set(SCRIPTS) == files
    assert "node_touch" in SCRIPTS


async def test_opening_preloads_every_script(own_server: RedisServer) -> None:
    """node_touch.lua included: a fresh server knows every script once a RedisJWT opened."""
    async with (
        Redis.from_url(own_server.url) as raw,
        RedisJWT(secret=SECRET, redis_url=own_server.url, layout="redis-jwt"),
    ):
        shas = [script.sha for script in SCRIPTS.values()]
        assert await raw.script_exists(*shas) == [True] * len(shas)
