"""Events when connections fail: killed subscribers, half-open links, a restarted Redis."""

from __future__ import annotations

import asyncio
import time

import pytest

from redis_jwt import RedisJWT, errors
from redis_jwt.testing import RedisServer, TCPProxy

from .conftest import SECRET
from .events_helpers import Recorder, settle


async def test_an_expiry_is_reported_although_the_listeners_were_just_killed(
    own_server: RedisServer,
) -> None:
    async with (
        RedisJWT(secret=SECRET, redis_url=own_server.url, kea=True) as a,
        RedisJWT(secret=SECRET, redis_url=own_server.url, kea=True) as b,
    ):
        seen_a, seen_b = Recorder(a), Recorder(b)
        session = await a.verify(await a.sign("u", ttl=1))
        await asyncio.sleep(0.85)
        killed = own_server.command("CLIENT", "KILL", "TYPE", "pubsub")
        assert killed == 2
        for seen in (seen_a, seen_b):
            await seen.wait_for(
                lambda r: "expired" in r.kinds() and r.kinds()[-3:].count("ready") == 1,
                timeout_seconds=4,
                what="the expiry and the listener back",
            )
        await settle()
        for seen in (seen_a, seen_b):
            assert seen.session_ids("expired") == [session.session_id]
            kinds = seen.kinds("disconnected", "connected", "ready")
            assert kinds[-3:] == ["disconnected", "connected", "ready"]
            assert seen.of("error")[0].error is not None


async def test_a_half_open_listener_is_found_and_catches_up(redis_server: RedisServer) -> None:
    async with (
        TCPProxy("127.0.0.1", redis_server.port) as proxy,
        RedisJWT(secret=SECRET, redis_url=redis_server.url, listen=True) as a,
        RedisJWT(secret=SECRET, redis_url=proxy.url, listen=True) as b,
    ):
        seen = Recorder(b)
        proxy.pause()  # b's links stay open but nothing passes: a black hole
        session = await a.verify(await a.sign("u", ttl=1))
        started = time.monotonic()
        await seen.wait_for(
            lambda r: any("heartbeat" in (e.reason or "") for e in r.of("error")),
            timeout_seconds=5,
            what="the heartbeat",
        )
        assert time.monotonic() - started < 4.5
        assert seen.kinds().count("disconnected") == 1
        await asyncio.sleep(max(0.0, 1.8 - (time.monotonic() - started)))  # a reported it
        assert seen.kinds("expired") == []
        proxy.resume()
        await seen.wait_for(
            lambda r: "expired" in r.kinds(), timeout_seconds=6, what="the replayed expiry"
        )
        assert seen.session_ids("expired") == [session.session_id]
        await seen.wait_for(
            lambda r: r.kinds("disconnected", "connected", "ready")[-2:] == ["connected", "ready"],
            timeout_seconds=5,
            what="ready again",
        )
        # Caught up before it said ready: the expiry came from the expiry log.
        assert seen.kinds("expired", "ready")[-2:] == ["expired", "ready"]


async def test_redis_killed_and_restarted(own_server: RedisServer) -> None:
    async with (
        RedisJWT(secret=SECRET, redis_url=own_server.url, kea=True) as a,
        RedisJWT(secret=SECRET, redis_url=own_server.url, kea=True) as b,
    ):
        seen_a, seen_b = Recorder(a), Recorder(b)
        own_server.kill()
        for seen in (seen_a, seen_b):
            await seen.wait_for(
                lambda r: "disconnected" in r.kinds(), timeout_seconds=3, what="disconnected"
            )
        with pytest.raises(errors.StoreUnavailable):
            await a.sign("u")
        own_server.restart()
        for seen in (seen_a, seen_b):
            await seen.wait_kinds("connected", "ready", timeout_seconds=6)
            assert seen.kinds().count("disconnected") == 1
        flags = own_server.command("CONFIG", "GET", "notify-keyspace-events")
        assert isinstance(flags, list)
        assert set(flags[1]) >= set("Egx")  # set again on the fresh server
        await a.destroy(await a.sign("u", ttl=1))
        await a.sign("v", ttl=1)
        await seen_b.wait_for(
            lambda r: (
                r.kinds("created", "destroyed", "expired")
                == ["created", "destroyed", "created", "expired"]
            ),
            timeout_seconds=4,
            what="events after the restart",
        )


async def test_without_listener_a_lost_connection_is_still_reported(
    own_server: RedisServer,
) -> None:
    async with RedisJWT(secret=SECRET, redis_url=own_server.url) as auth:
        seen = Recorder(auth)
        token = await auth.sign("u")
        own_server.kill()
        with pytest.raises(errors.StoreUnavailable):
            await auth.verify(token)
        await seen.wait_kinds("error", "disconnected", timeout_seconds=3)
        own_server.restart()
        await seen.wait_kinds("connected", "ready", timeout_seconds=5)
        assert (await auth.verify(await auth.sign("u"))).user_id == "u"


async def test_a_transient_timeout_is_not_a_disconnection(redis_server: RedisServer) -> None:
    async with (
        TCPProxy("127.0.0.1", redis_server.port) as proxy,
        RedisJWT(secret=SECRET, redis_url=proxy.url) as auth,
    ):
        seen = Recorder(auth)
        token = await auth.sign("u")
        proxy.delay_seconds = 0.6  # one slow answer, then all is well again
        with pytest.raises(errors.StoreTimeout):
            await auth.verify(token)
        proxy.delay_seconds = 0
        await asyncio.sleep(1.2)
        assert "disconnected" not in seen.kinds()
        assert (await auth.verify(token)).user_id == "u"
