"""Opening, closing, configuration, and Redis failing for real."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio import Redis

from redis_jwt import Event, RedisJWT, Settings, errors
from redis_jwt.testing import RedisServer, TCPProxy, free_port

from .conftest import SECRET


def test_the_constructor_does_no_io() -> None:
    # Nothing listens on this port: any I/O would fail or hang.
    auth = RedisJWT(secret=SECRET, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    assert auth.redis is not None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"secret": "short"}, "at least 32 bytes"),
        ({"secret": "-----BEGIN PUBLIC KEY-----" + "x" * 40}, "PEM"),
        ({"secret": '{"kty": "oct", "k": "' + "x" * 40 + '"}'}, "JWK"),
        ({"secret": SECRET, "algorithm": "RS256"}, "keys="),
        ({}, "exactly one"),
        ({"secret": SECRET, "ttl": "forever"}, "ttl"),
        ({"secret": SECRET, "max_age": 0}, "max_age"),
        ({"secret": SECRET, "max_sessions": 0}, "max_sessions"),
        ({"secret": SECRET, "max_sessions": 3, "multiple": False}, "multiple=False"),
        ({"secret": SECRET, "prefix": "a{b}"}, "prefix"),
        ({"secret": SECRET, "redis_url": "http://x"}, "redis_url"),
        ({"secret": SECRET, "timeout_seconds": 0}, "timeout_seconds"),
    ],
)
def test_bad_configuration_fails_at_construction(options: dict[str, object], message: str) -> None:
    with pytest.raises(errors.ConfigurationError, match=message):
        RedisJWT(**options)  # type: ignore[arg-type]


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_JWT_SECRET", SECRET)
    monkeypatch.setenv("REDIS_JWT_TTL", "15 minutes")
    monkeypatch.setenv("REDIS_JWT_MULTIPLE", "false")
    monkeypatch.setenv("REDIS_JWT_PREFIX", "app1")
    settings = Settings()
    assert settings.secret is not None
    assert SECRET not in repr(settings)
    auth = RedisJWT.from_settings(settings)
    assert auth.layout.prefix == "app1"
    assert RedisJWT.from_settings(key_prefix="app2").layout.prefix == "app2"
    monkeypatch.setenv("REDIS_JWT_TTL", "soon")
    with pytest.raises(errors.ConfigurationError, match="ttl"):
        RedisJWT.from_settings()


async def test_close_is_idempotent_and_a_closed_object_refuses_work(redis_url: str) -> None:
    auth = RedisJWT(secret=SECRET, redis_url=redis_url)
    async with auth:
        token = await auth.sign("u")
    await auth.aclose()
    with pytest.raises(errors.ConfigurationError, match="closed"):
        await auth.verify(token)
    with pytest.raises(errors.ConfigurationError, match="closed"):
        await auth.open()


async def test_a_borrowed_client_is_left_open(redis_url: str) -> None:
    client = Redis.from_url(redis_url)
    try:
        async with RedisJWT(secret=SECRET, redis=client) as auth:
            assert auth.redis is client
            await auth.verify(await auth.sign("u"))
        assert await client.ping() is True
    finally:
        await client.aclose()
    with pytest.raises(errors.ConfigurationError, match="not both"):
        RedisJWT(secret=SECRET, redis=client, redis_url=redis_url)


async def test_verify_costs_one_round_trip_in_every_mode(redis_server: RedisServer) -> None:
    async with TCPProxy("127.0.0.1", redis_server.port) as proxy:
        for sliding in (False, True):
            async with RedisJWT(secret=SECRET, redis_url=proxy.url, sliding=sliding) as auth:
                token = await auth.sign("u", data_session={"a": 1})
                await auth.verify(token)  # warm: connection made, scripts cached
                for with_session in (False, True):
                    before = proxy.round_trips
                    await auth.verify(token, with_session=with_session)
                    assert proxy.round_trips - before == 1, (sliding, with_session)


async def test_latency_is_paid_once_per_verify(redis_server: RedisServer) -> None:
    async with (
        TCPProxy("127.0.0.1", redis_server.port) as proxy,
        RedisJWT(secret=SECRET, redis_url=proxy.url, sliding=True) as auth,
    ):
        token = await auth.sign("u")
        await auth.verify(token)
        # Counted, not timed: a sliding verify with its session is one request
        # to Redis and one reply, so a slow link's latency is paid once.
        before = proxy.round_trips
        session = await auth.verify(token, with_session=True)
        assert proxy.round_trips - before == 1
        assert session.user_id == "u"


async def test_killed_redis_is_store_unavailable_fast_and_recovers(
    own_server: RedisServer,
) -> None:
    async with RedisJWT(secret=SECRET, redis_url=own_server.url) as auth:
        token = await auth.sign("u")
        own_server.kill()
        started = time.perf_counter()
        with pytest.raises(errors.StoreUnavailable):
            await auth.verify(token)
        assert time.perf_counter() - started < 2.0
        with pytest.raises(errors.StoreUnavailable):
            await auth.sign("u")
        own_server.restart()
        # The data died with the non-persistent server: an honest 401, not a 503.
        with pytest.raises(errors.SessionNotFound):
            await auth.verify(token)
        fresh = await auth.sign("u")
        assert (await auth.verify(fresh)).user_id == "u"


async def test_paused_redis_is_a_store_error_within_the_budget(own_server: RedisServer) -> None:
    async with RedisJWT(secret=SECRET, redis_url=own_server.url) as auth:
        token = await auth.sign("u")
        own_server.pause()
        try:
            for call in (auth.verify(token), auth.sign("u"), auth.destroy_all("u")):
                started = time.perf_counter()
                with pytest.raises(errors.StoreError):
                    await call
                assert time.perf_counter() - started < 2.5
        finally:
            own_server.resume()
        assert (await auth.verify(token)).user_id == "u"


async def test_a_black_holed_connection_times_out(redis_server: RedisServer) -> None:
    async with (
        TCPProxy("127.0.0.1", redis_server.port) as proxy,
        RedisJWT(secret=SECRET, redis_url=proxy.url) as auth,
    ):
        token = await auth.sign("u")
        proxy.pause()
        started = time.perf_counter()
        with pytest.raises(errors.StoreTimeout):
            await auth.verify(token)
        assert time.perf_counter() - started < 2.0
        proxy.resume()
        assert (await auth.verify(token)).user_id == "u"


async def test_opening_while_redis_is_down_reports_and_recovers(own_server: RedisServer) -> None:
    own_server.kill()
    auth = RedisJWT(secret=SECRET, redis_url=own_server.url)
    seen: list[Event] = []
    auth.events.on("*", seen.append)
    async with auth:
        assert [e.kind for e in seen] == ["error", "disconnected"]
        assert isinstance(seen[0].error, errors.StoreUnavailable)
        with pytest.raises(errors.StoreUnavailable):
            await auth.sign("u")
        own_server.restart()
        async with asyncio.timeout(5):
            while [e.kind for e in seen][-2:] != ["connected", "ready"]:
                await asyncio.sleep(0.05)
        assert (await auth.verify(await auth.sign("u"))).user_id == "u"


async def test_redis_auth_refused_is_store_unavailable(redis_jwt_binary: object) -> None:
    from redis_jwt.testing import RedisBinary

    assert isinstance(redis_jwt_binary, RedisBinary)
    with RedisServer(redis_jwt_binary, password="p4ss-" + "x" * 10) as server:
        wrong = server.url.replace("p4ss-", "nope-")
        async with RedisJWT(secret=SECRET, redis_url=wrong) as auth:
            with pytest.raises(errors.StoreUnavailable):
                await auth.sign("u")
        async with RedisJWT(secret=SECRET, redis_url=server.url) as auth:
            assert (await auth.verify(await auth.sign("u"))).user_id == "u"
