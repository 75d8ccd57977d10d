"""Cancelling verify mid-flight never hands a reply to the wrong caller nor leaks connections.

A proxy delays every chunk both ways, so cancellations land while a command is
on the wire, while its reply is in flight, or while a connection is being made.
Commands are sent by the auto-pipeline's own task (see ``_pipeline.py``): a
cancelled caller only abandons its future, so its reply is still read and the
connection stays in step; no cancellation costs a reconnect.

A cancelled verify may still return its own session: on Python 3.11,
``asyncio.wait_for`` (used by redis-py to send) keeps a result that completed
together with the cancellation (fixed in 3.12). That is allowed; a reply for
another caller, or any other outcome, is not.
"""

from __future__ import annotations

import asyncio
import random

import pytest
from redis.asyncio import Redis

from redis_jwt import RedisJWT, Session
from redis_jwt.testing import RedisServer, TCPProxy

from .conftest import SECRET, pool_counts

USERS = [f"user-{i}" for i in range(32)]
CANCELLATIONS = 1000


def pttl_calls(server: RedisServer) -> int:
    """How many PTTL commands the server has run (INFO commandstats)."""
    stats = str(server.command("INFO", "commandstats"))
    line = next((x for x in stats.splitlines() if x.startswith("cmdstat_pttl:")), "calls=0,")
    return int(line.split("calls=")[1].split(",")[0])


# layout v1 verifies through the auto-pipeline; layout "redis-jwt" (Node interop)
# sends its PTTL straight through redis-py, which drops a connection whose
# command was cancelled: both paths must keep every reply with its caller.
@pytest.mark.parametrize("layout", ["v1", "redis-jwt"])
async def test_cancelled_verifies_never_get_or_give_another_callers_reply(layout: str) -> None:
    rng = random.Random(20250601)
    with RedisServer() as server:
        async with (
            TCPProxy("127.0.0.1", server.port) as proxy,
            RedisJWT(
                secret=SECRET,
                redis_url=proxy.url,
                timeout_seconds=2,
                layout=layout,  # type: ignore[arg-type]
            ) as auth,
        ):
            tokens = {user: await auth.sign(user) for user in USERS}
            own = {user: (await auth.verify(token)).session_id for user, token in tokens.items()}

            async def verify_as(user: str) -> Session:
                session = await auth.verify(tokens[user])
                # The reply must be this caller's: its own user and session.
                assert (session.user_id, session.session_id) == (user, own[user])
                return session

            async def with_deadline(user: str, seconds: float) -> Session:
                async with asyncio.timeout(seconds):
                    return await verify_as(user)

            pttls_before = pttl_calls(server)

            def sent_then_cancelled() -> int:
                # Redis ran more PTTLs than callers received replies (each verify is
                # one PTTL): those cancellations hit a command already sent.
                return pttl_calls(server) - pttls_before - completed

            proxy.delay_seconds = 0.002
            cancelled = completed = rounds = undisturbed = 0
            # How many cancellations land after the send depends on the machine's
            # speed: go on until enough did (the mid-flight case is the point).
            while rounds < 1000 and (
                cancelled < CANCELLATIONS or sent_then_cancelled() < CANCELLATIONS // 4
            ):
                rounds += 1
                doomed: list[asyncio.Task[Session]] = []
                tasks: list[asyncio.Task[Session]] = []
                # One caller in four is left alone; the others are cancelled by a
                # deadline or by task.cancel(), at random moments.
                for i, user in enumerate(USERS):
                    if i % 4 == 0:
                        tasks.append(asyncio.create_task(verify_as(user)))
                    elif i % 2:
                        deadline = rng.uniform(0.001, 0.010)
                        tasks.append(asyncio.create_task(with_deadline(user, deadline)))
                    else:
                        task = asyncio.create_task(verify_as(user))
                        doomed.append(task)
                        tasks.append(task)
                await asyncio.sleep(rng.uniform(0.001, 0.010))
                for task in doomed:
                    task.cancel()
                for i, result in enumerate(await asyncio.gather(*tasks, return_exceptions=True)):
                    if isinstance(result, Session):
                        completed += 1
                    elif isinstance(result, asyncio.CancelledError | TimeoutError) and i % 4:
                        cancelled += 1
                    else:
                        raise AssertionError(f"{USERS[i]}: unexpected {result!r}")
                    undisturbed += i % 4 == 0
            assert cancelled >= CANCELLATIONS, (cancelled, rounds)
            assert undisturbed == rounds * len(USERS) // 4  # every undisturbed verify succeeded
            if layout == "v1":
                # Cancelled callers never interrupt a connection: none had to be replaced.
                assert proxy.connections_total <= len(USERS), proxy.connections_total
            assert sent_then_cancelled() >= CANCELLATIONS // 4, (sent_then_cancelled(), rounds)

            # Healthy afterwards: plain verifies work, nothing is stuck in use, and the
            # connections that cancellations dropped were closed, not leaked.
            proxy.delay_seconds = 0
            for user in USERS:
                await verify_as(user)
            client = auth.redis
            assert isinstance(client, Redis)
            idle, in_use = pool_counts(client)
            assert in_use == 0
            assert idle <= len(USERS) + 1

            # The proxy runs on this loop: poll without blocking it.
            for _ in range(100):
                clients = str(server.command("CLIENT", "LIST")).count("id=") - 1  # minus ours
                if clients <= idle:
                    break
                await asyncio.sleep(0.05)
            assert clients <= idle, (clients, idle)
