"""The event bus itself: handlers, decorators, streams, slow consumers, misuse."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from redis_jwt import Event, EventBus, RedisJWT, errors
from redis_jwt.models import EventKind

from .conftest import SECRET


def _event(kind: EventKind = "created", n: int = 0) -> Event:
    return Event(kind=kind, user_id="u", session_id=f"s{n}", at=datetime.now(UTC))


async def test_handlers_sync_async_decorator_wildcard_and_off() -> None:
    bus = EventBus()
    got: list[str] = []

    @bus.on("created")
    def sync_handler(event: Event) -> None:
        got.append(f"sync:{event.session_id}")

    async def async_handler(event: Event) -> None:
        await asyncio.sleep(0)
        got.append(f"async:{event.session_id}")

    assert bus.on("created", async_handler) is async_handler
    bus.on("*", lambda e: got.append(f"any:{e.kind}"))
    bus.emit(_event("created", 1))
    bus.emit(_event("expired", 2))
    await asyncio.sleep(0.01)
    assert got == ["sync:s1", "any:created", "any:expired", "async:s1"]
    bus.off("created", sync_handler)
    bus.off("created", sync_handler)  # unknown now: ignored
    got.clear()
    bus.emit(_event("created", 3))
    await bus.aclose()
    assert got == ["any:created", "async:s3"]


async def test_a_failing_handler_is_logged_and_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = EventBus()
    got: list[str] = []

    def broken(event: Event) -> None:
        raise RuntimeError("sync handler bug")

    async def broken_async(event: Event) -> None:
        raise RuntimeError("async handler bug")

    bus.on("created", broken)
    bus.on("created", broken_async)
    bus.on("created", lambda e: got.append("ok"))
    with caplog.at_level(logging.ERROR, logger="redis_jwt.events"):
        bus.emit(_event())
        await asyncio.sleep(0.01)
    assert got == ["ok"]
    assert "sync handler bug" in caplog.text
    assert "async handler bug" in caplog.text
    await bus.aclose()


async def test_a_slow_subscriber_loses_the_oldest_events_counted() -> None:
    bus = EventBus()
    stream = bus.subscribe("created", maxsize=3)
    for n in range(10):
        bus.emit(_event("created", n))
    bus.emit(_event("expired", 99))  # filtered out: not a kind it asked for
    assert stream.dropped == 7
    assert [(await anext(stream)).session_id for _ in range(3)] == ["s7", "s8", "s9"]
    await stream.aclose()
    assert not bus.has_listeners


async def test_streams_end_when_the_bus_closes() -> None:
    bus = EventBus()
    stream = bus.subscribe()
    bus.emit(_event())
    await bus.aclose()
    assert [e.session_id async for e in stream] == ["s0"]
    late = bus.subscribe()
    assert [e async for e in late] == []


async def test_a_stream_is_an_async_context_manager(auth: RedisJWT) -> None:
    async with auth.events.subscribe("created") as stream:
        await auth.sign("u")
        event = await anext(stream)
        assert (event.kind, event.user_id) == ("created", "u")
    assert not auth.events.has_listeners


def test_unknown_kinds_and_bad_sizes_are_refused() -> None:
    bus = EventBus()
    with pytest.raises(errors.ConfigurationError, match="unknown event kind 'expire'"):
        bus.on("expire", print)  # type: ignore[call-overload]
    with pytest.raises(errors.ConfigurationError, match="unknown event kind"):
        bus.subscribe("*")  # type: ignore[arg-type]
    with pytest.raises(errors.ConfigurationError, match="maxsize"):
        bus.subscribe(maxsize=0)


def test_events_are_frozen() -> None:
    event = _event()
    with pytest.raises(ValidationError):
        event.kind = "expired"
    with pytest.raises(ValidationError):
        Event(kind="nope", at=datetime.now(UTC))  # type: ignore[arg-type]


async def test_handlers_registered_before_open_see_connected_and_ready(redis_url: str) -> None:
    auth = RedisJWT(secret=SECRET, redis_url=redis_url)
    kinds: list[str] = []
    auth.events.on("*", lambda e: kinds.append(e.kind))
    async with auth:
        assert kinds == ["connected", "ready"]
