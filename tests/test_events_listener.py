"""Session events across instances: the events channel and Redis's keyspace events."""

from __future__ import annotations

import logging

import pytest
from redis.asyncio import Redis

from redis_jwt import Event, RedisJWT, errors
from redis_jwt.testing import RedisBinary, RedisServer

from .conftest import SECRET
from .events_helpers import Recorder, drain, settle

SESSION_KINDS = ("created", "extended", "destroyed", "expired")


@pytest.mark.parametrize("mode", ["listen", "kea"])
async def test_every_instance_gets_each_change_once(redis_url: str, mode: str) -> None:
    options = {mode: True}
    a = RedisJWT(secret=SECRET, redis_url=redis_url, **options)  # type: ignore[arg-type]
    b = RedisJWT(secret=SECRET, redis_url=redis_url, **options)  # type: ignore[arg-type]
    seen_a, seen_b = Recorder(a), Recorder(b)
    async with a, b:
        token = await a.sign("u")
        await a.extend(token)
        assert await a.destroy(token)
        await seen_b.wait_for(
            lambda r: "destroyed" in r.kinds(), timeout_seconds=3, what="the destroy"
        )
        await settle()
    for seen in (seen_a, seen_b):
        assert seen.kinds(*SESSION_KINDS) == ["created", "extended", "destroyed"]
        assert len(set(seen.session_ids("created") + seen.session_ids("destroyed"))) == 1
        assert seen.of("destroyed")[0].reason == "logout"
        assert seen.of("created")[0].user_id == "u"


async def test_reasons_travel_with_the_notices(redis_url: str) -> None:
    async with (
        RedisJWT(secret=SECRET, redis_url=redis_url, multiple=False) as a,
        RedisJWT(secret=SECRET, redis_url=redis_url, kea=True) as b,
    ):
        seen = Recorder(b)
        await a.sign("u")
        second = await a.sign("u")  # evicts the first
        infos = await a.sessions("u")
        await a.revoke("u", infos[0].session_id)
        await a.sign("v")
        await a.destroy_all("v")
        await a.destroy(second)  # already revoked: nothing to report
        await seen.wait_for(
            lambda r: len(r.of("destroyed")) == 3, timeout_seconds=3, what="3 destroyed"
        )
        await settle()
        assert [e.reason for e in seen.of("destroyed")] == ["evicted", "revoke", "destroy_all"]


async def test_an_instance_without_listener_still_publishes(redis_url: str) -> None:
    async with (
        RedisJWT(secret=SECRET, redis_url=redis_url) as quiet,
        RedisJWT(secret=SECRET, redis_url=redis_url, listen=True) as listening,
    ):
        seen = Recorder(listening)
        await quiet.destroy(await quiet.sign("u"))
        await seen.wait_kinds("created", "destroyed", timeout_seconds=3)


async def test_a_raw_del_is_destroyed_external_and_leaves_no_schedule_entry(
    redis_url: str,
) -> None:
    async with (
        RedisJWT(secret=SECRET, redis_url=redis_url, kea=True) as a,
        RedisJWT(secret=SECRET, redis_url=redis_url, kea=True) as b,
    ):
        seen_a, seen_b = Recorder(a), Recorder(b)
        session = await a.verify(await a.sign("u:{odd} *id*"))
        key = a.layout.session_key(session.user_id, session.session_id)
        bucket = a.layout.schedule_key(a.layout.bucket(key))
        assert await a.redis.zscore(bucket, key) is not None
        async with Redis.from_url(redis_url) as outsider:
            assert await outsider.delete(key) == 1
        for seen in (seen_a, seen_b):
            await seen.wait_for(
                lambda r: "destroyed" in r.kinds(), timeout_seconds=3, what="external"
            )
            event = seen.of("destroyed")[0]
            assert (event.reason, event.user_id) == ("external", "u:{odd} *id*")
            assert event.session_id == session.session_id
        await settle()
        assert await a.redis.zscore(bucket, key) is None
        assert seen_a.kinds("destroyed", "expired") == ["destroyed"]


async def test_sliding_verifies_publish_nothing_extend_does(redis_url: str) -> None:
    async with (
        RedisJWT(secret=SECRET, redis_url=redis_url, sliding=True) as a,
        RedisJWT(secret=SECRET, redis_url=redis_url, listen=True) as b,
        Redis.from_url(redis_url) as spy,
        spy.pubsub() as pubsub,
    ):
        await pubsub.subscribe(a.layout.channel)
        seen = Recorder(b)
        token = await a.sign("u")
        for _ in range(20):
            await a.verify(token)
        await a.extend(token)
        await seen.wait_kinds("created", "extended", timeout_seconds=3)
        notices = await drain(pubsub)
        assert notices == ["created", "extended"]


async def test_failing_handlers_never_break_calls_nor_the_listener(redis_url: str) -> None:
    async with (
        RedisJWT(secret=SECRET, redis_url=redis_url, kea=True) as a,
        RedisJWT(secret=SECRET, redis_url=redis_url, kea=True) as b,
    ):

        def broken(event: Event) -> None:
            raise RuntimeError("handler bug")

        async def broken_async(event: Event) -> None:
            raise RuntimeError("async handler bug")

        for auth in (a, b):
            auth.events.on("*", broken)
            auth.events.on("*", broken_async)
        seen = Recorder(b)
        token = await a.sign("u")
        assert (await a.verify(token)).user_id == "u"
        await a.extend(token)
        assert await a.destroy(token)
        await seen.wait_kinds("created", "extended", "destroyed", timeout_seconds=3)
        assert (await b.verify(await b.sign("v"))).user_id == "v"


async def test_a_refused_config_is_reported_and_the_channel_still_works(
    redis_jwt_binary: RedisBinary, caplog: pytest.LogCaptureFixture
) -> None:
    with RedisServer(redis_jwt_binary, extra_args=["--rename-command", "CONFIG", ""]) as server:
        a = RedisJWT(secret=SECRET, redis_url=server.url, kea=True)
        seen = Recorder(a)
        with caplog.at_level(logging.WARNING, logger="redis_jwt"):
            async with a, RedisJWT(secret=SECRET, redis_url=server.url, listen=True) as b:
                assert seen.kinds()[:3] == ["connected", "error", "ready"]
                error = seen.of("error")[0].error
                assert isinstance(error, errors.ConfigurationError)
                assert "notify-keyspace-events" in str(error)
                assert "CONFIG SET notify-keyspace-events Egx" in str(error)
                token = await b.sign("u", ttl=1)
                await b.destroy(await b.sign("v"))
                await seen.wait_for(
                    lambda r: "expired" in r.kinds(), timeout_seconds=3, what="the expiry"
                )
                assert seen.kinds(*SESSION_KINDS) == ["created", "created", "destroyed", "expired"]
                with pytest.raises(errors.SessionNotFound):
                    await b.verify(token)
        assert "notify-keyspace-events" in caplog.text
        assert "Egx" in caplog.text


async def test_kea_merges_with_the_flags_already_set(redis_server: RedisServer) -> None:
    redis_server.command("CONFIG", "SET", "notify-keyspace-events", "Kl")
    try:
        async with RedisJWT(secret=SECRET, redis_url=redis_server.url, kea=True):
            flags = redis_server.command("CONFIG", "GET", "notify-keyspace-events")
        assert isinstance(flags, list)
        assert sorted(flags[1]) == sorted("KlEgx")
    finally:
        redis_server.command("CONFIG", "SET", "notify-keyspace-events", "")


async def test_garbage_on_the_channel_and_foreign_keys_are_ignored(redis_url: str) -> None:
    async with (
        RedisJWT(secret=SECRET, redis_url=redis_url, kea=True) as auth,
        Redis.from_url(redis_url) as outsider,
    ):
        seen = Recorder(auth)
        channel = auth.layout.channel
        for junk in (
            b"not json",
            b"\xff\xfe",
            b"[1, 2]",
            b'{"e": "exploded", "u": "u", "s": "s"}',
            b'{"e": "created", "u": 1, "s": "s"}',
            b'{"e": "created"}',
        ):
            await outsider.publish(channel, junk)
        prefix = auth.layout.prefix
        for key in (b"other:key", f"{prefix}:{{u}}:i".encode(), f"{prefix}:\xff".encode("latin-1")):
            await outsider.set(key, 1)
            await outsider.delete(key)
        await outsider.set(f"{prefix}:{{u}}:s:not-a-session-id", 1, px=1)
        await auth.destroy(await auth.sign("u"))
        await seen.wait_kinds("created", "destroyed", timeout_seconds=3)
        await settle(1.2)  # past the hold of a keyspace `del`
        assert seen.kinds(*SESSION_KINDS) == ["created", "destroyed"]
        assert "error" not in seen.kinds()
