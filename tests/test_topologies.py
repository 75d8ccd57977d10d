"""The same behaviour on one server, on a 3-primary Cluster and behind Sentinel."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import pytest
from starlette.types import Receive, Scope, Send

from redis_jwt import RedisJWT, errors
from redis_jwt.starlette import RedisJWTMiddleware

from .conftest import SECRET
from .events_helpers import Recorder, settle
from .topologies import (  # noqa: F401 (fixtures)
    Topology,
    cluster_topology_fixture,
    sentinel_topology_fixture,
    slot_of,
    standalone_topology_fixture,
    topology_fixture,
)
from .web_helpers import bearer, client

USERS = [f"user-{n}" for n in range(24)]


async def test_core_calls_for_users_on_every_shard(topology: Topology) -> None:
    async with RedisJWT(secret=SECRET, redis_url=topology.url, max_sessions=3) as auth:
        tokens = {user: [await auth.sign(user) for _ in range(2)] for user in USERS}
        for user, pair in tokens.items():
            sessions = [await auth.verify(token) for token in pair]
            assert {s.user_id for s in sessions} == {user}
            assert await auth.count(user) == 2
            listed = await auth.sessions(user)
            assert {i.session_id for i in listed} == {s.session_id for s in sessions}
        if topology.cluster is not None:
            owners = {
                topology.cluster.node_for_slot(slot_of(auth.layout.index_key(u))).port
                for u in USERS
            }
            assert owners == {node.port for node in topology.cluster.primaries()}
        # limits: a 4th and 5th session evict the oldest ones
        first = tokens[USERS[0]]
        extra = [await auth.sign(USERS[0]) for _ in range(2)]
        assert await auth.count(USERS[0]) == 3
        with pytest.raises(errors.SessionNotFound):
            await auth.verify(first[0])
        await auth.verify(extra[-1])
        # destroy, revoke, destroy_all
        for user in USERS[1:]:
            one, two = tokens[user]
            assert await auth.destroy(one) is True
            assert await auth.destroy(one) is False
            with pytest.raises(errors.SessionNotFound):
                await auth.verify(one)
            sid = (await auth.verify(two)).session_id
            assert await auth.revoke(user, sid) is True
            assert await auth.count(user) == 0
        assert await auth.destroy_all(USERS[0]) == 3
        assert await auth.sessions(USERS[0]) == []


async def test_fifty_concurrent_single_session_signs_leave_exactly_one(
    topology: Topology,
) -> None:
    async with RedisJWT(secret=SECRET, redis_url=topology.url, multiple=False) as auth:
        results = await asyncio.gather(
            *(auth.sign("solo") for _ in range(50)), return_exceptions=True
        )
        # On a cold Cluster client the burst opens a connection per call; on a busy
        # machine some calls may end in a fast StoreError (uncertain: applied or
        # not). Whatever happened, one session stands, never two.
        tokens = [r for r in results if isinstance(r, str)]
        refused = [r for r in results if not isinstance(r, str)]
        assert all(isinstance(r, errors.StoreError) for r in refused), refused
        assert tokens
        assert await auth.count("solo") == 1
        alive = []
        for token in tokens:
            with contextlib.suppress(errors.SessionNotFound):
                alive.append(await auth.verify(token))
        # The one left is a returned token's, unless the last sign applied was one
        # whose caller got a StoreError.
        assert len(alive) == 1 if not refused else len(alive) <= 1


async def test_with_session_and_sliding(topology: Topology) -> None:
    async with RedisJWT(secret=SECRET, redis_url=topology.url, ttl=3, sliding=True) as auth:
        token = await auth.sign("u", data_session={"cart": [1, 2]}, data_token={"r": "x"})
        session = await auth.verify(token, with_session=True)
        assert session.data_session == {"cart": [1, 2]}
        assert session.data_token == {"r": "x"}
        for _ in range(3):  # 3.6 s in all: alive only because each verify slides
            await asyncio.sleep(1.2)
            assert (await auth.verify(token)).ttl >= 2


@pytest.mark.slow
async def test_a_second_instance_hears_destroyed_and_expired(topology: Topology) -> None:
    async with (
        RedisJWT(secret=SECRET, redis_url=topology.url, listen=True) as a,
        RedisJWT(secret=SECRET, redis_url=topology.url, listen=True) as b,
    ):
        seen = Recorder(b)
        users = USERS[:6]
        gone = [await a.sign(user) for user in users]
        for token in gone:
            await a.destroy(token)
        signed = time.monotonic()
        for user in users:
            await a.sign(user, ttl=1)
        await seen.wait_for(
            lambda r: len(r.of("destroyed")) == 6 and len(r.of("expired")) == 6,
            timeout_seconds=6,
            what="6 destroyed and 6 expired",
        )
        assert time.monotonic() - signed < 4
        await settle()
        assert sorted(e.user_id or "" for e in seen.of("expired")) == sorted(users)
        assert {e.reason for e in seen.of("destroyed")} == {"logout"}


async def _hello(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": scope["state"]["user"].user_id.encode()})


async def test_the_middleware_answers_200_then_401(topology: Topology) -> None:
    async with RedisJWT(secret=SECRET, redis_url=topology.url) as auth:
        app = RedisJWTMiddleware(_hello, auth=auth)
        async with client(app) as http:
            for user in USERS[:6]:
                token = await auth.sign(user)
                ok = await http.get("/", headers=bearer(token))
                assert (ok.status_code, ok.text) == (200, user)
                await auth.destroy(token)
                gone = await http.get("/", headers=bearer(token))
                assert gone.status_code == 401


REPLICAS = {"standalone": 0, "cluster": 1, "sentinel": 2}


async def test_wait_replicas_confirms_or_reports_and_never_fails_the_destroy(
    topology: Topology, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="redis_jwt")
    have = REPLICAS[topology.kind]
    for wanted in {max(have, 1), have + 1}:
        async with RedisJWT(
            secret=SECRET, redis_url=topology.url, wait_replicas=wanted, wait_timeout_seconds=0.05
        ) as auth:
            seen = Recorder(auth)
            tokens = [await auth.sign(user) for user in USERS[:3]]
            assert await auth.destroy(tokens[0]) is True
            session = await auth.verify(tokens[1])
            assert await auth.revoke(session.user_id, session.session_id) is True
            assert await auth.destroy_all(USERS[2]) == 1
            assert await auth.destroy(tokens[0]) is False  # nothing ended: no WAIT
            errors_seen = [e for e in seen.of("error") if e.reason == "wait_replicas"]
            if wanted <= have:
                assert errors_seen == []
            else:
                assert len(errors_seen) == 3
                assert isinstance(errors_seen[0].error, errors.StoreError)
                assert f"{have} of {wanted} replicas" in str(errors_seen[0].error)
                assert f"{have} of {wanted} replicas confirmed it" in caplog.text
