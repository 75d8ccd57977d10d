"""Events emitted by the core calls of one instance."""

from __future__ import annotations

import asyncio

from redis_jwt import Event, RedisJWT

from .conftest import SECRET


async def test_created_extended_destroyed_in_order(auth: RedisJWT) -> None:
    stream = auth.events.subscribe("created", "extended", "destroyed")
    token = await auth.sign("u")
    await auth.extend(token)
    await auth.destroy(token)
    got = [await anext(stream) for _ in range(3)]
    assert [e.kind for e in got] == ["created", "extended", "destroyed"]
    assert {e.session_id for e in got} == {(got[0].session_id)}
    assert got[2].reason == "logout"
    await stream.aclose()


async def test_a_failing_handler_never_breaks_a_call(auth: RedisJWT) -> None:
    calls: list[str] = []

    def broken(event: Event) -> None:
        calls.append(event.kind)
        raise RuntimeError("handler bug")

    async def broken_async(event: Event) -> None:
        raise RuntimeError("async handler bug")

    auth.events.on("created", broken)
    auth.events.on("created", broken_async)
    token = await auth.sign("u")
    assert (await auth.verify(token)).user_id == "u"
    await asyncio.sleep(0)
    assert calls == ["created"]


async def test_eviction_and_destroy_all_say_why(redis_url: str) -> None:
    async with RedisJWT(secret=SECRET, redis_url=redis_url, multiple=False) as auth:
        reasons: list[str | None] = []

        @auth.events.on("destroyed")
        def record(event: Event) -> None:
            reasons.append(event.reason)

        await auth.sign("u")
        await auth.sign("u")
        await auth.destroy_all("u")
        assert reasons == ["evicted", "destroy_all"]
