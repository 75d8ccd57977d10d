"""Auto-pipelining: concurrent calls share one round trip, and each caller gets its own reply.

The commands issued during one pass of the event loop go out as one pipeline,
sent by a task the library owns. These tests count what crosses a TCP proxy
and break the link on purpose: a batch must never mix up replies, an error
reply belongs to its own caller, a broken connection or the deadline fails
the whole batch with a StoreError, and cancelled callers never disturb the
connection.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import pytest
from redis.asyncio import Redis

from redis_jwt import RedisJWT, Session, errors
from redis_jwt.testing import RedisServer, TCPProxy

from .conftest import SECRET, pool_counts

USERS = [f"user-{i}" for i in range(24)]


@pytest.fixture
async def proxy(redis_server: RedisServer, redis_url: str) -> AsyncIterator[TCPProxy]:
    """A proxy in front of the shared (emptied) server."""
    async with TCPProxy("127.0.0.1", redis_server.port) as proxy:
        yield proxy


async def test_concurrent_verifies_share_one_round_trip(proxy: TCPProxy) -> None:
    async with RedisJWT(secret=SECRET, redis_url=proxy.url) as auth:
        tokens = [await auth.sign(user) for user in USERS]
        await auth.verify(tokens[0])  # a pooled connection exists
        before = proxy.round_trips
        sessions = await asyncio.gather(*(auth.verify(t) for t in tokens))
        assert proxy.round_trips - before == 1
        assert [s.user_id for s in sessions] == USERS


@pytest.mark.parametrize(
    ("sliding", "with_session"), [(False, False), (True, False), (False, True)]
)
async def test_one_verify_is_one_round_trip(
    proxy: TCPProxy, sliding: bool, with_session: bool
) -> None:
    async with RedisJWT(secret=SECRET, redis_url=proxy.url, sliding=sliding) as auth:
        token = await auth.sign("u", data_session={"a": 1})
        for _ in range(3):
            before = proxy.round_trips
            session = await auth.verify(token, with_session=with_session)
            assert proxy.round_trips - before == 1
            assert session.data_session == ({"a": 1} if with_session else None)


async def test_mixed_batch_keeps_every_reply_with_its_caller(auth: RedisJWT) -> None:
    tokens = {user: await auth.sign(user, data_session={"who": user}) for user in USERS}
    calls: list[Coroutine[Any, Any, object]] = [
        auth.verify(token, with_session=bool(i % 2)) for i, token in enumerate(tokens.values())
    ]
    calls.append(auth.sign("newcomer"))
    results = await asyncio.gather(*calls)
    for i, (user, session) in enumerate(zip(tokens, results, strict=False)):
        assert isinstance(session, Session)
        assert session.user_id == user
        assert session.data_session == ({"who": user} if i % 2 else None)
    assert isinstance(results[-1], str)


async def test_noscript_falls_back_to_eval_for_each_caller(redis_url: str) -> None:
    async with RedisJWT(secret=SECRET, redis_url=redis_url) as auth:
        tokens = {user: await auth.sign(user, data_session={"who": user}) for user in USERS}
        await auth.redis.script_flush()
        sessions = await asyncio.gather(
            *(auth.verify(t, with_session=i % 3 != 0) for i, t in enumerate(tokens.values()))
        )
        for i, (user, session) in enumerate(zip(tokens, sessions, strict=True)):
            assert session.user_id == user
            assert session.data_session == (None if i % 3 == 0 else {"who": user})
        # EVAL cached the script again: the next batch needs no fallback.
        assert (await auth.verify(tokens["user-1"], with_session=True)).user_id == "user-1"


async def test_an_error_reply_goes_to_its_own_caller_only(auth: RedisJWT) -> None:
    tokens = {user: await auth.sign(user) for user in USERS}
    broken = (await auth.verify(tokens["user-3"])).session_id
    # A string where the session hash should be: touch.lua's HMGET gets WRONGTYPE.
    await auth.redis.set(auth.layout.session_key("user-3", broken), "not a hash")
    results = await asyncio.gather(
        *(auth.verify(t, with_session=True) for t in tokens.values()), return_exceptions=True
    )
    for user, result in zip(tokens, results, strict=True):
        if user == "user-3":
            assert isinstance(result, errors.StoreError)
            assert not isinstance(result, errors.StoreUnavailable)
        else:
            assert isinstance(result, Session)
            assert result.user_id == user


async def test_a_broken_connection_fails_the_whole_batch(proxy: TCPProxy) -> None:
    async with RedisJWT(secret=SECRET, redis_url=proxy.url, retries=0) as auth:
        tokens = [await auth.sign(user) for user in USERS]
        proxy.delay_seconds = 0.2
        calls = asyncio.gather(*(auth.verify(t) for t in tokens), return_exceptions=True)
        await asyncio.sleep(0.05)
        proxy.drop_connections()
        results = await calls
        assert all(isinstance(r, errors.StoreUnavailable) for r in results), results
        assert len({id(r) for r in results}) == len(results)  # each caller its own error
        proxy.delay_seconds = 0
        assert [s.user_id for s in await asyncio.gather(*map(auth.verify, tokens))] == USERS


async def test_the_deadline_holds_for_every_caller_of_a_batch(proxy: TCPProxy) -> None:
    async with RedisJWT(secret=SECRET, redis_url=proxy.url, timeout_seconds=0.2, retries=0) as auth:
        tokens = [await auth.sign(user) for user in USERS]
        proxy.pause()
        started = time.monotonic()
        results = await asyncio.gather(*map(auth.verify, tokens), return_exceptions=True)
        elapsed = time.monotonic() - started
        assert all(isinstance(r, errors.StoreTimeout) for r in results), results
        assert elapsed < 2, elapsed  # a bound, not a benchmark: 0.2 s deadline
        proxy.resume()
        for _ in range(50):  # the lifecycle probe may be reconnecting: a bounded wait
            try:
                assert (await auth.verify(tokens[0])).user_id == USERS[0]
                break
            except errors.StoreError:
                await asyncio.sleep(0.05)
        else:
            raise AssertionError("verify did not recover after the proxy resumed")


async def test_cancelled_callers_of_mixed_batches_never_get_another_reply() -> None:
    """1000 cancellations of plain, sliding and with_session verifies and signs."""
    rng = random.Random(7)
    with RedisServer() as server:
        async with (
            TCPProxy("127.0.0.1", server.port) as proxy,
            RedisJWT(secret=SECRET, redis_url=proxy.url, timeout_seconds=2) as auth,
        ):
            tokens = {u: await auth.sign(u, data_session={"who": u}) for u in USERS}
            own = {u: (await auth.verify(t)).session_id for u, t in tokens.items()}

            async def call(i: int, user: str) -> object:
                if i % 3 == 2:
                    token = await auth.sign(user)
                    assert (await auth.verify(token)).user_id == user
                    return token
                session = await auth.verify(tokens[user], with_session=i % 3 == 1)
                assert (session.user_id, session.session_id) == (user, own[user])
                assert session.data_session == ({"who": user} if i % 3 == 1 else None)
                return session

            proxy.delay_seconds = 0.002
            cancelled = rounds = 0
            while cancelled < 1000 and rounds < 1000:
                rounds += 1
                tasks = [asyncio.create_task(call(i, u)) for i, u in enumerate(USERS)]
                await asyncio.sleep(rng.uniform(0.0005, 0.008))
                for i, task in enumerate(tasks):
                    if i % 4:
                        task.cancel()
                for i, result in enumerate(await asyncio.gather(*tasks, return_exceptions=True)):
                    if isinstance(result, asyncio.CancelledError) and i % 4:
                        cancelled += 1
                    elif not isinstance(result, Session | str):
                        raise AssertionError(f"{USERS[i]}: unexpected {result!r}")
            assert cancelled >= 1000, (cancelled, rounds)
            assert proxy.connections_total <= len(USERS), proxy.connections_total
            proxy.delay_seconds = 0
            results = await asyncio.gather(*(call(i, u) for i, u in enumerate(USERS)))
            assert len(results) == len(USERS)
            client = auth.redis
            assert isinstance(client, Redis)
            _idle, in_use = pool_counts(client)
            assert in_use == 0


async def test_a_batch_opened_by_a_reply_less_command_answers_every_caller(
    proxy: TCPProxy,
) -> None:
    # With track_activity, each first verify of a session queues its last-seen
    # write (no reply wanted) before its own command: batches then start with
    # a command nobody waits for, and every caller must still get its session.
    async with RedisJWT(secret=SECRET, redis_url=proxy.url, track_activity=True) as auth:
        tokens = [await auth.sign(user) for user in USERS]
        await auth.ping()  # a pooled connection exists
        before = proxy.round_trips
        sessions = await asyncio.gather(*(auth.verify(t) for t in tokens))
        assert proxy.round_trips - before == 1
        assert [s.user_id for s in sessions] == USERS
        for user, session in zip(USERS, sessions, strict=True):
            [info] = await auth.sessions(user)
            assert info.session_id == session.session_id
            assert info.last_seen_at is not None


async def test_the_replies_of_a_big_batch_wake_their_callers_a_group_at_a_time(
    proxy: TCPProxy,
) -> None:
    """96 callers in one batch: the first woken send their next command before the
    others wake, so the second round goes out as several batches, not one."""
    users = [f"user-{i}" for i in range(96)]
    async with RedisJWT(secret=SECRET, redis_url=proxy.url) as auth:
        tokens = [await auth.sign(user) for user in users]
        await auth.verify(tokens[0])  # a pooled connection exists

        async def twice(token: str) -> tuple[str, str]:
            first = await auth.verify(token)
            second = await auth.verify(token)
            return first.user_id, second.user_id

        before = proxy.round_trips
        results = await asyncio.gather(*(twice(t) for t in tokens))
        assert results == [(user, user) for user in users]
        # One batch for the first round; the second round's callers were woken
        # 32 at a time, each group's commands a batch of its own.
        assert proxy.round_trips - before >= 1 + 3


async def test_stopping_the_tasks_while_a_batch_wakes_its_callers_answers_every_caller(
    redis_url: str,
) -> None:
    """The task that wakes a batch's callers is stopped between two groups (the loop
    is closing): the callers it had not woken yet get a StoreError, never a hang."""
    users = [f"user-{i}" for i in range(320)]  # ten groups
    async with RedisJWT(secret=SECRET, redis_url=redis_url) as auth:
        tokens = [await auth.sign(user) for user in users]
        stopping: list[asyncio.Task[None]] = []

        async def verify_then_stop(token: str) -> object:
            session = await auth.verify(token)
            if not stopping:  # the first caller woken stops the instance's tasks
                stopping.append(asyncio.create_task(auth._tasks.aclose()))
                await asyncio.sleep(0)
            return session

        results = await asyncio.wait_for(
            asyncio.gather(*(verify_then_stop(t) for t in tokens), return_exceptions=True),
            timeout=10,
        )
        await stopping[0]
    refused = 0
    for user, result in zip(users, results, strict=True):
        if isinstance(result, Session):
            assert result.user_id == user
        else:
            assert isinstance(result, errors.StoreUnavailable), result
            refused += 1
    assert refused  # the stop came between two groups
