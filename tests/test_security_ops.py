"""destroy_all(keep=), rotate and update: one atomic script each, on the three topologies."""

from __future__ import annotations

import asyncio
import contextlib
import time
from importlib import resources

import jwt
import pytest
import redis.exceptions

from redis_jwt import ClientInfo, RedisJWT, errors
from redis_jwt.testing import RedisServer

from .conftest import SECRET
from .events_helpers import Recorder
from .topologies import (  # noqa: F401 (fixtures)
    Topology,
    cluster_topology_fixture,
    sentinel_topology_fixture,
    standalone_topology_fixture,
    topology_fixture,
)


async def alive(auth: RedisJWT, token: str) -> bool:
    """Whether ``token``'s session still verifies."""
    try:
        await auth.verify(token)
    except errors.SessionNotFound:
        return False
    return True


async def test_destroy_all_keep_ends_every_other_session(topology: Topology) -> None:
    async with RedisJWT(secret=SECRET, redis_url=topology.url) as auth:
        recorder = Recorder(auth)
        tokens = [await auth.sign("alice") for _ in range(4)]
        bobs = await auth.sign("bob")
        mine = await auth.verify(tokens[2])
        others = {(await auth.verify(t)).session_id for t in tokens} - {mine.session_id}

        assert await auth.destroy_all("alice", keep=mine.session_id) == 3

        assert [await alive(auth, t) for t in tokens] == [False, False, True, False]
        assert await alive(auth, bobs)
        assert await auth.count("alice") == 1
        assert [i.session_id for i in await auth.sessions("alice")] == [mine.session_id]
        ended = recorder.of("destroyed")
        assert {e.session_id for e in ended} == others
        assert {(e.user_id, e.reason) for e in ended} == {("alice", "destroy_all")}
        # Nothing else to end; the kept session stays listed and keeps its index entry.
        assert await auth.destroy_all("alice", keep=mine.session_id) == 0
        assert await auth.count("alice") == 1
        newer = await auth.sign("alice")
        assert await auth.count("alice") == 2
        # A kept id that is not a live session of the user spares nothing.
        assert await auth.destroy_all("alice", keep=(await auth.verify(bobs)).session_id) == 2
        assert not await alive(auth, newer)
        assert await alive(auth, bobs)


async def test_destroy_all_keep_racing_with_concurrent_signs(topology: Topology) -> None:
    # Two instances (two connection pools): the signs and the destroy_all really interleave.
    async with (
        RedisJWT(secret=SECRET, redis_url=topology.url) as auth,
        RedisJWT(secret=SECRET, redis_url=topology.url) as other,
    ):
        recorder = Recorder(auth)
        before = [await other.sign("carol") for _ in range(5)]
        mine = await auth.verify(before[0])

        async def sign_some(count: int) -> list[str]:
            signed = []
            for _ in range(count):
                signed.append(await other.sign("carol"))
                await asyncio.sleep(0)
            return signed

        batches = await asyncio.gather(
            sign_some(15),
            sign_some(15),
            auth.destroy_all("carol", keep=mine.session_id),
            sign_some(15),
        )
        ended_count = batches[2]
        assert isinstance(ended_count, int)
        concurrent = [t for batch in batches if isinstance(batch, list) for t in batch]
        every = before + concurrent
        live = {t for t in every if await alive(auth, t)}
        # Every session is either ended (and counted, and announced once) or alive: none
        # lost, none ended twice, the kept one alive, the earlier ones all ended.
        assert before[0] in live
        assert not live & set(before[1:])
        assert ended_count == len(every) - len(live)
        assert ended_count >= 4
        assert await auth.count("carol") == len(live)
        destroyed = recorder.session_ids("destroyed")
        assert len(destroyed) == len(set(destroyed)) == ended_count
        assert mine.session_id not in destroyed


async def test_rotate_gives_a_new_id_with_the_same_session(topology: Topology) -> None:
    async with RedisJWT(secret=SECRET, redis_url=topology.url, ttl="1 hour") as auth:
        recorder = Recorder(auth)
        token = await auth.sign(
            "dave",
            data_token={"role": "user"},
            data_session={"cart": [1, 2]},
            client=ClientInfo(ip="203.0.113.7", user_agent="Phone"),
        )
        before = await auth.verify(token)
        [listed_before] = await auth.sessions("dave")

        rotated = await auth.rotate(token)

        with pytest.raises(errors.SessionNotFound):
            await auth.verify(token)
        after = await auth.verify(rotated, with_session=True)
        assert after.session_id != before.session_id
        assert (after.user_id, after.data_token) == ("dave", {"role": "user"})
        assert after.data_session == {"cart": [1, 2]}
        assert after.issued_at == before.issued_at
        assert after.max_expires_at == before.max_expires_at
        assert 0 < after.ttl <= before.ttl
        [listed] = await auth.sessions("dave")
        assert listed.session_id == after.session_id
        assert (listed.issued_at, listed.idle_ttl) == (listed_before.issued_at, 3600)
        assert (listed.ip, listed.user_agent) == ("203.0.113.7", "Phone")
        assert [(e.kind, e.session_id, e.reason) for e in recorder.events[-2:]] == [
            ("destroyed", before.session_id, "rotated"),
            ("created", after.session_id, None),
        ]
        # The old token works for nothing more; the new one for everything.
        with pytest.raises(errors.SessionNotFound):
            await auth.rotate(token)
        assert await auth.destroy(rotated) is True


async def test_a_rotated_session_keeps_its_place_in_eviction_order(topology: Topology) -> None:
    async with RedisJWT(secret=SECRET, redis_url=topology.url, max_sessions=2) as auth:
        first = await auth.sign("erin")
        second = await auth.sign("erin")
        first = await auth.rotate(first)  # still the oldest session
        third = await auth.sign("erin")
        assert [await alive(auth, t) for t in (first, second, third)] == [False, True, True]
        assert await auth.count("erin") == 2


async def test_rotate_and_update_on_dead_sessions_change_nothing(topology: Topology) -> None:
    async with RedisJWT(secret=SECRET, redis_url=topology.url) as auth:
        recorder = Recorder(auth)
        destroyed = await auth.sign("frank", data_session={"n": 1})
        await auth.destroy(destroyed)
        idle = await auth.sign("frank", ttl="1 second")
        for _ in range(400):  # the idle session expires by itself (bounded wait)
            if not await alive(auth, idle):
                break
            await asyncio.sleep(0.02)
        assert not await alive(auth, idle)
        events = len(recorder.events)
        for token in (destroyed, idle):
            with pytest.raises(errors.SessionNotFound):
                await auth.rotate(token)
            with pytest.raises(errors.SessionNotFound):
                await auth.update(token, data_session={"n": 2})
        assert await auth.count("frank") == 0
        assert await auth.sessions("frank") == []
        assert len(recorder.events) == events  # no created/destroyed for what did not happen
        # No bare hash was recreated for the dead sessions.
        for token in (destroyed, idle):
            with contextlib.suppress(errors.SessionNotFound):
                await auth.verify(token)
            key = auth.layout.session_key("frank", _sid(token))
            assert await auth.redis.exists(key) == 0


def _sid(token: str) -> str:
    claims = jwt.decode(token, options={"verify_signature": False})
    sid: str = claims["sid"]
    return sid


async def test_update_replaces_the_private_data_of_a_live_session(topology: Topology) -> None:
    async with RedisJWT(secret=SECRET, redis_url=topology.url, ttl="1 hour") as auth:
        token = await auth.sign("gina", data_session={"theme": "dark", "n": 1})
        before = await auth.verify(token)
        session = await auth.update(token, data_session={"n": 2})
        assert session.data_session == {"n": 2}
        assert session.session_id == before.session_id
        assert session.ttl <= before.ttl  # the idle ttl is left as it is
        assert (await auth.verify(token, with_session=True)).data_session == {"n": 2}
        [listed] = await auth.sessions("gina")
        assert listed.data_session == {"n": 2}
        cleared = await auth.update(token, data_session=None)
        assert cleared.data_session == {}
        assert (await auth.verify(token, with_session=True)).data_session == {}
        with pytest.raises(errors.ConfigurationError):
            await auth.update(token, data_session=[1, 2])  # type: ignore[arg-type]
        with pytest.raises(errors.ConfigurationError):
            await auth.update(token, data_session={"x": object()})
        with pytest.raises(errors.InvalidToken):
            await auth.update(token + "x", data_session={})
        assert (await auth.verify(token, with_session=True)).data_session == {}


async def test_operations_on_a_closed_instance_are_refused(redis_url: str) -> None:
    auth = RedisJWT(secret=SECRET, redis_url=redis_url)
    async with auth:
        token = await auth.sign("hal")
    with pytest.raises(errors.ConfigurationError):
        await auth.rotate(token)
    with pytest.raises(errors.ConfigurationError):
        await auth.update(token, data_session={})


async def test_the_node_layout_refuses_these_operations_clearly(redis_url: str) -> None:
    with pytest.raises(errors.ConfigurationError, match="layout v1"):
        RedisJWT(secret=SECRET, redis_url=redis_url, layout="redis-jwt", track_activity=True)
    async with RedisJWT(secret=SECRET, redis_url=redis_url, layout="redis-jwt") as node:
        token = await node.sign("ivy")
        sid = (await node.verify(token)).session_id
        with pytest.raises(errors.ConfigurationError, match="layout v1"):
            await node.rotate(token)
        with pytest.raises(errors.ConfigurationError, match="layout v1"):
            await node.update(token, data_session={})
        with pytest.raises(errors.ConfigurationError, match="layout v1"):
            await node.destroy_all("ivy", keep=sid)
        with pytest.raises(errors.ConfigurationError, match="layout v1"):
            await node.sign("ivy", client=ClientInfo(ip="198.51.100.1"))
        assert await node.count("ivy") == 1


async def test_a_rotated_session_expires_under_its_new_id_only(redis_url: str) -> None:
    async with RedisJWT(secret=SECRET, redis_url=redis_url, listen=True, ttl=2) as auth:
        recorder = Recorder(auth)
        token = await auth.sign("jo")
        old = (await auth.verify(token)).session_id
        new = (await auth.verify(await auth.rotate(token))).session_id
        await recorder.wait_for(
            lambda r: new in r.session_ids("expired"),
            timeout_seconds=15,
            what="the rotated session's expiry",
        )
        assert old not in recorder.session_ids("expired")
        assert recorder.session_ids("expired").count(new) == 1


async def test_a_rotate_or_update_that_failed_never_applies_later(own_server: RedisServer) -> None:
    # A paused (SIGSTOP) server reads the calls only once it resumes, after the
    # callers were told they failed: the scripts' deadlines refuse them then.
    async with RedisJWT(secret=SECRET, redis_url=own_server.url) as auth:
        token = await auth.sign("kim", data_session={"v": 1})
        own_server.pause()
        try:
            with pytest.raises(errors.StoreError):
                await auth.rotate(token)
            with pytest.raises(errors.StoreError):
                await auth.update(token, data_session={"v": 2})
        finally:
            own_server.resume()
        for _ in range(250):  # bounded: until the client is back
            with contextlib.suppress(errors.StoreError):
                await auth.ping()
                break
            await asyncio.sleep(0.02)
        session = await auth.verify(token, with_session=True)
        assert session.data_session == {"v": 1}
        assert await auth.count("kim") == 1


async def test_a_rotation_run_twice_returns_its_first_outcome(auth: RedisJWT) -> None:
    # A retry after a lost reply reaches Redis a second time: the call marker answers it.
    token = await auth.sign("lee")
    old = _sid(token)
    new = "N" * 22
    layout = auth.layout
    keys = (
        layout.session_key("lee", old),
        layout.session_key("lee", new),
        layout.index_key("lee"),
        f"{layout.user_tag('lee')}:q:{new}",
    )
    deadline = int((time.time() + 5) * 1000)
    args = (old, new, "", "lee", "test", deadline)
    source = (resources.files("redis_jwt") / "scripts" / "rotate.lua").read_text("utf-8")
    first = await auth.redis.eval(source, 4, *keys, *args)
    second = await auth.redis.eval(source, 4, *keys, *args)
    assert int(first) > 0
    assert second == first
    assert [i.session_id for i in await auth.sessions("lee")] == [new]
    late = (old, "M" * 22, "", "lee", "test", int((time.time() - 1) * 1000))
    with pytest.raises(redis.exceptions.ResponseError, match="late"):
        await auth.redis.eval(source, 4, *keys[:3], f"{layout.user_tag('lee')}:q:late", *late)
