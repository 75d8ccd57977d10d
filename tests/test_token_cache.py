"""Tokens seen before skip the signature work, and nothing else.

The decode cache remembers, by exact token string, the claims of tokens that
passed every check. These tests hold it to the rules of docs/decisions.md:
``exp`` is checked on every call (with the leeway), a changed token is a new
token, a failed check is never remembered, callers get their own copies, and
the cache is bounded.
"""

from __future__ import annotations

import asyncio
import time

import jwt
import pytest

from redis_jwt import RedisJWT, _compat, errors
from redis_jwt._token_cache import MAX_CHARS, MAX_ENTRIES, TokenCache
from redis_jwt._tokens import TokenCodec
from redis_jwt.keys import Key, KeyRing

from .conftest import SECRET
from .hostile import hostile_tokens


async def test_an_expired_token_is_refused_although_it_was_seen(redis_url: str) -> None:
    async with RedisJWT(secret=SECRET, redis_url=redis_url, ttl=1, max_age=1) as auth:
        token = await auth.sign("u")
        assert (await auth.verify(token)).user_id == "u"
        await asyncio.sleep(2.05)  # exp = iat + 1 s, in whole seconds
        with pytest.raises(errors.TokenExpired):
            await auth.verify(token)
        # Logging out still works with an expired token.
        assert await auth.destroy(token) is False  # the key itself expired already


async def test_the_leeway_applies_to_tokens_seen_before(redis_url: str) -> None:
    async with RedisJWT(secret=SECRET, redis_url=redis_url, ttl=1, max_age=1, leeway=30) as auth:
        token = await auth.sign("u")
        await auth.verify(token)
        await asyncio.sleep(2.05)
        # The session's key expired, but the token is still within the leeway.
        with pytest.raises(errors.SessionNotFound):
            await auth.verify(token)


async def test_a_changed_token_is_checked_again(auth: RedisJWT) -> None:
    token = await auth.sign("u", data_token={"role": "user"})
    await auth.verify(token)
    header, payload, signature = token.split(".")
    forged_payload = jwt.utils.base64url_encode(
        jwt.utils.base64url_decode(payload).replace(b'"user"', b'"root"')
    ).decode()
    for forged in (
        f"{header}.{forged_payload}.{signature}",
        f"{header}.{payload}.{signature[:-2]}AA",
        token + "=",
        " " + token,
    ):
        with pytest.raises(errors.InvalidToken):
            await auth.verify(forged)
    assert (await auth.verify(token)).data_token == {"role": "user"}


async def test_callers_get_their_own_claims(auth: RedisJWT) -> None:
    token = await auth.sign("u", data_token={"role": "user", "tags": ["a"], "deep": {"x": [1]}})
    first = await auth.verify(token)
    first.data_token["role"] = "admin"
    first.claims["dat"]["tags"].append("b")
    first.claims["dat"]["deep"]["x"].append(2)
    first.claims["sub"] = "mallory"
    again = await auth.verify(token)
    assert again.data_token == {"role": "user", "tags": ["a"], "deep": {"x": [1]}}
    assert again.user_id == again.claims["sub"] == "u"


def _claims(n: int) -> dict[str, object]:
    now = int(time.time())
    return {"sub": f"u{n}", "sid": "A" * 22, "iat": now, "exp": now + 60}


def test_the_cache_is_bounded_and_forgets_a_changed_ring() -> None:
    ring = KeyRing.from_secret(SECRET)
    cache = TokenCache(ring, leeway_seconds=0)
    for n in range(MAX_ENTRIES + 50):
        cache.put(f"token-{n}", _claims(n))
    assert len(cache) == MAX_ENTRIES
    assert cache.get("token-0", ring, verify_exp=True) is None  # the oldest went first
    assert cache.get(f"token-{MAX_ENTRIES + 49}", ring, verify_exp=True) is not None
    big = "x" * 2000
    for n in range(MAX_CHARS // 2000 + 10):
        cache.put(f"{big}{n}", _claims(n))
    assert sum(len(t) for t in cache._entries) <= MAX_CHARS
    cache.put("y" * 5000, _claims(0))  # too long to be worth remembering
    assert cache.get("y" * 5000, ring, verify_exp=True) is None
    other = KeyRing([Key.hmac("k2", SECRET)])
    assert cache.get(f"{big}{MAX_CHARS // 2000 + 9}", other, verify_exp=True) is None
    assert len(cache) == 0


def _outcome(codec: TokenCodec, token: str, *, verify_exp: bool = True) -> object:
    """What ``codec.decode`` gives: the claims, or the error, its message and its cause's type."""
    try:
        return codec.decode(token, verify_exp=verify_exp)
    except errors.AuthenticationError as exc:
        return (type(exc), str(exc), type(exc.__cause__))


# Genuine tokens of sessions that do not exist: only Redis refuses them.
_DECIDED_BY_REDIS = {"unknown sid", "another user's sub with a valid sid"}


def test_cold_tokens_of_every_badness_fail_as_with_plain_pyjwt() -> None:
    """The prepared decode path (HMAC keys checked once, faster segment decoding) refuses
    every hostile token, never seen before, with the error a plain ``jwt.PyJWT`` gives."""
    ring = KeyRing.from_secret(SECRET)
    fast = TokenCodec(ring, lifetime_limit_seconds=40 * 86400)
    plain = TokenCodec(ring, lifetime_limit_seconds=40 * 86400)
    plain._jwt = jwt.PyJWT()  # PyJWT's own code for everything
    jws = _compat.instance_jws(fast._jwt)
    assert jws is not None
    assert "_decode_base64url_segment" in vars(jws)
    now = int(time.time())
    genuine = fast.encode({"sub": "victim", "sid": "A" * 22, "iat": now, "exp": now + 3600})
    corpus = hostile_tokens(genuine)
    for name, token in corpus.items():
        # A fresh codec each time: nothing is answered from a token cache.
        fast._cache.clear()
        got = _outcome(fast, token)
        assert got == _outcome(plain, token), name
        if name not in _DECIDED_BY_REDIS:
            assert isinstance(got, tuple), name  # refused
        fast._cache.clear()
        assert _outcome(fast, token, verify_exp=False) == _outcome(plain, token, verify_exp=False)
    assert fast._cache.hits == 0
    assert _outcome(fast, genuine) == _outcome(plain, genuine)


async def test_refresh_tokens_are_never_remembered(auth: RedisJWT) -> None:
    """A refresh token is spent once: caching it would only push session tokens out."""
    codec: TokenCodec = auth._backend.codec  # type: ignore[attr-defined]
    pair = await auth.sign_pair("u")
    size = len(codec._cache)
    for _ in range(2):
        with pytest.raises(errors.InvalidToken, match="refresh token is no session token"):
            await auth.verify(pair.refresh_token)
    assert codec.decode(pair.refresh_token, refresh=True)["use"] == "refresh"
    assert len(codec._cache) == size
    await auth.verify(pair.access_token)  # a session token still is
    assert len(codec._cache) == size + 1
    with pytest.raises(errors.InvalidToken, match="this is no refresh token"):
        codec.decode(pair.access_token, refresh=True)  # answered from the cache
    next_pair = await auth.refresh(pair.refresh_token)
    assert len(codec._cache) == size + 1
    assert (await auth.verify(next_pair.access_token)).user_id == "u"


@pytest.mark.parametrize(
    "dat",
    [
        None,
        {},
        {"role": "user"},
        {"tags": ["a"], "role": "user"},
        {"deep": {"x": [1]}},
        {"list": [[1], {"y": 2}]},
    ],
    ids=["none", "empty", "scalars", "shallow list", "nested", "lists of containers"],
)
def test_every_shape_of_claims_is_remembered_as_the_caller_gave_it(
    dat: dict[str, object] | None,
) -> None:
    ring = KeyRing.from_secret(SECRET)
    cache = TokenCache(ring, leeway_seconds=0)
    claims: dict[str, object] = {**_claims(1), "aud": ["a", "b"]}
    if dat is not None:
        claims["dat"] = dat
    expected = {**claims, "dat": _deep_copy(dat)} if dat is not None else dict(claims)
    expected["aud"] = ["a", "b"]
    cache.put("token", claims)
    # Changing what was put, or what a get returned, never changes the next get.
    _scribble(claims)
    first = cache.get("token", ring, verify_exp=True)
    assert first == expected
    assert first is not None
    _scribble(first)
    assert cache.get("token", ring, verify_exp=True) == expected


def _deep_copy(value: object) -> object:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def _scribble(value: object) -> None:
    """Change every container in ``value``, at every depth."""
    if isinstance(value, dict):
        for v in list(value.values()):
            _scribble(v)
        value["scribbled"] = True
    elif isinstance(value, list):
        for v in list(value):
            _scribble(v)
        value.append("scribbled")
