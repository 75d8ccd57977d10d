"""Python and the real Node package redis-jwt 1.4.0 sharing sessions on one Redis.

Deselected from the default run (marker ``interop``); ``nox -s interop`` installs
the package into ``tests/interop/node_modules`` and runs them, failing if it is missing.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from redis_jwt import RedisJWT, errors
from redis_jwt.testing import RedisServer

from .conftest import SECRET

HERE = Path(__file__).parent / "interop"
NODE = shutil.which("node")

pytestmark = pytest.mark.interop


class NodeRedisJWT:
    """The Node package in a child process (tests/interop/driver.js), one command at a time."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, server: RedisServer) -> NodeRedisJWT:
        env = {
            **os.environ,
            "RJWT_HOST": "127.0.0.1",
            "RJWT_PORT": str(server.port),
            "RJWT_SECRET": SECRET,
            "FORCE_COLOR": "0",
        }
        process = await asyncio.create_subprocess_exec(
            NODE or "node",
            str(HERE / "driver.js"),
            cwd=HERE,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        node = cls(process)
        assert await node.call("ready") is True
        return node

    async def call(self, op: str, **command: Any) -> Any:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(json.dumps({"op": op, **command}).encode() + b"\n")
        await self.process.stdin.drain()
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout=15)
        if not line:
            raise RuntimeError(f"the Node driver exited with {await self.process.wait()}")
        reply = json.loads(line)
        if not reply["ok"]:
            raise NodeRejectionError(reply["error"])
        return reply["value"]

    async def sign(self, user_id: str, mode: str = "single", **options: Any) -> str:
        token: str = await self.call("sign", mode=mode, id=user_id, options=options)
        return token

    async def verify(self, token: str, *, with_session: bool = False) -> Any:
        return await self.call("verify", mode="multi", token=token, withSession=with_session)

    async def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), timeout=10)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        assert self.process.returncode == 0


class NodeRejectionError(Exception):
    """The Node package rejected a call (its errors are plain strings)."""


@pytest.fixture
async def node(redis_server: RedisServer, redis_url: str) -> AsyncIterator[NodeRedisJWT]:
    driver = await NodeRedisJWT.start(redis_server)
    yield driver
    await driver.close()


@pytest.fixture
async def py(redis_url: str) -> AsyncIterator[RedisJWT]:
    async with RedisJWT(
        secret=SECRET, redis_url=redis_url, layout="redis-jwt", ttl="15 minutes"
    ) as auth:
        yield auth


@pytest.fixture
async def py_single(redis_url: str) -> AsyncIterator[RedisJWT]:
    async with RedisJWT(
        secret=SECRET, redis_url=redis_url, layout="redis-jwt", ttl="15 minutes", multiple=False
    ) as auth:
        yield auth


def rjwt(token: str) -> str:
    key: str = jwt.decode(token, options={"verify_signature": False})["rjwt"]
    return key


async def test_python_signs_node_verifies(py: RedisJWT, node: NodeRedisJWT) -> None:
    token = await py.sign("py-user", data_token={"from": "python"}, data_session={"lang": "py"})
    result = await node.verify(token, with_session=True)
    assert result["id"] == "py-user"
    assert result["rjwt"] == rjwt(token)
    assert result["dataToken"] == {"from": "python"}
    assert result["dataSession"] == {"lang": "py"}
    assert 898 <= result["ttl"] <= 900
    assert "dataSession" not in await node.verify(token)
    bare = await py.sign("py-bare")
    plain = await node.verify(bare, with_session=True)
    assert set(plain) == {"rjwt", "iat", "id", "ttl"}
    assert await py.destroy(bare)
    assert await node.verify(bare) is False


async def test_node_signs_python_verifies(py: RedisJWT, node: NodeRedisJWT) -> None:
    token = await node.sign(
        "node-user",
        ttl="15 minutes",
        dataToken={"from": "node"},
        dataSession={"lang": "js", "n": 1},
    )
    session = await py.verify(token, with_session=True)
    assert (session.user_id, session.session_id) == ("node-user", rjwt(token).split(":")[1])
    assert session.data_token == {"from": "node"}
    assert session.data_session == {"lang": "js", "n": 1}
    assert 898 <= session.ttl <= 900
    assert set(session.claims) == {"rjwt", "dataToken", "iat"}
    forever = await node.sign("node-bare")
    bare = await py.verify(forever, with_session=True)
    assert (bare.data_token, bare.data_session, bare.ttl) == ({}, {}, -1)
    assert await node.call("destroy", key=rjwt(token)) == 1
    with pytest.raises(errors.SessionNotFound):
        await py.verify(token)


async def test_tokens_are_the_same_bytes_on_both_sides(py: RedisJWT, node: NodeRedisJWT) -> None:
    node_token = await node.sign("same", ttl="15 minutes", dataToken={"a": 1}, dataSession={"b": 2})
    py_token = await py.sign("same", data_token={"a": 1}, data_session={"b": 2})
    node_claims = jwt.decode(node_token, SECRET, algorithms=["HS256"])
    # Re-sign Node's claims as Python would, with Node's own session id and iat.
    key = node_claims["rjwt"]
    replay = jwt.encode(
        {"rjwt": key, "dataToken": {"a": 1}, "iat": node_claims["iat"]}, SECRET, algorithm="HS256"
    )
    assert replay == node_token
    assert py_token.split(".")[0] == node_token.split(".")[0]
    values = await node.call("values", id="same")
    assert sorted(values) == sorted(
        [
            f'{{"rjwt":"{key}","dataSession":{{"b":2}}}}',
            f'{{"rjwt":"{rjwt(py_token)}","dataSession":{{"b":2}}}}',
        ]
    )


async def test_node_single_sign_ends_python_sessions(py: RedisJWT, node: NodeRedisJWT) -> None:
    first = await py.sign("shared")
    second = await py.sign("shared")
    assert await node.call("count", id="shared") == 2
    node_token = await node.sign("shared", mode="single", ttl="15 minutes")
    for token in (first, second):
        with pytest.raises(errors.SessionNotFound):
            await py.verify(token)
    assert (await py.verify(node_token)).user_id == "shared"
    assert await py.count("shared") == 1


async def test_python_single_sign_ends_node_sessions(
    py_single: RedisJWT, node: NodeRedisJWT
) -> None:
    a = await node.sign("shared", mode="multi", ttl="15 minutes")
    b = await node.sign("shared", mode="multi", ttl="15 minutes")
    other = await node.sign("sharedx", mode="multi", ttl="15 minutes")
    token = await py_single.sign("shared", data_session={"only": True})
    assert await node.verify(a) is False
    assert await node.verify(b) is False
    assert (await node.verify(other))["id"] == "sharedx"
    assert (await node.verify(token, with_session=True))["dataSession"] == {"only": True}
    assert await node.call("count", id="shared") == 1
    again = await py_single.sign("shared")
    assert await node.verify(token) is False
    assert (await node.verify(again))["id"] == "shared"


async def test_lists_and_logout_everywhere_cover_both_sides(
    py: RedisJWT, node: NodeRedisJWT
) -> None:
    await node.sign("both", mode="multi", ttl="1 hour", dataSession={"side": "node"})
    await py.sign("both", data_session={"side": "python"})
    infos = await py.sessions("both")
    assert sorted(i.data_session["side"] for i in infos) == ["node", "python"]
    assert await py.count("both") == await node.call("count", id="both") == 2
    assert await py.destroy_all("both") == 2
    assert await node.call("count", id="both") == 0


async def test_node_rejects_what_python_refuses_to_sign(py: RedisJWT, node: NodeRedisJWT) -> None:
    # Python never writes what Node would misread; Node itself truncates "a:b" to "a".
    with pytest.raises(errors.ConfigurationError):
        await py.sign("a:b")
    token = await node.sign("a:b", mode="multi", ttl="15 minutes")
    assert (await node.verify(token))["id"] == "a"
    with pytest.raises(errors.InvalidToken):
        await py.verify(token)
    with pytest.raises(NodeRejectionError, match="Error verify token"):
        await node.verify(token[:-2])
