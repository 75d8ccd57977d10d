"""Corners of the core: script cache loss, odd stored data, settings overrides."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from redis_jwt import RedisJWT, Settings, errors

from .conftest import SECRET


async def test_scripts_are_reloaded_after_the_script_cache_is_flushed(auth: RedisJWT) -> None:
    token = await auth.sign("u")
    await auth.redis.script_flush()
    assert (await auth.verify(token, with_session=True)).user_id == "u"
    await auth.redis.script_flush()
    assert await auth.sign("u")


async def test_a_key_that_lost_its_expiry_is_capped_by_the_token(auth: RedisJWT) -> None:
    token = await auth.sign("u")
    session = await auth.verify(token)
    await auth.redis.persist(auth.layout.session_key("u", session.session_id))
    again = await auth.verify(token)
    assert again.expires_at <= again.max_expires_at + timedelta(seconds=1)
    assert again.ttl > 86400  # the 30-day absolute cap, no longer the idle day


async def test_stored_data_that_is_not_a_json_object(auth: RedisJWT) -> None:
    token = await auth.sign("u", data_session={"a": 1})
    session = await auth.verify(token)
    key = auth.layout.session_key("u", session.session_id)
    await auth.redis.hset(key, "d", "[1, 2]")
    assert (await auth.verify(token, with_session=True)).data_session == {}
    await auth.redis.hset(key, "d", "{not json")
    with pytest.raises(errors.StoreError, match="not JSON"):
        await auth.verify(token, with_session=True)


async def test_open_twice_is_harmless(redis_url: str) -> None:
    auth = RedisJWT(secret=SECRET, redis_url=redis_url)
    await auth.open()
    await auth.open()
    assert await auth.ping()
    await auth.aclose()
    await auth.aclose()


async def test_from_settings_accepts_a_client_and_overrides(redis_url: str) -> None:
    client = Redis.from_url(redis_url)
    try:
        settings = Settings(secret=SecretStr(SECRET))
        auth = RedisJWT.from_settings(settings, redis=client, ttl=60)
        async with auth:
            assert auth.redis is client
            assert (await auth.verify(await auth.sign("u"))).ttl <= 60
    finally:
        await client.aclose()


@pytest.mark.parametrize("leeway", [-1, True, "soon"])
def test_bad_leeway_is_refused(leeway: object) -> None:
    with pytest.raises(errors.ConfigurationError, match="leeway"):
        RedisJWT(secret=SECRET, leeway=leeway)  # type: ignore[arg-type]


def test_leeway_accepts_durations() -> None:
    RedisJWT(secret=SECRET, leeway="30 seconds")
    RedisJWT(secret=SECRET, leeway=timedelta(seconds=5))
    RedisJWT(secret=SECRET, leeway=2.5)


def test_layout_parses_only_its_own_session_keys() -> None:
    layout = RedisJWT(secret=SECRET, prefix="app").layout
    key = layout.session_key("{a}:b%", "A" * 22)
    assert layout.parse_session_key(key) == ("{a}:b%", "A" * 22)
    for other in [
        "rjwt:{u}:s:" + "A" * 22,  # another prefix
        "app:{u}:i",  # an index key
        "app:{u}:s:short",  # not a session id
        "app:{u{x}:s:" + "A" * 22,  # a tag no escaped id can produce
        "app:{u",
    ]:
        assert layout.parse_session_key(other) is None
