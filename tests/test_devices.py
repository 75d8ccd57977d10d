"""Devices: ClientInfo at sign, and last-seen times with track_activity, against real Redis."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta

import pytest
from pydantic import SecretStr

from redis_jwt import ClientInfo, RedisJWT, SessionInfo, Settings, errors
from redis_jwt._activity import ActivityClock

from .conftest import SECRET
from .topologies import (  # noqa: F401 (fixtures)
    Topology,
    cluster_topology_fixture,
    sentinel_topology_fixture,
    standalone_topology_fixture,
    topology_fixture,
)

PHONE = ClientInfo(ip="2001:db8::7", user_agent="Mozilla/5.0 (Phone)")


async def listed(auth: RedisJWT, user_id: str, session_id: str) -> SessionInfo:
    """The listing of one session."""
    [info] = [i for i in await auth.sessions(user_id) if i.session_id == session_id]
    return info


async def seen_since(auth: RedisJWT, user_id: str, session_id: str, since: datetime) -> SessionInfo:
    """Poll (bounded) until the session's last-seen time is at least ``since``."""
    for _ in range(250):
        info = await listed(auth, user_id, session_id)
        if info.last_seen_at is not None and info.last_seen_at >= since:
            return info
        await asyncio.sleep(0.02)
    raise AssertionError(f"last_seen_at never reached {since}: {info}")


async def test_the_device_is_listed_with_the_session(topology: Topology) -> None:
    async with RedisJWT(secret=SECRET, redis_url=topology.url) as auth:
        phone = await auth.sign("alice", client=PHONE)
        laptop = await auth.sign("alice", client=ClientInfo(user_agent="x" * 5000))
        bare = await auth.sign("alice")
        by_id = {i.session_id: i for i in await auth.sessions("alice")}
        info = by_id[(await auth.verify(phone)).session_id]
        assert (info.ip, info.user_agent) == ("2001:db8::7", "Mozilla/5.0 (Phone)")
        long = by_id[(await auth.verify(laptop)).session_id]
        assert long.ip is None
        assert long.user_agent == "x" * 512  # bounded: a header cannot grow Redis without end
        plain = by_id[(await auth.verify(bare)).session_id]
        assert (plain.ip, plain.user_agent, plain.last_seen_at) == (None, None, None)


async def test_a_client_that_is_not_client_info_is_refused_before_any_write(
    auth: RedisJWT,
) -> None:
    with pytest.raises(errors.ConfigurationError, match="ClientInfo"):
        await auth.sign("bob", client={"ip": "1.2.3.4"})  # type: ignore[arg-type]
    assert await auth.count("bob") == 0


async def test_last_seen_follows_verifies_within_the_resolution(topology: Topology) -> None:
    async with RedisJWT(
        secret=SECRET, redis_url=topology.url, track_activity=True, activity_resolution=1
    ) as auth:
        token = await auth.sign("carol", client=PHONE)
        [unused] = await auth.sessions("carol")
        assert unused.last_seen_at is None  # no verify yet
        sid = (await auth.verify(token)).session_id
        info = await seen_since(auth, "carol", sid, unused.issued_at)
        assert info.last_seen_at is not None
        assert info.last_seen_at >= info.issued_at
        for _ in range(3):
            await asyncio.sleep(1.05)  # let one resolution pass, then be seen again
            verified_at = datetime.fromtimestamp(time.time() - 0.05).astimezone()
            await auth.verify(token)
            seen = await seen_since(auth, "carol", sid, verified_at)
            assert seen.last_seen_at is not None
            assert seen.last_seen_at <= datetime.now().astimezone()
        # The sliding and loading path records it too.
        await asyncio.sleep(1.05)
        verified_at = datetime.fromtimestamp(time.time() - 0.05).astimezone()
        await auth.verify(token, with_session=True)
        await seen_since(auth, "carol", sid, verified_at)


async def test_verifies_within_the_resolution_write_nothing(redis_url: str) -> None:
    async with RedisJWT(
        secret=SECRET, redis_url=redis_url, track_activity=True, activity_resolution="1 hour"
    ) as auth:
        token = await auth.sign("dave")
        sid = (await auth.verify(token)).session_id
        key = auth.layout.session_key("dave", sid)
        first = await auth.redis.hget(key, "ls")
        assert first is not None
        await asyncio.sleep(0.01)
        for _ in range(5):
            await auth.verify(token)
        assert await auth.redis.hget(key, "ls") == first


async def test_activity_never_recreates_an_ended_session(topology: Topology) -> None:
    async with RedisJWT(
        secret=SECRET, redis_url=topology.url, track_activity=True, activity_resolution=1
    ) as auth:
        token = await auth.sign("erin")
        sid = (await auth.verify(token)).session_id
        key = auth.layout.session_key("erin", sid)
        await auth.destroy(token)
        await asyncio.sleep(1.05)  # the next verify would record activity
        with pytest.raises(errors.SessionNotFound):
            await auth.verify(token)
        # Any background write has had its round trip once a later command is answered.
        for _ in range(3):
            await auth.ping()
            assert await auth.redis.exists(key) == 0


async def test_without_tracking_nothing_is_written_on_verify(auth: RedisJWT) -> None:
    token = await auth.sign("frank")
    sid = (await auth.verify(token)).session_id
    assert await auth.redis.hget(auth.layout.session_key("frank", sid), "ls") is None
    assert (await listed(auth, "frank", sid)).last_seen_at is None


def test_the_resolution_takes_durations_and_seconds() -> None:
    for resolution in ("1 second", 2, 0.25, timedelta(milliseconds=100)):
        RedisJWT(secret=SECRET, track_activity=True, activity_resolution=resolution)
    for bad in (0, -1, "soon", True, timedelta(0)):
        with pytest.raises(errors.ConfigurationError, match="activity_resolution"):
            RedisJWT(secret=SECRET, activity_resolution=bad)


def test_the_options_come_from_settings_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_JWT_TRACK_ACTIVITY", "true")
    monkeypatch.setenv("REDIS_JWT_ACTIVITY_RESOLUTION", "5 minutes")
    settings = Settings(secret=SecretStr(SECRET))
    assert (settings.track_activity, settings.activity_resolution) == (True, "5 minutes")
    RedisJWT.from_settings(settings)
    with pytest.raises(errors.ConfigurationError, match="activity_resolution"):
        RedisJWT(secret=SECRET, activity_resolution="soon")


def test_the_activity_clock_forgets_old_entries_when_full() -> None:
    clock = ActivityClock(3600, max_entries=3)
    assert [clock.due(s) for s in "abc"] == [True, True, True]
    assert not clock.due("a")
    # Full of fresh entries: forgetting them all costs one more write each, never a wrong time.
    assert clock.due("d")
    assert len(clock) == 1
    assert clock.due("a")
    zero = ActivityClock(0, max_entries=2)
    assert zero.due("a")
    assert zero.due("a")
    assert zero.due("b")
    assert zero.due("c")
    assert len(zero) <= 2


async def test_a_pair_keeps_its_device_through_refreshes(auth: RedisJWT) -> None:
    pair = await auth.sign_pair("gus", client=PHONE)
    pair = await auth.refresh(pair.refresh_token)
    [info] = await auth.sessions("gus")
    assert (info.ip, info.user_agent) == ("2001:db8::7", "Mozilla/5.0 (Phone)")
    with pytest.raises(errors.ConfigurationError, match="ClientInfo"):
        await auth.sign_pair("gus", client="phone")  # type: ignore[arg-type]
    assert await auth.count("gus") == 1
