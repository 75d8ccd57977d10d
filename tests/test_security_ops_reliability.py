"""rotate, update, destroy_all(keep=) and activity on a full Redis and with lost replies."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator

import pytest

from redis_jwt import RedisJWT, errors
from redis_jwt.testing import RedisServer, TCPProxy

from .conftest import SECRET
from .events_helpers import Recorder, settle


def _used_memory(server: RedisServer) -> int:
    text = server.command("INFO", "memory")
    assert isinstance(text, str)
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return int(fields["used_memory"])


@contextlib.contextmanager
def _full(server: RedisServer) -> Iterator[None]:
    """Make ``server`` "full": maxmemory below what it uses, nothing to evict."""
    server.command("CONFIG", "SET", "maxmemory-policy", "noeviction")
    server.command("CONFIG", "SET", "maxmemory", str(_used_memory(server) // 2))
    try:
        yield
    finally:
        server.command("CONFIG", "SET", "maxmemory", "0")


async def test_a_full_redis_refuses_rotate_and_update_but_not_the_rest(
    redis_server: RedisServer,
) -> None:
    redis_server.command("FLUSHALL")
    async with RedisJWT(
        secret=SECRET, redis_url=redis_server.url, track_activity=True, activity_resolution=1
    ) as auth:
        tokens = [await auth.sign("full", data_session={"n": n}) for n in range(3)]
        mine = await auth.verify(tokens[0])
        with _full(redis_server):
            with pytest.raises(errors.StoreError):
                await auth.rotate(tokens[0])
            with pytest.raises(errors.StoreError):
                await auth.update(tokens[0], data_session={"pad": "x" * 1000})
            # Nothing changed; verifying (with activity on) goes on.
            session = await auth.verify(tokens[0], with_session=True)
            assert (session.session_id, session.data_session) == (mine.session_id, {"n": 0})
            # Removing data and signing out the other devices free memory: allowed.
            assert (await auth.update(tokens[1], data_session=None)).data_session == {}
            assert await auth.destroy_all("full", keep=mine.session_id) == 2
        assert [i.session_id for i in await auth.sessions("full")] == [mine.session_id]
        assert (await auth.verify(await auth.rotate(tokens[0]))).user_id == "full"


@pytest.fixture
async def proxy(redis_server: RedisServer) -> AsyncIterator[TCPProxy]:
    redis_server.command("FLUSHALL")
    async with TCPProxy(redis_server.host, redis_server.port) as running:
        yield running


async def test_a_rotate_whose_reply_is_lost_applies_once(proxy: TCPProxy) -> None:
    async with RedisJWT(secret=SECRET, redis_url=proxy.url, listen=True) as auth:
        recorder = Recorder(auth)
        token = await auth.sign("lost", data_session={"n": 1})
        old = (await auth.verify(token)).session_id
        proxy.drop_next_reply(b"EVALSHA")
        rotated = await auth.rotate(token)  # the retry finds the call marker
        assert proxy.replies_dropped == 1
        session = await auth.verify(rotated, with_session=True)
        assert session.data_session == {"n": 1}
        with pytest.raises(errors.SessionNotFound):
            await auth.verify(token)
        assert [i.session_id for i in await auth.sessions("lost")] == [session.session_id]
        await settle()
        assert recorder.session_ids("destroyed") == [old]
        assert recorder.session_ids("created").count(session.session_id) == 1


async def test_a_destroy_all_keep_whose_reply_is_lost_still_counts_the_others(
    proxy: TCPProxy,
) -> None:
    async with RedisJWT(secret=SECRET, redis_url=proxy.url) as auth:
        tokens = [await auth.sign("all") for _ in range(4)]
        mine = await auth.verify(tokens[0])
        proxy.drop_next_reply(b"EVALSHA")
        assert await auth.destroy_all("all", keep=mine.session_id) == 3
        assert proxy.replies_dropped == 1
        assert await auth.count("all") == 1
        assert (await auth.verify(tokens[0])).session_id == mine.session_id
