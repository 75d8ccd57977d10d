"""layout="redis-jwt": the Node package's keys, values and tokens, written and read by Python.

The real Node package is exercised in tests/interop (``nox -s interop``); these tests
pin the bytes and the semantics with Redis alone.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import jwt
import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from redis_jwt import Event, Key, RedisJWT, errors

from .conftest import SECRET
from .hostile import hostile_tokens


@pytest.fixture
async def node(redis_url: str) -> AsyncIterator[RedisJWT]:
    async with RedisJWT(secret=SECRET, redis_url=redis_url, layout="redis-jwt") as auth:
        yield auth


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


def node_token(rjwt: str, data_token: object = None, **extra: object) -> str:
    """A token exactly as Node's redis-jwt signs it (jsonwebtoken, no options)."""
    payload: dict[str, object] = {"rjwt": rjwt}
    if data_token is not None:
        payload["dataToken"] = data_token
    payload["iat"] = int(time.time())
    payload.update(extra)
    return jwt.encode(payload, SECRET, algorithm="HS256")


async def node_session(raw: Redis, key: str, data: object = None, ttl: int | None = 900) -> None:
    """Store a session exactly as Node's redis-jwt does (SETEX, or SET without ttl)."""
    value: dict[str, object] = {"rjwt": key}
    if data is not None:
        value["dataSession"] = data
    await raw.set(key, json.dumps(value, separators=(",", ":")), ex=ttl)


async def test_sign_writes_the_node_key_value_and_token(node: RedisJWT, raw: Redis) -> None:
    token = await node.sign(
        "507f191e810c19729de860ea",
        ttl="15 minutes",
        data_token={"hello": "world"},
        data_session={"role": "admin", "n": 1},
    )
    head, body, _ = token.split(".")
    assert jwt.utils.base64url_decode(head) == b'{"alg":"HS256","typ":"JWT"}'
    payload = json.loads(jwt.utils.base64url_decode(body))
    assert list(payload) == ["rjwt", "dataToken", "iat"]
    key = payload["rjwt"]
    user_id, session_id = key.split(":")
    assert user_id == "507f191e810c19729de860ea"
    assert len(session_id) == 11
    assert session_id.isalnum()
    assert session_id.isascii()
    assert await raw.keys("*") == [key]
    assert await raw.type(key) == "string"
    assert await raw.get(key) == f'{{"rjwt":"{key}","dataSession":{{"role":"admin","n":1}}}}'
    assert 899 <= await raw.ttl(key) <= 900
    bare = await node.sign("u")
    bare_payload = jwt.decode(bare, SECRET, algorithms=["HS256"])
    assert list(bare_payload) == ["rjwt", "iat"]
    assert await raw.get(bare_payload["rjwt"]) == f'{{"rjwt":"{bare_payload["rjwt"]}"}}'


async def test_verify_reads_node_sessions(node: RedisJWT, raw: Redis) -> None:
    await node_session(raw, "node-user:INFLCfhkCK3", {"lang": "js"})
    token = node_token("node-user:INFLCfhkCK3", {"from": "node"})
    session = await node.verify(token)
    assert (session.user_id, session.session_id) == ("node-user", "INFLCfhkCK3")
    assert session.data_token == {"from": "node"}
    assert session.data_session is None
    assert 898 <= session.ttl <= 900
    assert session.max_expires_at == datetime.max.replace(tzinfo=UTC)
    loaded = await node.verify(token, with_session=True)
    assert loaded.data_session == {"lang": "js"}
    # Without ttl Node writes a key that never expires.
    await node_session(raw, "forever:abcdefghijk", ttl=None)
    forever = await node.verify(node_token("forever:abcdefghijk"), with_session=True)
    assert (forever.ttl, forever.data_session) == (-1, {})
    assert forever.expires_at == datetime.max.replace(tzinfo=UTC)
    # Node keeps non-object data as given; Python exposes objects only (raw claims stay).
    await node_session(raw, "odd:abcdefghijk", "just a string")
    odd = await node.verify(node_token("odd:abcdefghijk", "text"), with_session=True)
    assert (odd.data_token, odd.data_session, odd.claims["dataToken"]) == ({}, {}, "text")


async def test_node_tokens_are_checked_strictly(node: RedisJWT, raw: Redis) -> None:
    await node_session(raw, "alice:abcdefghijk")
    await raw.set("config", "{}")
    await raw.set("a:b:abcdefghijk", json.dumps({"rjwt": "a:b:abcdefghijk"}))
    now = int(time.time())
    refused = {
        "exp passed": node_token("alice:abcdefghijk", exp=now - 1),
        "string iat": jwt.encode({"rjwt": "alice:abcdefghijk", "iat": str(now)}, SECRET),
        "no iat": jwt.encode({"rjwt": "alice:abcdefghijk"}, SECRET),
        "no rjwt": jwt.encode({"iat": now}, SECRET),
        "rjwt not a session key": node_token("config"),
        "colon in the user id": node_token("a:b:abcdefghijk"),
        "glob user id": node_token("*:abcdefghijk"),
        "short session id": node_token("alice:abc"),
        "list rjwt": jwt.encode({"rjwt": ["alice:abcdefghijk"], "iat": now}, SECRET),
        "HS512": jwt.encode({"rjwt": "alice:abcdefghijk", "iat": now}, SECRET * 2, "HS512"),
        "string nbf": node_token("alice:abcdefghijk", nbf=str(now)),
        "wrong secret": jwt.encode({"rjwt": "alice:abcdefghijk", "iat": now}, "x" * 40),
        "kid": jwt.encode({"rjwt": "alice:abcdefghijk", "iat": now}, SECRET, headers={"kid": "k"}),
    }
    for name, token in refused.items():
        with pytest.raises(errors.InvalidToken):
            await node.verify(token)
        assert name
    assert (await node.verify(node_token("alice:abcdefghijk", exp=now + 60))).user_id == "alice"
    with pytest.raises(errors.SessionNotFound):
        await node.verify(node_token("alice:zzzzzzzzzzz"))
    # The shared corpus is built around a layout v1 token: none of it may pass here.
    v1_shaped = jwt.encode({"sub": "victim", "sid": "A" * 22, "iat": now, "exp": now + 60}, SECRET)
    for token in [v1_shaped, *hostile_tokens(v1_shaped).values()]:
        with pytest.raises(errors.AuthenticationError):
            await node.verify(token)
    genuine = await node.sign("victim")
    head, body, sig = genuine.split(".")
    payload = json.loads(jwt.utils.base64url_decode(body))
    other = dict(payload, rjwt="alice:abcdefghijk")
    tampered = jwt.utils.base64url_encode(json.dumps(other).encode()).decode()
    with pytest.raises(errors.InvalidToken):
        await node.verify(f"{head}.{tampered}.{sig}")


@pytest.mark.parametrize("user_id", ["a:b", "*", "a*", "a?", "[a]", "a\\b", "", "x" * 513])
async def test_user_ids_that_node_would_misread_are_refused(node: RedisJWT, user_id: str) -> None:
    with pytest.raises(errors.ConfigurationError):
        await node.sign(user_id)
    with pytest.raises(errors.ConfigurationError):
        await node.sessions(user_id)
    with pytest.raises(errors.ConfigurationError):
        await node.destroy_all(user_id)


async def test_single_session_ends_every_other_session_of_the_user(
    redis_url: str, raw: Redis
) -> None:
    async with RedisJWT(
        secret=SECRET, redis_url=redis_url, layout="redis-jwt", multiple=False
    ) as single:
        first = await single.sign("alice")
        await node_session(raw, "alice:NodeMade001")
        await node_session(raw, "alicex:NodeMade002")  # another user sharing a prefix
        await node_session(raw, "bob:NodeMade003")
        await raw.set("alice:preferences", "dark")  # app data, not a session
        await raw.set("alice:settings:x", "{}")
        events = node_events(single)
        second = await single.sign("alice", data_session={"n": 2})
        with pytest.raises(errors.SessionNotFound):
            await single.verify(first)
        assert (await single.verify(second, with_session=True)).data_session == {"n": 2}
        assert sorted(await raw.keys("*")) == sorted(
            [
                jwt.decode(second, SECRET, algorithms=["HS256"])["rjwt"],
                "alicex:NodeMade002",
                "bob:NodeMade003",
                "alice:preferences",
                "alice:settings:x",
            ]
        )
        assert await single.count("alice") == 1
        kinds = sorted((e.kind, e.reason or "") for e in events)
        assert kinds == [("created", ""), ("destroyed", "evicted"), ("destroyed", "evicted")]


def node_events(auth: RedisJWT) -> list[Event]:
    seen: list[Event] = []
    auth.events.on("*", seen.append)
    return seen


async def test_list_count_revoke_destroy_all(node: RedisJWT, raw: Redis) -> None:
    t1 = await node.sign("alice", ttl="1 hour", data_session={"device": "phone"})
    await node.sign("alice", ttl="2 hours")
    await node_session(raw, "alice:NodeMade001", {"device": "node"}, ttl=None)
    await raw.set("alice:notasession", "x")
    await raw.set("alice:NotJsonAtAll", "x")
    await raw.hset("alice:AHashKey001", "f", "v")
    infos = await node.sessions("alice")
    assert infos[0].ttl == -1  # never expires: listed first
    assert 7190 <= infos[1].ttl <= 7200
    assert 3590 <= infos[2].ttl <= 3600
    assert [i.data_session for i in infos] == [{"device": "node"}, {}, {"device": "phone"}]
    assert {i.issued_at for i in infos} == {datetime.fromtimestamp(0, UTC)}
    assert await node.count("alice") == 3
    assert await node.count("nobody") == 0
    assert await node.destroy_all("nobody") == 0
    assert await node.revoke("alice", "NodeMade001")
    assert not await node.revoke("alice", "NodeMade001")
    assert not await node.revoke("alice", "bad:id")
    assert await node.destroy_all("alice") == 2
    assert await node.count("alice") == 0
    with pytest.raises(errors.SessionNotFound):
        await node.verify(t1)
    assert await raw.exists("alice:notasession", "alice:NotJsonAtAll", "alice:AHashKey001") == 3


async def test_destroy_and_extend(redis_url: str, raw: Redis) -> None:
    async with RedisJWT(
        secret=SECRET, redis_url=redis_url, layout="redis-jwt", ttl="1 hour", max_age="2 hours"
    ) as node:
        token = await node.sign("alice", ttl="60 seconds")
        key = jwt.decode(token, SECRET, algorithms=["HS256"])["rjwt"]
        assert (await node.extend(token)).ttl >= 3599
        assert 3599 <= await raw.ttl(key) <= 3600
        await raw.expire(key, 7000)  # longer than the idle ttl: never shortened
        assert (await node.extend(token)).ttl >= 6999
        await node_session(raw, "old:abcdefghijk", ttl=10)
        old = node_token("old:abcdefghijk", iat=int(time.time()) - 3 * 3600)
        assert (await node.extend(old)).ttl <= 10  # past iat + max_age: not extended
        await node_session(raw, "forever:abcdefghijk", ttl=None)
        assert (await node.extend(node_token("forever:abcdefghijk"))).ttl == -1
        capped = node_token(key, exp=int(time.time()) + 100)  # exp caps an extension too
        await raw.expire(key, 10)
        assert 90 <= (await node.extend(capped)).ttl <= 100
        expired = node_token(key, exp=int(time.time()) - 5)
        assert await node.destroy(expired)
        assert not await node.destroy(expired)
        with pytest.raises(errors.SessionNotFound):
            await node.extend(token)


async def test_sliding_verify_extends_in_one_round_trip(redis_url: str, raw: Redis) -> None:
    async with RedisJWT(
        secret=SECRET, redis_url=redis_url, layout="redis-jwt", ttl="1 hour", sliding=True
    ) as node:
        token = await node.sign("alice", ttl="60 seconds", data_session={"a": 1})
        key = jwt.decode(token, SECRET, algorithms=["HS256"])["rjwt"]
        session = await node.verify(token, with_session=True)
        assert session.ttl >= 3599
        assert session.data_session == {"a": 1}
        assert await raw.ttl(key) >= 3599
        await raw.set(key, "not json", ex=100)
        with pytest.raises(errors.StoreError):
            await node.verify(token, with_session=True)
        await raw.set(key, "[1]", ex=100)
        with pytest.raises(errors.StoreError):
            await node.verify(token, with_session=True)
        await raw.delete(key)
        await raw.hset(key, "f", "v")
        assert (await node.verify(token, with_session=True)).data_session == {}


def test_options_the_node_layout_cannot_honour_are_refused() -> None:
    hs = Key.hmac("k", SECRET)
    refused = [
        {"keys": [hs]},
        {"keys": [Key.hmac(None, SECRET), hs]},
        {"secret": SECRET + SECRET, "algorithm": "HS512"},
        {"secret": SECRET, "max_sessions": 3},
        {"secret": SECRET, "kea": True},
        {"secret": SECRET, "issuer": "me"},
        {"secret": SECRET, "audience": "app"},
        {"secret": SECRET, "redis": RedisCluster(host="127.0.0.1", port=1)},
    ]
    for options in refused:
        with pytest.raises(errors.ConfigurationError, match="redis-jwt"):
            RedisJWT(layout="redis-jwt", **options)  # type: ignore[arg-type]
    with pytest.raises(errors.ConfigurationError, match="layout must be"):
        RedisJWT(secret=SECRET, layout="v2")  # type: ignore[arg-type]
    RedisJWT(secret=SECRET, layout="redis-jwt", multiple=False, max_sessions=1)


async def test_bad_data_is_refused_before_any_write(node: RedisJWT, raw: Redis) -> None:
    with pytest.raises(errors.ConfigurationError):
        await node.sign("alice", data_session={"x": object()})
    with pytest.raises(errors.ConfigurationError):
        await node.sign("alice", data_token=[1])  # type: ignore[arg-type]
    with pytest.raises(errors.ConfigurationError):
        await node.sign("alice", ttl="forever")
    with pytest.raises(errors.ConfigurationError):
        await node.sign("alice", ttl="10 years")
    assert await raw.dbsize() == 0


async def test_settings_select_the_layout(
    redis_url: str, raw: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_JWT_SECRET", SECRET)
    monkeypatch.setenv("REDIS_JWT_REDIS_URL", redis_url)
    monkeypatch.setenv("REDIS_JWT_LAYOUT", "redis-jwt")
    async with RedisJWT.from_settings() as node:
        token = await node.sign("alice")
        assert await raw.exists(jwt.decode(token, SECRET, algorithms=["HS256"])["rjwt"])
    monkeypatch.setenv("REDIS_JWT_LAYOUT", "v2")
    with pytest.raises(errors.ConfigurationError, match="layout must be"):
        RedisJWT.from_settings()


@pytest.mark.parametrize("layout", ["v1", "redis-jwt"])
async def test_sign_refuses_data_that_is_not_valid_unicode(redis_url: str, layout: str) -> None:
    # A lone surrogate survives json.dumps but not UTF-8: no other language could read it.
    async with RedisJWT(secret=SECRET, redis_url=redis_url, layout=layout) as auth:  # type: ignore[arg-type]
        with pytest.raises(errors.ConfigurationError, match="JSON-serialisable"):
            await auth.sign("alice", data_token={"x": "\ud800"})
        with pytest.raises(errors.ConfigurationError, match="JSON-serialisable"):
            await auth.sign("alice", data_session={"x": "\udfff"})
        with pytest.raises(errors.ConfigurationError):
            await auth.sign("alice", data_token={"x": float("nan")})
        assert await auth.count("alice") == 0
