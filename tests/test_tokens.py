"""Malformed, forged, tampered and expired tokens: AuthenticationError, without Redis."""

from __future__ import annotations

import jwt
import pytest

from redis_jwt import RedisJWT, errors
from redis_jwt.testing import RedisServer

from .conftest import SECRET
from .hostile import claims, forge, hostile_tokens


async def test_every_hostile_token_is_an_authentication_error(auth: RedisJWT) -> None:
    genuine = await auth.sign("victim")
    corpus = hostile_tokens(genuine)
    assert len(corpus) >= 40
    for name, token in corpus.items():
        with pytest.raises(errors.AuthenticationError):
            await auth.verify(token)
        with pytest.raises(errors.AuthenticationError):
            await auth.verify(token, with_session=True)
        with pytest.raises(errors.AuthenticationError):
            await auth.extend(token)
        assert name
    assert (await auth.verify(genuine)).user_id == "victim"


@pytest.mark.parametrize("token", ["", None])
async def test_no_token_is_missing_token(auth: RedisJWT, token: str | None) -> None:
    with pytest.raises(errors.MissingToken):
        await auth.verify(token)  # type: ignore[arg-type]


async def test_non_string_tokens_are_invalid(auth: RedisJWT) -> None:
    for token in [b"abc", 42, ["a"], {"a": 1}]:
        with pytest.raises(errors.InvalidToken):
            await auth.verify(token)  # type: ignore[arg-type]


async def test_bad_tokens_are_refused_without_redis(own_server: RedisServer) -> None:
    async with RedisJWT(secret=SECRET, redis_url=own_server.url) as auth:
        genuine = await auth.sign("victim")
        own_server.kill()
        for token in hostile_tokens(genuine).values():
            try:
                await auth.verify(token)
            except errors.StoreError:  # only a well-formed token may reach Redis
                payload = jwt.decode(token, SECRET, algorithms=["HS256"])
                assert payload["sid"] != "A" * 22 or payload["sub"] != "victim"
            except errors.AuthenticationError:
                pass
        with pytest.raises(errors.TokenExpired):
            await auth.verify(forge(claims(iat=1, exp=2)))
        with pytest.raises(errors.StoreUnavailable):
            await auth.verify(genuine)


async def test_issuer_and_audience_are_enforced_when_configured(redis_url: str) -> None:
    async with (
        RedisJWT(secret=SECRET, redis_url=redis_url, issuer="me", audience="app") as strict,
        RedisJWT(secret=SECRET, redis_url=redis_url) as lax,
    ):
        token = await strict.sign("u")
        assert jwt.decode(token, options={"verify_signature": False})["iss"] == "me"
        assert (await strict.verify(token)).user_id == "u"
        with pytest.raises(errors.InvalidToken):
            await strict.verify(await lax.sign("u"))
        other = forge(claims(sub="u", iss="other", aud="app"))
        with pytest.raises(errors.InvalidToken):
            await strict.verify(other)


async def test_leeway_tolerates_small_clock_skew(redis_url: str) -> None:
    async with RedisJWT(secret=SECRET, redis_url=redis_url, leeway=30) as auth:
        token = await auth.sign("u")
        session = await auth.verify(token)
        skewed = forge(dict(session.claims, iat=session.claims["iat"] + 10))
        assert (await auth.verify(skewed)).user_id == "u"  # iat 10 s ahead, within 30 s
