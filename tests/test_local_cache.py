"""The opt-in local verify cache: no round trip for a live session, never a stale one.

Invalidation is Redis's client-side caching (``CLIENT TRACKING ... BCAST``):
these tests change sessions through a second instance and through raw
clients, kill and freeze the invalidation link, and check that a session
Redis no longer has is never returned once the change is done.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from redis_jwt import RedisJWT, Session, Settings, errors
from redis_jwt.testing import RedisClusterSet, RedisServer, TCPProxy

from .conftest import SECRET


@pytest.fixture
async def cached(redis_url: str) -> AsyncIterator[RedisJWT]:
    """An open RedisJWT with the local cache."""
    async with RedisJWT(secret=SECRET, redis_url=redis_url, local_cache=True) as auth:
        yield auth


@pytest.fixture
async def other(redis_url: str) -> AsyncIterator[RedisJWT]:
    """A second instance on the same Redis, without a cache."""
    async with RedisJWT(secret=SECRET, redis_url=redis_url) as auth:
        yield auth


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[Redis]:
    """Another Redis client, as another program would use."""
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def _session_key(auth: RedisJWT, token: str) -> str:
    session = await auth.verify(token)
    return auth.layout.session_key(session.user_id, session.session_id)


async def _links_fresh(auth: RedisJWT) -> None:
    """Wait (bounded) until the invalidation links were proven alive lately enough
    that the next verify may be served from memory. On a busy machine a late ping
    lets the proof lapse, and the cache then asks Redis, as it must."""
    cache = auth._cache
    assert cache is not None
    for _ in range(400):
        if cache.links.alive_until - time.monotonic() > 0.3:
            return
        await asyncio.sleep(0.025)
    raise AssertionError("the invalidation links were not proven alive within 10 s")


async def test_a_repeated_verify_costs_no_round_trip(redis_server: RedisServer) -> None:
    redis_server.command("FLUSHALL")
    async with (
        TCPProxy("127.0.0.1", redis_server.port) as proxy,
        RedisJWT(secret=SECRET, redis_url=proxy.url, local_cache=True, ttl=600) as auth,
    ):
        cache = auth._cache
        assert cache is not None
        token = await auth.sign("u", data_token={"role": "admin"})
        await _links_fresh(auth)
        before = proxy.round_trips
        first = await auth.verify(token)
        assert proxy.round_trips - before == 1
        for _ in range(20):
            await _links_fresh(auth)
            hits = cache.hits
            again = await auth.verify(token)
            assert cache.hits == hits + 1  # from memory: no round trip
            assert (again.user_id, again.session_id) == (first.user_id, first.session_id)
            assert again.data_token == {"role": "admin"}
            assert 598 <= again.ttl <= 600
            assert again.expires_at <= first.expires_at


async def test_the_cache_serves_from_the_first_verify_after_start(
    redis_server: RedisServer,
) -> None:
    """Starting waits for the links and the first database check: the very first
    ``verify`` fills the cache (the race once seen with redis-py 6.2, whose new
    connections need fewer round trips than 8.x's, so a quick verify came first)."""
    redis_server.command("FLUSHALL")
    async with RedisJWT(secret=SECRET, redis_url=redis_server.url) as signer:
        token = await signer.sign("u")
    async with (
        TCPProxy("127.0.0.1", redis_server.port) as proxy,
        RedisJWT(secret=SECRET, redis_url=proxy.url, local_cache=True) as auth,
    ):
        before = proxy.round_trips
        await auth.verify(token)
        assert proxy.round_trips - before == 1
        await auth.verify(token)
        assert proxy.round_trips - before == 1


async def test_returned_values_are_the_callers_own(cached: RedisJWT) -> None:
    token = await cached.sign("u", data_token={"role": "user", "tags": ["a"]})
    first = await cached.verify(token)
    first.data_token["role"] = "admin"
    first.claims["dat"]["tags"].append("b")
    first.claims["sub"] = "someone else"
    again = await cached.verify(token)
    assert again.data_token == {"role": "user", "tags": ["a"]}
    assert again.user_id == again.claims["sub"] == "u"


async def test_destroy_by_another_instance_is_seen_at_once(
    cached: RedisJWT, other: RedisJWT
) -> None:
    for i in range(200):
        token = await other.sign(f"u{i % 7}")
        await cached.verify(token)
        await cached.verify(token)  # from the cache
        assert await other.destroy(token)
        with pytest.raises(errors.SessionNotFound):
            await cached.verify(token)


async def test_every_change_by_any_client_is_seen(
    cached: RedisJWT, other: RedisJWT, raw: Redis
) -> None:
    tokens = [await other.sign("u", ttl=600) for _ in range(4)]
    keys = [await _session_key(cached, t) for t in tokens]
    for token in tokens:
        await cached.verify(token)
    await raw.delete(keys[0])
    with pytest.raises(errors.SessionNotFound):
        await cached.verify(tokens[0])
    await raw.pexpire(keys[1], 30_000)
    assert (await cached.verify(tokens[1])).ttl <= 30
    await other.revoke("u", (await other.verify(tokens[2])).session_id)
    with pytest.raises(errors.SessionNotFound):
        await cached.verify(tokens[2])
    await raw.flushdb()
    # Redis announces a flush during the command, so its notice may follow the
    # flush's reply (a key change is announced before the reply): a moment later.
    await asyncio.sleep(0.01)
    with pytest.raises(errors.SessionNotFound):
        await cached.verify(tokens[3])


async def test_extend_elsewhere_is_seen(cached: RedisJWT, other: RedisJWT, raw: Redis) -> None:
    token = await other.sign("u", ttl=600)
    key = await _session_key(cached, token)
    await raw.pexpire(key, 100_000)
    assert (await cached.verify(token)).ttl <= 100
    await other.extend(token)
    assert (await cached.verify(token)).ttl >= 590


async def test_an_entry_never_outlives_its_session(cached: RedisJWT) -> None:
    token = await cached.sign("u", ttl=1)
    assert (await cached.verify(token)).ttl <= 1
    await asyncio.sleep(1.05)
    with pytest.raises(errors.SessionNotFound):
        await cached.verify(token)


async def test_concurrent_verifies_never_return_a_session_after_its_destroy(
    redis_url: str,
) -> None:
    async with (
        RedisJWT(secret=SECRET, redis_url=redis_url, local_cache=True) as a1,
        RedisJWT(secret=SECRET, redis_url=redis_url, local_cache=True) as a2,
        RedisJWT(secret=SECRET, redis_url=redis_url) as b,
    ):
        tokens = [await b.sign(f"user-{i % 10}") for i in range(60)]
        destroyed: set[str] = set()
        stop = False
        served = 0

        async def verifier(auth: RedisJWT, offset: int) -> None:
            nonlocal served
            i = offset
            while not stop:
                token = tokens[i % len(tokens)]
                i += 1
                gone_before = token in destroyed
                try:
                    await auth.verify(token)
                except errors.SessionNotFound:
                    continue
                assert not gone_before, "a destroyed session was returned"
                served += 1
                if i % 5 == 0:
                    await asyncio.sleep(0)

        async def destroyer() -> None:
            for n, token in enumerate(tokens):
                via = (b, a1, a2)[n % 3]  # the cached instances destroy too
                await asyncio.sleep(0.002)
                assert await via.destroy(token)
                destroyed.add(token)

        workers = [asyncio.create_task(verifier(a, k)) for a in (a1, a2) for k in range(4)]
        try:
            await destroyer()
        finally:
            stop = True
            await asyncio.gather(*workers)
        assert served > 100
        for token in tokens:
            for auth in (a1, a2):
                with pytest.raises(errors.SessionNotFound):
                    await auth.verify(token)


async def _link_ids(server: RedisServer) -> list[str]:
    listing = str(server.command("CLIENT", "LIST"))
    return [
        line.split("id=", 1)[1].split(" ", 1)[0]
        for line in listing.splitlines()
        if "name=redis-jwt-cache" in line
    ]


def _pttl_calls(server: RedisServer) -> int:
    """How many PTTL commands the server has run (what a verify sends on a miss)."""
    stats = str(server.command("INFO", "commandstats"))
    _, found, rest = stats.partition("cmdstat_pttl:calls=")
    return int(rest.split(",", 1)[0]) if found else 0


@pytest.mark.parametrize("kill", ["TYPE pubsub", "ID"])
async def test_a_killed_link_flushes_the_cache(own_server: RedisServer, kill: str) -> None:
    # No proxy here: the link must see the end of the stream as Redis sends it.
    async with RedisJWT(secret=SECRET, redis_url=own_server.url, local_cache=True) as auth:
        tokens = [await auth.sign("u") for _ in range(3)]
        keys = [await _session_key(auth, t) for t in tokens]
        ids = await _link_ids(own_server)
        assert len(ids) == 1
        # An asyncio client, as the app's other code would use: the event loop
        # sees the link end before it sees the reply to the kill.
        admin = Redis.from_url(own_server.url)
        try:
            if kill == "ID":
                await admin.client_kill_filter(_id=ids[0])
            else:
                await admin.client_kill_filter(_type="pubsub")
            # Deleted while no link listens: no invalidation will ever come for it.
            await admin.delete(keys[0])
            with pytest.raises(errors.SessionNotFound):
                await auth.verify(tokens[0])
        finally:
            await admin.aclose()
        # The link comes back by itself and the cache serves again.
        for _ in range(100):
            assert (await auth.verify(tokens[1])).user_id == "u"
            before = _pttl_calls(own_server)
            await auth.verify(tokens[1])
            if _pttl_calls(own_server) == before:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the cache did not serve again after the link came back")


async def test_a_frozen_link_stops_the_cache_within_seconds(own_server: RedisServer) -> None:
    async with (
        TCPProxy("127.0.0.1", own_server.port) as proxy,
        RedisJWT(secret=SECRET, redis_url=proxy.url, local_cache=True, timeout_seconds=0.2) as auth,
    ):
        token = await auth.sign("u")
        key = await _session_key(auth, token)
        await auth.verify(token)
        # Every byte to and from this instance is held, nothing is closed: a
        # half-open link. The deletion below is never announced to it.
        proxy.pause()
        own_server.command("DEL", key)
        started = time.monotonic()
        bypassed_after = None
        while time.monotonic() - started < 5:
            try:
                session = await auth.verify(token)
            except errors.StoreError:  # Redis was asked (and is out of reach): not served
                bypassed_after = time.monotonic() - started
                break
            assert session.user_id == "u"  # bounded staleness, until the silence is noticed
            await asyncio.sleep(0.05)
        assert bypassed_after is not None
        assert bypassed_after < 2.5, bypassed_after  # 1.5 s of silence + the 0.4 s deadline
        proxy.resume()
        for _ in range(100):  # the link and the data connection recover by themselves
            try:
                await auth.verify(token)
            except errors.SessionNotFound:
                break
            except errors.StoreError:
                await asyncio.sleep(0.05)
        else:
            raise AssertionError("verify did not recover")


async def test_redis_down_at_start_then_back(own_server: RedisServer) -> None:
    url = own_server.url
    async with RedisJWT(secret=SECRET, redis_url=url) as signer:
        early = await signer.sign("u")
    own_server.stop()
    async with RedisJWT(secret=SECRET, redis_url=url, local_cache=True, timeout_seconds=0.2) as a:
        with pytest.raises(errors.StoreUnavailable):
            await a.verify(early)
        own_server.restart()
        token = None
        for _ in range(100):
            try:
                token = await a.sign("u")
                break
            except errors.StoreError:
                await asyncio.sleep(0.05)
        assert token is not None
        session = await _answered(a, token)
        assert session.user_id == "u"
        # An asyncio client, as docs/decisions.md says: a blocking DEL returns before
        # the event loop could run the invalidation that Redis sent ahead of its reply.
        raw = Redis.from_url(url)
        try:
            assert await raw.delete(a.layout.session_key("u", session.session_id)) == 1
        finally:
            await raw.aclose()
        for _ in range(50):  # the link may still be reconnecting; never a stale answer
            with pytest.raises(errors.SessionNotFound):
                await _answered(a, token)
            await asyncio.sleep(0.01)


async def _answered(auth: RedisJWT, token: str) -> Session:
    """``verify``, asked again while Redis gives no answer in time (a busy machine).

    A timeout is not an answer, stale or fresh: any other outcome is returned or raised.
    """
    for _ in range(50):
        try:
            return await auth.verify(token)
        except errors.StoreError:
            await asyncio.sleep(0.05)
    raise AssertionError("Redis gave no answer to 50 verifies in a row")


async def test_sliding_and_with_session_go_to_redis(redis_server: RedisServer) -> None:
    redis_server.command("FLUSHALL")
    async with (
        TCPProxy("127.0.0.1", redis_server.port) as proxy,
        RedisJWT(secret=SECRET, redis_url=proxy.url, local_cache=True, sliding=True) as auth,
    ):
        token = await auth.sign("u", data_session={"a": 1})
        for with_session in (False, True, False):
            before = proxy.round_trips
            session = await auth.verify(token, with_session=with_session)
            assert proxy.round_trips - before == 1
            assert isinstance(session, Session)


async def test_settings_and_misuse(redis_url: str) -> None:
    settings = Settings(secret=SecretStr(SECRET), redis_url=redis_url, local_cache=True)
    async with RedisJWT.from_settings(settings) as auth:
        token = await auth.sign("u")
        assert (await auth.verify(token)).user_id == (await auth.verify(token)).user_id
    with pytest.raises(errors.ConfigurationError, match="layout v1"):
        RedisJWT(secret=SECRET, redis_url=redis_url, layout="redis-jwt", local_cache=True)


@pytest.mark.cluster
async def test_cluster_one_link_per_primary(redis_jwt_cluster: RedisClusterSet) -> None:
    url = "redis+cluster://" + ",".join(f"{h}:{p}" for h, p in redis_jwt_cluster.startup_nodes)
    users = [f"user-{n}" for n in range(12)]  # spread over the three primaries
    async with RedisJWT(secret=SECRET, redis_url=url, local_cache=True) as auth:
        tokens = {user: await auth.sign(user) for user in users}
        for token in tokens.values():
            await auth.verify(token)
        links = sum(
            str(node.command("CLIENT", "LIST")).count("name=redis-jwt-cache")
            for node in redis_jwt_cluster.primaries()
        )
        assert links == len(redis_jwt_cluster.primaries())
        client = auth.redis
        for user, token in tokens.items():
            session = await auth.verify(token)  # from the cache
            await client.delete(auth.layout.session_key(user, session.session_id))
            with pytest.raises(errors.SessionNotFound):
                await auth.verify(token)


async def test_user_ids_with_hash_tag_characters_are_cached_and_invalidated(
    redis_server: RedisServer, redis_url: str
) -> None:
    # The cache names a session by its key: an escaped user id must name the
    # same key Redis announces, or a destroy elsewhere would go unseen.
    redis_server.command("FLUSHALL")
    async with (
        TCPProxy("127.0.0.1", redis_server.port) as proxy,
        RedisJWT(secret=SECRET, redis_url=proxy.url, local_cache=True) as auth,
        RedisJWT(secret=SECRET, redis_url=redis_url) as other,
    ):
        users = ["{a}", "100%", "%7B", "a}{b"]
        tokens = [await auth.sign(user) for user in users]
        for user, token in zip(users, tokens, strict=True):
            assert (await auth.verify(token)).user_id == user
        before = proxy.round_trips
        for user, token in zip(users, tokens, strict=True):
            assert (await auth.verify(token)).user_id == user
        assert proxy.round_trips == before  # every one answered from memory
        assert await other.destroy(tokens[0])
        assert await other.destroy(tokens[2])
        for token in (tokens[0], tokens[2]):
            with pytest.raises(errors.SessionNotFound):
                await _verify_when_seen(auth, token)
        assert (await auth.verify(tokens[1])).user_id == "100%"
        assert (await auth.verify(tokens[3])).user_id == "a}{b"


async def _verify_when_seen(auth: RedisJWT, token: str) -> Session:
    """Verify until the invalidation has arrived (bounded), then once more."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            await auth.verify(token)
        except errors.SessionNotFound:
            break
        await asyncio.sleep(0.01)
    return await auth.verify(token)
