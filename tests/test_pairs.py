"""Refresh pairs: sign_pair, refresh, rotation, the grace, reuse detection (layout v1)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import jwt
import pytest
from pydantic import SecretStr

from redis_jwt import RedisJWT, Settings, TokenPair, errors
from redis_jwt.testing import RedisServer, TCPProxy

from .conftest import SECRET
from .events_helpers import Recorder, settle
from .topologies import (  # noqa: F401 (fixtures)
    Topology,
    cluster_topology_fixture,
    sentinel_topology_fixture,
    standalone_topology_fixture,
    topology_fixture,
)


def claims_of(token: str) -> dict[str, Any]:
    """The payload of one of our tokens (its signature checked with the test secret)."""
    decoded: dict[str, Any] = jwt.decode(token, SECRET, algorithms=["HS256"])
    return decoded


def generation(pair: TokenPair) -> int:
    gen: int = claims_of(pair.refresh_token)["gen"]
    return gen


async def stored_generation(auth: RedisJWT, user_id: str, session_id: str) -> int:
    raw = await auth.redis.hget(auth.layout.session_key(user_id, session_id), "g")
    return int(raw or 0)


async def wait_for(check: Callable[[], bool], what: str, timeout_seconds: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


# -- one pair ------------------------------------------------------------------------


async def test_a_pair_is_one_session_verified_by_its_access_token(redis_url: str) -> None:
    async with RedisJWT(secret=SECRET, redis_url=redis_url, access_ttl="5 minutes") as auth:
        pair = await auth.sign_pair(
            "u1", data_token={"role": "admin"}, data_session={"cart": [1, 2]}
        )
        session = await auth.verify(pair.access_token, with_session=True)
        assert session.user_id == "u1"
        assert session.data_token == {"role": "admin"}
        assert session.data_session == {"cart": [1, 2]}
        access, refresh = claims_of(pair.access_token), claims_of(pair.refresh_token)
        assert access["exp"] - access["iat"] == 300
        assert "use" not in access
        assert refresh["use"] == "refresh"
        assert refresh["gen"] == 0
        assert refresh["sid"] == access["sid"] == session.session_id
        assert refresh["exp"] - refresh["iat"] == 30 * 86400  # the session's cap
        assert pair.access_expires_at.timestamp() == access["exp"]
        # The refresh token works while the session lives: the idle ttl (1 day).
        left = pair.refresh_expires_at.timestamp() - time.time()
        assert 86400 - 60 < left <= 86400
        assert await auth.count("u1") == 1


async def test_verify_refuses_a_refresh_token_and_refresh_an_access_token(auth: RedisJWT) -> None:
    pair = await auth.sign_pair("u1")
    for _ in range(2):  # the second time from the decoded-token cache
        with pytest.raises(errors.InvalidToken):
            await auth.verify(pair.refresh_token)
        with pytest.raises(errors.InvalidToken):
            await auth.refresh(pair.access_token)
    plain = await auth.sign("u1")
    with pytest.raises(errors.InvalidToken):
        await auth.refresh(plain)
    with pytest.raises(errors.MissingToken):
        await auth.refresh("")
    with pytest.raises(errors.InvalidToken):
        await auth.refresh("not.a.token")
    # None of that spent anything: the pair refreshes normally.
    assert generation(await auth.refresh(pair.refresh_token)) == 1


async def test_a_forged_kind_or_generation_is_refused(auth: RedisJWT) -> None:
    pair = await auth.sign_pair("u1")
    claims = claims_of(pair.refresh_token)
    for bad in ({"use": "access"}, {"gen": "1"}, {"gen": -1}, {"gen": True}):
        with pytest.raises(errors.InvalidToken):
            await auth.refresh(jwt.encode({**claims, **bad}, SECRET, algorithm="HS256"))
    # A well-signed generation the session never issued ends nothing.
    ahead = jwt.encode({**claims, "gen": 5}, SECRET, algorithm="HS256")
    with pytest.raises(errors.InvalidToken):
        await auth.refresh(ahead)
    assert await auth.count("u1") == 1


async def test_refresh_keeps_the_session_and_its_data_and_resets_the_idle_ttl(
    redis_url: str,
) -> None:
    async with RedisJWT(secret=SECRET, redis_url=redis_url, ttl="1 hour") as auth:
        pair = await auth.sign_pair("u1", data_token={"v": 1}, data_session={"p": True})
        sid = (await auth.verify(pair.access_token)).session_id
        key = auth.layout.session_key("u1", sid)
        await auth.redis.pexpire(key, 5000)  # as if the session had idled for a while
        nxt = await auth.refresh(pair.refresh_token)
        assert await auth.redis.pttl(key) > 3_500_000
        session = await auth.verify(nxt.access_token, with_session=True)
        assert session.session_id == sid
        assert session.data_token == {"v": 1}
        assert session.data_session == {"p": True}
        assert generation(nxt) == 1
        # New public data: in both tokens, and kept by later refreshes.
        again = await auth.refresh(nxt.refresh_token, data_token={"v": 2})
        assert (await auth.verify(again.access_token)).data_token == {"v": 2}
        assert claims_of(again.refresh_token)["dat"] == {"v": 2}
        last = await auth.refresh(again.refresh_token)
        assert (await auth.verify(last.access_token)).data_token == {"v": 2}
        assert [generation(p) for p in (again, last)] == [2, 3]
        assert await auth.count("u1") == 1
        # The old access tokens live until their own exp, like any token of a live session.
        assert (await auth.verify(pair.access_token)).session_id == sid


async def test_the_access_token_never_outlives_the_session_cap(redis_url: str) -> None:
    async with RedisJWT(
        secret=SECRET, redis_url=redis_url, ttl="1 hour", max_age="1 hour", access_ttl="2 hours"
    ) as auth:
        pair = await auth.sign_pair("u1")
        access = claims_of(pair.access_token)
        assert access["exp"] - access["iat"] == 3600
        assert access["exp"] == claims_of(pair.refresh_token)["exp"]
        nxt = await auth.refresh(pair.refresh_token)
        assert claims_of(nxt.access_token)["exp"] <= access["exp"]


async def test_bad_data_token_on_refresh_writes_nothing(redis_url: str) -> None:
    async with RedisJWT(secret=SECRET, redis_url=redis_url, refresh_grace=0) as auth:
        pair = await auth.sign_pair("u1")
        with pytest.raises(errors.ConfigurationError):
            await auth.refresh(pair.refresh_token, data_token={"x": object()})
        with pytest.raises(errors.ConfigurationError):
            await auth.refresh(pair.refresh_token, data_token={"big": "x" * 20_000})
        with pytest.raises(errors.ConfigurationError):
            await auth.refresh(pair.refresh_token, data_token=["not", "a", "dict"])  # type: ignore[arg-type]
        # Not spent (grace 0 would call a second use reuse).
        assert generation(await auth.refresh(pair.refresh_token)) == 1


async def test_sign_pair_follows_the_limits_and_refuses_bad_input(redis_url: str) -> None:
    async with RedisJWT(secret=SECRET, redis_url=redis_url, max_sessions=1) as auth:
        old = await auth.sign_pair("one")
        new = await auth.sign_pair("one")
        with pytest.raises(errors.SessionNotFound):  # evicted by the limit, as a sign would be
            await auth.refresh(old.refresh_token)
        assert generation(await auth.refresh(new.refresh_token)) == 1
        for bad in (
            {"data_session": {"x": object()}},
            {"data_token": {"big": "x" * 20_000}},
            {"ttl": "soon"},
            {"client": {"ip": "203.0.113.7"}},
        ):
            with pytest.raises(errors.ConfigurationError):
                await auth.sign_pair("two", **bad)
        assert await auth.count("two") == 0


async def test_stored_public_data_that_is_not_json_is_a_store_error(auth: RedisJWT) -> None:
    pair = await auth.sign_pair("u1")
    sid = (await auth.verify(pair.access_token)).session_id
    await auth.redis.hset(auth.layout.session_key("u1", sid), "p", "{not json")
    with pytest.raises(errors.StoreError):
        await auth.refresh(pair.refresh_token)


# -- the chain on every topology ----------------------------------------------------------


async def test_reuse_after_the_grace_ends_the_session(topology: Topology) -> None:
    async with RedisJWT(
        secret=SECRET, redis_url=topology.url, refresh_grace=0, listen=True
    ) as auth:
        seen = Recorder(auth)
        pair = await auth.sign_pair("thief", data_session={"n": 1})
        sid = (await auth.verify(pair.access_token)).session_id
        nxt = await auth.refresh(pair.refresh_token)
        with pytest.raises(errors.RefreshTokenReused):
            await auth.refresh(pair.refresh_token)
        # The whole session ended: every token of the chain is refused.
        for token in (pair.access_token, nxt.access_token):
            with pytest.raises(errors.SessionNotFound):
                await auth.verify(token)
        with pytest.raises(errors.SessionNotFound):
            await auth.refresh(nxt.refresh_token)
        assert await auth.count("thief") == 0
        await seen.wait_for(
            lambda r: sid in r.session_ids("destroyed"), timeout_seconds=10, what="destroyed"
        )
        assert [e.reason for e in seen.of("destroyed")] == ["refresh_reuse"]


async def test_within_the_grace_a_spent_token_continues_the_same_chain(
    topology: Topology,
) -> None:
    async with RedisJWT(secret=SECRET, redis_url=topology.url, refresh_grace="1 hour") as auth:
        first = await auth.sign_pair("tabs", data_token={"t": 0})
        sid = (await auth.verify(first.access_token)).session_id
        tab_a = await auth.refresh(first.refresh_token, data_token={"t": 1})
        tab_b = await auth.refresh(first.refresh_token)  # the other tab, a moment later
        assert generation(tab_a) == generation(tab_b) == 1
        assert (await auth.verify(tab_b.access_token)).data_token == {"t": 1}
        # Either tab's token moves the one chain on; the other joins it.
        a2 = await auth.refresh(tab_a.refresh_token)
        b2 = await auth.refresh(tab_b.refresh_token)
        assert generation(a2) == generation(b2) == 2
        assert await stored_generation(auth, "tabs", sid) == 2
        # Public data emptied by one tab stays empty for the other (within the grace).
        c3 = await auth.refresh(a2.refresh_token, data_token={})
        c3_other = await auth.refresh(b2.refresh_token)
        for pair in (c3, c3_other):
            assert (await auth.verify(pair.access_token)).data_token == {}
        # Two generations back is past the grace's reach: reuse.
        with pytest.raises(errors.RefreshTokenReused):
            await auth.refresh(first.refresh_token)
        with pytest.raises(errors.SessionNotFound):
            await auth.verify(c3.access_token)


async def test_refresh_of_a_dead_session_is_an_authentication_error(topology: Topology) -> None:
    async with RedisJWT(secret=SECRET, redis_url=topology.url) as auth:
        destroyed = await auth.sign_pair("gone")
        assert await auth.destroy(destroyed.access_token) is True
        with pytest.raises(errors.SessionNotFound):
            await auth.refresh(destroyed.refresh_token)
        everywhere = [await auth.sign_pair("gone") for _ in range(2)]
        assert await auth.destroy_all("gone") == 2
        for pair in everywhere:
            with pytest.raises(errors.SessionNotFound):
                await auth.refresh(pair.refresh_token)
        assert await auth.count("gone") == 0


WORKER = """
import asyncio, json, os, sys
from redis_jwt import RedisJWT, errors

async def main():
    url, token, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    async with RedisJWT(secret=os.environ["PAIRS_SECRET"], redis_url=url,
                        refresh_grace="1 hour", timeout_seconds=5) as auth:
        await auth.ping()
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

        async def one():
            try:
                return (await auth.refresh(token)).refresh_token
            except errors.RedisJWTError as exc:
                return type(exc).__name__

        print(json.dumps(await asyncio.gather(*(one() for _ in range(n)))), flush=True)

asyncio.run(main())
"""


async def test_fifty_concurrent_refreshes_from_two_processes_leave_one_chain(
    topology: Topology,
) -> None:
    async with RedisJWT(
        secret=SECRET, redis_url=topology.url, refresh_grace="1 hour", timeout_seconds=5
    ) as auth:
        pair = await auth.sign_pair("race", data_session={"kept": True})
        sid = (await auth.verify(pair.access_token)).session_id
        worker = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WORKER,
            topology.url,
            pair.refresh_token,
            "25",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PAIRS_SECRET": SECRET},
        )
        assert worker.stdin is not None
        assert worker.stdout is not None
        try:
            ready = await asyncio.wait_for(worker.stdout.readline(), 60)
            assert ready.strip() == b"ready"
            worker.stdin.write(b"go\n")
            await worker.stdin.drain()

            async def one() -> str:
                try:
                    return (await auth.refresh(pair.refresh_token)).refresh_token
                except errors.RedisJWTError as exc:
                    return type(exc).__name__

            ours = await asyncio.gather(*(one() for _ in range(25)))
            theirs = json.loads(await asyncio.wait_for(worker.stdout.readline(), 60))
        finally:
            if worker.returncode is None:
                worker.kill()
            await worker.wait()
        results = [*ours, *theirs]
        assert len(results) == 50
        # Every refresh got a pair, all on the one generation after the spent one.
        gens = {claims_of(token)["gen"] for token in results}
        sids = {claims_of(token)["sid"] for token in results}
        assert gens == {1}
        assert sids == {sid}
        assert await stored_generation(auth, "race", sid) == 1
        assert await auth.count("race") == 1
        # One chain: any of those tokens moves it on, the others join it.
        moved = await auth.refresh(results[0])
        joined = await auth.refresh(results[-1])
        assert generation(moved) == generation(joined) == 2
        assert (await auth.verify(joined.access_token, with_session=True)).data_session == {
            "kept": True
        }


# -- a real grace, a paused server, options ----------------------------------------------


async def test_reuse_is_detected_once_the_grace_has_passed(redis_url: str) -> None:
    grace = timedelta(seconds=0.5)
    async with RedisJWT(secret=SECRET, redis_url=redis_url, refresh_grace=grace) as auth:
        pair = await auth.sign_pair("late")
        await auth.refresh(pair.refresh_token)
        deadline = time.monotonic() + 30
        # Within the grace the spent token still continues the chain; poll until it is over.
        while True:
            assert time.monotonic() < deadline, "the grace never ended"
            try:
                again = await auth.refresh(pair.refresh_token)
            except errors.RefreshTokenReused:
                break
            assert generation(again) == 1
            await asyncio.sleep(0.05)
        assert await auth.count("late") == 0


async def test_a_refresh_that_timed_out_on_a_paused_server_never_applies(
    own_server: RedisServer,
) -> None:
    url = own_server.url
    async with RedisJWT(secret=SECRET, redis_url=url, refresh_grace=0) as auth:
        pair = await auth.sign_pair("paused")
        errs = _errors(own_server)
        own_server.pause()
        try:
            with pytest.raises(errors.StoreError):
                await auth.refresh(pair.refresh_token)
        finally:
            own_server.resume()
        # The call reached Redis before it stopped and runs when it resumes, too late.
        await wait_for(lambda: _errors(own_server) > errs, "the late call to run")
        # Not spent: with no grace, a spent token would now be reuse.
        assert generation(await auth.refresh(pair.refresh_token)) == 1
        assert await auth.count("paused") == 1


@pytest.fixture
async def proxy(redis_server: RedisServer) -> AsyncIterator[TCPProxy]:
    redis_server.command("FLUSHALL")
    async with TCPProxy(redis_server.host, redis_server.port) as running:
        yield running


async def test_a_refresh_whose_reply_is_lost_applies_once(proxy: TCPProxy) -> None:
    # No grace: had the retry run the script again, the spent token would be reuse.
    async with RedisJWT(secret=SECRET, redis_url=proxy.url, refresh_grace=0, listen=True) as auth:
        seen = Recorder(auth)
        pair = await auth.sign_pair("lost")
        sid = (await auth.verify(pair.access_token)).session_id
        proxy.drop_next_reply(b"EVALSHA")
        nxt = await auth.refresh(pair.refresh_token)
        assert proxy.replies_dropped == 1
        assert generation(nxt) == 1
        assert await stored_generation(auth, "lost", sid) == 1
        assert generation(await auth.refresh(nxt.refresh_token)) == 2
        await settle()
        assert seen.of("destroyed") == []


def _info(server: RedisServer, section: str) -> dict[str, str]:
    text = server.command("INFO", section)
    assert isinstance(text, str)
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


async def test_a_full_redis_refuses_a_refresh_but_still_ends_a_reused_chain(
    redis_server: RedisServer, redis_url: str
) -> None:
    async with RedisJWT(secret=SECRET, redis_url=redis_url, refresh_grace=0) as auth:
        pair = await auth.sign_pair("full")
        moved = await auth.sign_pair("full")
        spent = moved.refresh_token
        await auth.refresh(spent)
        keys = int(str(redis_server.command("DBSIZE")))
        used = int(_info(redis_server, "memory")["used_memory"])
        redis_server.command("CONFIG", "SET", "maxmemory-policy", "noeviction")
        redis_server.command("CONFIG", "SET", "maxmemory", str(used // 2))
        try:
            for _ in range(5):
                with pytest.raises(errors.StoreError):
                    await auth.refresh(pair.refresh_token)
            assert int(str(redis_server.command("DBSIZE"))) == keys  # nothing written
            await auth.verify(pair.access_token)  # verifying still works
            # Ending a stolen session frees memory, so a full Redis still does it.
            with pytest.raises(errors.RefreshTokenReused):
                await auth.refresh(spent)
            with pytest.raises(errors.SessionNotFound):
                await auth.verify(moved.access_token)
        finally:
            redis_server.command("CONFIG", "SET", "maxmemory", "0")
        # Memory back: the first pair was never spent.
        assert generation(await auth.refresh(pair.refresh_token)) == 1


def _errors(server: RedisServer) -> int:
    text = server.command("INFO", "errorstats")
    assert isinstance(text, str)
    total = 0
    for line in text.splitlines():
        if line.startswith("errorstat_"):
            total += int(line.split("count=", 1)[1].split(",")[0])
    return total


async def test_the_pair_options_and_their_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_JWT_ACCESS_TTL", "2 minutes")
    monkeypatch.setenv("REDIS_JWT_REFRESH_GRACE", "0")
    settings = Settings(secret=SecretStr(SECRET))
    assert (settings.access_ttl, settings.refresh_grace) == ("2 minutes", "0")
    RedisJWT.from_settings(settings)
    for bad in (
        {"access_ttl": "soon"},
        {"access_ttl": 0},
        {"refresh_grace": -1},
        {"refresh_grace": "2 hours"},
        {"refresh_grace": 7200},
    ):
        with pytest.raises(errors.ConfigurationError):
            RedisJWT(secret=SECRET, **bad)
    for fine in (0, 2.5, "30 seconds", timedelta(0)):
        RedisJWT(secret=SECRET, refresh_grace=fine)


async def test_the_node_layout_has_no_pairs(redis_url: str) -> None:
    async with RedisJWT(secret=SECRET, redis_url=redis_url, layout="redis-jwt") as auth:
        with pytest.raises(errors.ConfigurationError, match="layout v1"):
            await auth.sign_pair("u1")
        with pytest.raises(errors.ConfigurationError, match="layout v1"):
            await auth.refresh("a.b.c")
