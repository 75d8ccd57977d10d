"""The session engine on a real Redis: sign, verify, extend, destroy, list, limits."""

from __future__ import annotations

import asyncio
import time

import pytest

from redis_jwt import RedisJWT, Session, SessionInfo, errors

from .conftest import SECRET


async def live(auth: RedisJWT, tokens: list[str]) -> list[Session]:
    """Return the sessions of ``tokens`` that still verify."""
    sessions = []
    for token in tokens:
        try:
            sessions.append(await auth.verify(token))
        except errors.SessionNotFound:
            continue
    return sessions


WEIRD_USER_IDS = ["*", "a:b", "{a}", "a}", "{", "[a]", "a b", "ünï©ødé 🙂", "%7B", "a%", "?", "\\"]


async def test_sign_then_verify_returns_the_session(auth: RedisJWT) -> None:
    token = await auth.sign("507f1f77", data_token={"role": "admin"}, data_session={"ip": "x"})
    session = await auth.verify(token)
    assert isinstance(session, Session)
    assert session.user_id == "507f1f77"
    assert session.data_token == {"role": "admin"}
    assert session.data_session is None
    assert 86398 <= session.ttl <= 86400
    assert session.claims["sub"] == "507f1f77"
    assert session.claims["exp"] - session.claims["iat"] == 30 * 86400
    assert len(session.session_id) == 22
    loaded = await auth.verify(token, with_session=True)
    assert loaded.data_session == {"ip": "x"}
    assert loaded.session_id == session.session_id


async def test_with_session_gives_an_empty_dict_when_nothing_was_stored(auth: RedisJWT) -> None:
    token = await auth.sign("u")
    assert (await auth.verify(token, with_session=True)).data_session == {}


async def test_token_carries_no_private_data(auth: RedisJWT) -> None:
    import jwt

    private = "private-value-never-in-the-token"
    token = await auth.sign("u", data_session={"secret": private})
    payload = jwt.decode(token, options={"verify_signature": False})
    assert private not in str(payload)
    assert set(payload) == {"sub", "sid", "iat", "exp"}
    assert "kid" not in jwt.get_unverified_header(token)


async def test_per_call_ttl_sets_the_redis_lifetime(auth: RedisJWT) -> None:
    token = await auth.sign("u", ttl="15 minutes")
    session = await auth.verify(token)
    assert 898 <= session.ttl <= 900


async def test_destroy_then_verify_is_session_not_found(auth: RedisJWT) -> None:
    token = await auth.sign("u")
    assert await auth.destroy(token) is True
    with pytest.raises(errors.SessionNotFound):
        await auth.verify(token)
    assert await auth.destroy(token) is False


async def test_destroy_all_returns_the_count_and_ends_them_all(auth: RedisJWT) -> None:
    tokens = [await auth.sign("u") for _ in range(4)]
    other = await auth.sign("v")
    assert await auth.destroy_all("u") == 4
    for token in tokens:
        with pytest.raises(errors.SessionNotFound):
            await auth.verify(token)
    assert (await auth.verify(other)).user_id == "v"
    assert await auth.destroy_all("u") == 0
    assert await auth.count("u") == 0


async def test_sessions_lists_newest_first_and_revoke_ends_one(auth: RedisJWT) -> None:
    tokens = [await auth.sign("u", data_session={"n": n}) for n in range(3)]
    infos = await auth.sessions("u")
    assert all(isinstance(i, SessionInfo) for i in infos)
    assert [i.data_session["n"] for i in infos] == [2, 1, 0]
    assert infos[0].issued_at > infos[1].issued_at > infos[2].issued_at
    assert infos[0].idle_ttl == 86400
    assert await auth.revoke("u", infos[1].session_id) is True
    assert await auth.revoke("u", infos[1].session_id) is False
    assert await auth.revoke("u", "not-a-session-id") is False
    with pytest.raises(errors.SessionNotFound):
        await auth.verify(tokens[1])
    assert await auth.count("u") == 2


async def test_listing_and_counting_stay_exact_after_sessions_expire(redis_url: str) -> None:
    async with RedisJWT(secret=SECRET, redis_url=redis_url) as auth:
        short = [await auth.sign("u", ttl=1) for _ in range(3)]
        await auth.sign("u", ttl=60)
        assert await auth.count("u") == 4
        await asyncio.sleep(1.3)
        assert await auth.count("u") == 1
        assert len(await auth.sessions("u")) == 1
        with pytest.raises(errors.SessionNotFound):
            await auth.verify(short[0])


async def test_a_key_deleted_outside_the_library_leaves_the_index_exact(auth: RedisJWT) -> None:
    token = await auth.sign("u")
    await auth.sign("u")
    session = await auth.verify(token)
    await auth.redis.delete(auth.layout.session_key("u", session.session_id))
    assert await auth.count("u") == 1
    assert len(await auth.sessions("u")) == 1


async def test_fifty_concurrent_single_session_signs_leave_exactly_one(redis_url: str) -> None:
    async with RedisJWT(secret=SECRET, redis_url=redis_url, multiple=False) as auth:
        tokens = await asyncio.gather(*(auth.sign("race") for _ in range(50)))
        assert await auth.count("race") == 1
        alive = await live(auth, tokens)
        assert len(alive) == 1
        assert [i.session_id for i in await auth.sessions("race")] == [alive[0].session_id]


async def test_max_sessions_keeps_exactly_the_newest(redis_url: str) -> None:
    async with RedisJWT(secret=SECRET, redis_url=redis_url, max_sessions=3) as auth:
        tokens = await asyncio.gather(*(auth.sign("many") for _ in range(40)))
        assert await auth.count("many") == 3
        assert len(await live(auth, tokens)) == 3
        # Sequential signs show which ones survive: the newest, by creation order.
        ordered = [await auth.sign("seq") for _ in range(5)]
        survivors = {(await auth.verify(t)).session_id for t in ordered[2:]}
        assert {i.session_id for i in await auth.sessions("seq")} == survivors
        for token in ordered[:2]:
            with pytest.raises(errors.SessionNotFound):
                await auth.verify(token)


async def test_max_sessions_is_shared_by_two_instances(redis_url: str) -> None:
    async with (
        RedisJWT(secret=SECRET, redis_url=redis_url, max_sessions=2) as one,
        RedisJWT(secret=SECRET, redis_url=redis_url, max_sessions=2) as two,
    ):
        await asyncio.gather(*(inst.sign("shared") for inst in (one, two) * 10))
        assert await one.count("shared") == 2


@pytest.mark.parametrize("user_id", WEIRD_USER_IDS)
async def test_weird_user_ids_never_touch_other_users(auth: RedisJWT, user_id: str) -> None:
    bystanders = {name: await auth.sign(name) for name in ("a", "b", "{a", "a:b:c", "x")}
    token = await auth.sign(user_id, data_session={"me": user_id})
    session = await auth.verify(token, with_session=True)
    assert session.user_id == user_id
    assert session.data_session == {"me": user_id}
    assert [i.user_id for i in await auth.sessions(user_id)] == [user_id]
    assert await auth.count(user_id) == 1
    assert await auth.destroy_all(user_id) == 1
    for name, other in bystanders.items():
        if name != user_id:
            assert (await auth.verify(other)).user_id == name


async def test_every_key_of_a_user_shares_one_hash_slot(auth: RedisJWT) -> None:
    from redis.crc import key_slot

    for user_id in WEIRD_USER_IDS:
        token = await auth.sign(user_id)
        sid = (await auth.verify(token)).session_id
        keys = [
            auth.layout.session_key(user_id, sid),
            auth.layout.index_key(user_id),
            auth.layout.call_key(user_id, sid),
        ]
        assert len({key_slot(k.encode()) for k in keys}) == 1
        assert keys[2] == f"{auth.layout.user_tag(user_id)}:q:{sid}"  # docs/layout.md
        assert auth.layout.parse_session_key(keys[0]) == (user_id, sid)


async def test_user_ids_are_checked(auth: RedisJWT) -> None:
    for bad in ["", "x" * 513, "é" * 257, 42, None, "\udcff"]:
        with pytest.raises(errors.ConfigurationError):
            await auth.sign(bad)  # type: ignore[arg-type]
    assert len("é" * 256) == 256
    await auth.sign("é" * 256)


async def test_sliding_verify_extends_and_plain_verify_does_not(redis_url: str) -> None:
    async with (
        RedisJWT(secret=SECRET, redis_url=redis_url, ttl=3) as plain,
        RedisJWT(secret=SECRET, redis_url=redis_url, ttl=3, sliding=True) as sliding,
    ):
        token = await plain.sign("u")
        await asyncio.sleep(1.1)
        assert (await plain.verify(token)).ttl <= 1
        assert (await sliding.verify(token)).ttl == 3  # reset to the full 3 s
        await asyncio.sleep(2.2)
        assert (await sliding.verify(token, with_session=True)).ttl >= 0


async def test_extend_resets_the_idle_ttl_but_never_past_max_age(redis_url: str) -> None:
    async with RedisJWT(secret=SECRET, redis_url=redis_url, ttl=2, max_age=3) as auth:
        token = await auth.sign("u")
        await asyncio.sleep(1.2)
        extended = await auth.extend(token)
        # exp = iat + 3 s: about 1.8 s are left, not the idle 2 s.
        assert extended.expires_at.timestamp() <= extended.claims["exp"] + 0.01
        ttl_ms = await auth.redis.pttl(auth.layout.session_key("u", extended.session_id))
        assert 0 < ttl_ms <= 1900
        await asyncio.sleep(2.0)
        with pytest.raises(errors.AuthenticationError):
            await auth.extend(token)


async def test_a_ttl_longer_than_max_age_becomes_the_cap(redis_url: str) -> None:
    async with RedisJWT(secret=SECRET, redis_url=redis_url, max_age="1 hour") as auth:
        session = await auth.verify(await auth.sign("u", ttl="2 hours"))
        assert session.claims["exp"] - session.claims["iat"] == 7200
        assert session.ttl >= 7198


async def test_bad_ttl_is_a_configuration_error_and_writes_nothing(auth: RedisJWT) -> None:
    bad_ttls: list[str | int] = ["foo", "500ms", -5, 0, "3600", "10 years"]
    for ttl in bad_ttls:
        with pytest.raises(errors.ConfigurationError):
            await auth.sign("u", ttl=ttl)
    for bad in [{"data_token": [1]}, {"data_session": "x"}, {"data_session": {"f": object()}}]:
        with pytest.raises(errors.ConfigurationError):
            await auth.sign("u", **bad)  # type: ignore[arg-type]
    with pytest.raises(errors.ConfigurationError, match="max_token_bytes"):
        await auth.sign("u", data_token={"blob": "x" * 10_000})
    assert await auth.redis.dbsize() == 0


async def test_expired_token_cannot_verify_but_can_log_out(redis_url: str) -> None:
    async with RedisJWT(secret=SECRET, redis_url=redis_url, ttl=1, max_age=1) as auth:
        token = await auth.sign("u")
        await asyncio.sleep(2.05)
        with pytest.raises(errors.TokenExpired):
            await auth.verify(token)
        assert await auth.destroy(token) is False  # its session expired with it
    async with RedisJWT(secret=SECRET, redis_url=redis_url, ttl=60, max_age=60) as auth:
        token = await auth.sign("u")
        with pytest.raises(errors.InvalidToken):
            await auth.destroy(token + "x")
        assert await auth.destroy(token) is True


async def test_ping_and_info(auth: RedisJWT) -> None:
    assert await auth.ping() is True
    info = await auth.info("server")
    assert "redis_version" in info
    assert time.time() > 0
