"""Timely ``expired`` events: the expiry schedule and its sweepers."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio import Redis

from redis_jwt import RedisJWT, errors
from redis_jwt.testing import RedisServer

from .conftest import SECRET
from .events_helpers import Recorder, drain, settle, volatile_keys


async def test_a_one_second_session_expires_within_three_seconds(redis_url: str) -> None:
    async with (
        RedisJWT(secret=SECRET, redis_url=redis_url, kea=True) as a,
        RedisJWT(secret=SECRET, redis_url=redis_url, listen=True) as b,
    ):
        seen_a, seen_b = Recorder(a), Recorder(b)
        token = await a.sign("u", ttl=1)
        signed = time.monotonic()
        session = await a.verify(token)
        for seen in (seen_a, seen_b):
            await seen.wait_for(
                lambda r: "expired" in r.kinds(), timeout_seconds=4, what="the expiry"
            )
            assert seen.arrival("expired", session.session_id) - signed < 3
            assert seen.of("expired")[0].user_id == "u"
        await settle()
        assert seen_a.kinds("expired") == seen_b.kinds("expired") == ["expired"]
        assert await a.redis.keys(f"{a.layout.prefix}:{{x*}}:due") == []


async def test_twenty_sessions_beside_100k_volatile_keys(own_server: RedisServer) -> None:
    async with (
        RedisJWT(secret=SECRET, redis_url=own_server.url, kea=True) as auth,
        Redis.from_url(own_server.url) as filler,
    ):
        # Not auth.redis: its per-call deadline (about 1 s) is for sessions, and
        # filling 100k keys can take longer than that on a busy machine.
        await volatile_keys(filler, 100_000)
        assert await auth.redis.dbsize() == 100_000
        seen = Recorder(auth)
        started = time.monotonic()
        for n in range(20):
            await auth.sign(f"user-{n}", ttl=1)
        await seen.wait_for(
            lambda r: len(r.of("expired")) == 20, timeout_seconds=8, what="20 expiries"
        )
        assert time.monotonic() - started < 8
        assert sorted(e.user_id or "" for e in seen.of("expired")) == sorted(
            f"user-{n}" for n in range(20)
        )


async def test_sweepers_share_the_work_and_announce_each_expiry_once(redis_url: str) -> None:
    instances = [RedisJWT(secret=SECRET, redis_url=redis_url, listen=True) for _ in range(3)]
    recorders = [Recorder(auth) for auth in instances]
    async with (
        instances[0],
        instances[1],
        instances[2],
        Redis.from_url(redis_url) as spy,
        spy.pubsub() as pubsub,
    ):
        await pubsub.subscribe(instances[0].layout.channel)
        for n in range(30):
            await instances[n % 3].sign(f"u{n}", ttl=1)
        for seen in recorders:
            await seen.wait_for(
                lambda r: len(r.of("expired")) == 30, timeout_seconds=5, what="30 expiries"
            )
        await settle()
        notices = await drain(pubsub)
    assert notices.count("expired") == 30
    for seen in recorders:
        assert len(set(seen.session_ids("expired"))) == len(seen.of("expired")) == 30


async def test_ended_sessions_are_not_reported_as_expired_and_nothing_leaks(
    redis_url: str,
) -> None:
    async with RedisJWT(secret=SECRET, redis_url=redis_url, max_sessions=1, listen=True) as auth:
        seen = Recorder(auth)
        await auth.destroy(await auth.sign("logout", ttl=1))
        await auth.sign("evict", ttl=1)
        await auth.sign("evict", ttl=1)  # evicts the first
        await auth.sign("all", ttl=1)
        await auth.destroy_all("all")
        session = await auth.verify(await auth.sign("revoke", ttl=1))
        await auth.revoke("revoke", session.session_id)
        await asyncio.sleep(2.2)
        assert [e.reason for e in seen.of("destroyed")] == [
            "logout",
            "evicted",
            "destroy_all",
            "revoke",
        ]
        assert [e.user_id for e in seen.of("expired")] == ["evict"]  # the survivor
        client = auth.redis
        assert await client.keys(f"{auth.layout.prefix}:{{x*}}:due") == []
        for key in await client.keys("*"):
            assert 0 < await client.pttl(key) <= 600_000, key  # the expiry log, bounded


async def test_an_extended_session_is_rescheduled_not_reported(redis_url: str) -> None:
    async with (
        RedisJWT(secret=SECRET, redis_url=redis_url, sliding=True, listen=True) as auth,
    ):
        seen = Recorder(auth)
        extended = await auth.sign("extend", ttl=1)
        slid = await auth.sign("slide", ttl=1)
        await asyncio.sleep(0.7)
        await auth.extend(extended)
        await auth.verify(slid)
        renewed = time.monotonic()
        await asyncio.sleep(0.6)  # past the first due time
        assert seen.kinds("expired") == []
        await seen.wait_for(
            lambda r: len(r.of("expired")) == 2, timeout_seconds=3, what="both expiries"
        )
        assert min(seen.times[i] for i, e in enumerate(seen.events) if e.kind == "expired") > (
            renewed + 0.9
        )
        with pytest.raises(errors.SessionNotFound):
            await auth.verify(slid)


async def test_foreign_and_persisted_schedule_entries(redis_url: str) -> None:
    async with RedisJWT(secret=SECRET, redis_url=redis_url, listen=True, max_age=3600) as auth:
        seen = Recorder(auth)
        client = auth.redis
        bucket = auth.layout.schedule_key(0)
        await client.zadd(bucket, {"not-a-session-key": 0})
        session = await auth.verify(await auth.sign("u", ttl=1))
        key = auth.layout.session_key("u", session.session_id)
        assert await client.persist(key)  # someone removed its expiry: the JWT exp still caps it
        await asyncio.sleep(1.6)
        assert await client.zscore(bucket, "not-a-session-key") is None
        due = await client.zscore(auth.layout.schedule_key(auth.layout.bucket(key)), key)
        assert due is not None
        assert abs(due / 1000 - session.claims["exp"]) < 5  # looked at again at its exp
        assert seen.kinds("expired") == []
