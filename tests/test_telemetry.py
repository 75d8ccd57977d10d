"""OpenTelemetry: the instruments and spans of DESIGN.md section 10, read from the SDK."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import jwt
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from redis.asyncio import Connection, ConnectionPool, Redis

from redis_jwt import RedisJWT, errors
from redis_jwt.testing import RedisServer

from .conftest import SECRET
from .telemetry_helpers import Telemetry, delta, installed

USER = "user-507f1f77"


@pytest.fixture
def otel() -> Telemetry:
    """The SDK, installed before the test opens its RedisJWT (telemetry is decided at open)."""
    return installed()


def _outcomes(otel: Telemetry) -> dict[tuple[tuple[str, str], ...], float]:
    return otel.points("redis_jwt.verify.duration")


def _expired_token(session_id: str) -> str:
    now = int(time.time())
    claims = {"sub": USER, "sid": session_id, "iat": now - 100, "exp": now - 50}
    return jwt.encode(claims, SECRET, algorithm="HS256")


def _attribute_values(spans: list[ReadableSpan]) -> list[str]:
    return [str(value) for span in spans for value in (span.attributes or {}).values()]


async def test_every_verify_records_one_duration_and_one_span_by_outcome(
    otel: Telemetry, own_server: RedisServer
) -> None:
    async with RedisJWT(secret=SECRET, redis_url=own_server.url) as auth:
        token = await auth.sign(USER)
        session = await auth.verify(token)
        gone = await auth.sign(USER)
        await auth.destroy(gone)
        before = _outcomes(otel)
        with otel.recording():
            await auth.verify(token)
            for bad, error in (
                ("", errors.MissingToken),
                ("not-a-jwt", errors.InvalidToken),
                (_expired_token(session.session_id), errors.TokenExpired),
                (gone, errors.SessionNotFound),
            ):
                with pytest.raises(error):
                    await auth.verify(bad)
            own_server.kill()
            with pytest.raises(errors.StoreError):
                await auth.verify(token)
        spans = otel.spans("redis_jwt.verify")
    assert delta(_outcomes(otel), before) == {
        (("outcome", outcome),): count
        for outcome, count in (
            ("ok", 1),
            ("invalid", 2),
            ("expired", 1),
            ("not_found", 1),
            ("store_error", 1),
        )
    }
    assert [s.attributes["redis_jwt.outcome"] for s in spans if s.attributes] == [
        "ok",
        "invalid",
        "invalid",
        "expired",
        "not_found",
        "store_error",
    ]
    assert otel.units()["redis_jwt.verify.duration"] == "s"
    # Buckets in seconds, fine enough for sub-millisecond verifies.
    assert otel.bounds("redis_jwt.verify.duration")[:3] == (0.0005, 0.001, 0.0025)
    # A refused token is not an error of the library; Redis down is.
    assert spans[0].status.status_code is trace.StatusCode.UNSET
    assert spans[-1].status.status_code is trace.StatusCode.ERROR
    assert spans[-1].attributes is not None
    assert spans[-1].attributes["error.type"] == "StoreUnavailable"


async def test_spans_carry_the_hashed_session_id_and_nothing_identifying(
    otel: Telemetry, redis_url: str
) -> None:
    async with RedisJWT(secret=SECRET, redis_url=redis_url) as auth:
        with otel.recording():
            token = await auth.sign(USER, data_token={"role": "admin"})
            session = await auth.verify(token)
            again = await auth.verify(token)
            assert await auth.destroy(token)
        spans = otel.spans()
    by_name = {span.name: span for span in spans}
    assert {"redis_jwt.sign", "redis_jwt.verify", "redis_jwt.destroy"} <= set(by_name)
    hashed = {
        (span.attributes or {}).get("redis_jwt.session_id")
        for span in spans
        if span.name.startswith("redis_jwt.") and span.name != "redis_jwt.redis"
    }
    # One session, one stable hash, across sign, two verifies and destroy.
    assert len(hashed) == 1
    value = hashed.pop()
    assert isinstance(value, str)
    assert len(value) == 32
    assert value != session.session_id
    assert again.session_id == session.session_id
    for text in _attribute_values(spans):
        for secret in (token, USER, SECRET, session.session_id, "admin"):
            assert secret not in text


async def test_auto_pipelined_commands_are_inside_the_callers_span(
    otel: Telemetry, redis_url: str
) -> None:
    async with RedisJWT(secret=SECRET, redis_url=redis_url) as auth:
        tokens = [await auth.sign(f"{USER}-{n}") for n in range(3)]
        tracer = trace.get_tracer("tests")
        with otel.recording():
            with tracer.start_as_current_span("request") as outer:
                await auth.verify(tokens[0])

            async def request(token: str) -> int:
                with tracer.start_as_current_span("concurrent") as span:
                    await auth.verify(token)
                    return span.get_span_context().span_id

            # Three callers in one loop pass: one batch, traced under the first.
            first, *_others = await asyncio.gather(*(request(t) for t in tokens))
        spans = otel.spans()
    verifies = [s for s in spans if s.name == "redis_jwt.verify"]
    round_trips = [s for s in spans if s.name == "redis_jwt.redis"]
    assert verifies[0].parent is not None
    assert verifies[0].parent.span_id == outer.get_span_context().span_id
    assert round_trips[0].parent is not None
    assert round_trips[0].parent.span_id == verifies[0].context.span_id
    assert round_trips[0].kind is trace.SpanKind.CLIENT
    assert round_trips[0].attributes is not None
    # verify is one EVALSHA of alive.lua (the session key and its index entry).
    assert round_trips[0].attributes["db.operation.name"] == "EVALSHA"
    batch = round_trips[-1]
    assert batch.attributes is not None
    assert batch.attributes["db.operation.batch.size"] == 3
    assert batch.attributes["db.operation.name"] == "PIPELINE"
    first_verify = next(s for s in verifies if s.parent is not None and s.parent.span_id == first)
    assert batch.parent is not None
    assert batch.parent.span_id == first_verify.context.span_id


class TracedConnection(Connection):
    """What a Redis instrumentation does at the connection: a span per write, from the context."""

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        with trace.get_tracer("tests.redis").start_as_current_span("tests.send"):
            await super().send_packed_command(command, check_health)


async def test_an_instrumented_connection_sees_the_callers_span(
    otel: Telemetry, redis_server: RedisServer
) -> None:
    pool = ConnectionPool(
        connection_class=TracedConnection, host="127.0.0.1", port=redis_server.port
    )
    client = Redis(connection_pool=pool)
    try:
        async with RedisJWT(secret=SECRET, redis=client) as auth:
            token = await auth.sign(USER)
            tracer = trace.get_tracer("tests")
            with otel.recording(), tracer.start_as_current_span("request") as outer:
                await auth.verify(token)
            spans = otel.spans()
    finally:
        await client.aclose()
        await pool.disconnect()  # a pool handed to a client is the caller's to close
    ids = {span.context.span_id: span for span in spans}
    sends = [s for s in spans if s.name == "tests.send"]
    assert sends
    # Walk up from the write: it is inside redis_jwt.verify, inside the request.
    chain: list[str] = []
    span: ReadableSpan | None = sends[0]
    while span is not None and span.parent is not None:
        span = ids.get(span.parent.span_id)
        if span is not None:
            chain.append(span.name)
    assert chain == ["redis_jwt.redis", "redis_jwt.verify", "request"]
    assert outer.get_span_context().trace_id == sends[0].context.trace_id


async def test_sessions_created_and_ended_by_reason(otel: Telemetry, redis_url: str) -> None:
    before_created = otel.points("redis_jwt.sessions.created")
    before_ended = otel.points("redis_jwt.sessions.ended")
    async with RedisJWT(secret=SECRET, redis_url=redis_url, max_sessions=2) as auth:
        tokens = [await auth.sign(USER) for _ in range(3)]  # the first is evicted
        assert await auth.destroy(tokens[1])
        assert not await auth.destroy(tokens[1])  # nothing more ended
        session = await auth.verify(tokens[2])
        assert await auth.revoke(USER, session.session_id)
        await auth.sign(USER)
        assert await auth.destroy_all(USER) == 1
    assert delta(otel.points("redis_jwt.sessions.created"), before_created) == {(): 4}
    assert delta(otel.points("redis_jwt.sessions.ended"), before_ended) == {
        (("reason", "evicted"),): 1,
        (("reason", "logout"),): 1,
        (("reason", "revoke"),): 1,
        (("reason", "destroy_all"),): 1,
    }
    units = otel.units()
    assert units["redis_jwt.sessions.created"] == units["redis_jwt.sessions.ended"] == "{session}"


async def test_an_expiry_is_counted_and_its_event_lag_recorded(
    otel: Telemetry, redis_url: str
) -> None:
    before_ended = otel.points("redis_jwt.sessions.ended")
    before_lag = otel.points("redis_jwt.events.lag")
    async with RedisJWT(secret=SECRET, redis_url=redis_url, listen=True) as auth:
        await auth.sign(USER, ttl=1)
        for _ in range(100):  # bounded: 10 s at most
            if delta(otel.points("redis_jwt.events.lag"), before_lag):
                break
            await asyncio.sleep(0.1)
    assert delta(otel.points("redis_jwt.events.lag"), before_lag) == {(): 1}
    assert delta(otel.points("redis_jwt.sessions.ended"), before_ended) == {
        (("reason", "expired"),): 1
    }
    assert otel.units()["redis_jwt.events.lag"] == "s"


async def test_store_errors_are_counted(otel: Telemetry, own_server: RedisServer) -> None:
    before = otel.points("redis_jwt.store.errors")
    async with RedisJWT(secret=SECRET, redis_url=own_server.url) as auth:
        token = await auth.sign(USER)
        own_server.kill()
        with pytest.raises(errors.StoreError):
            await auth.verify(token)
        with pytest.raises(errors.StoreError):
            await auth.sign(USER)
    counted = delta(otel.points("redis_jwt.store.errors"), before)
    assert sum(counted.values()) >= 2
    assert {key for attributes in counted for key, _value in attributes} == {"error.type"}


async def test_a_pair_and_its_refresh_are_spans_of_one_hashed_session(
    otel: Telemetry, redis_url: str
) -> None:
    async with RedisJWT(secret=SECRET, redis_url=redis_url) as auth:
        with otel.recording():
            pair = await auth.sign_pair(USER)
            session = await auth.verify(pair.access_token)
            second = await auth.refresh(pair.refresh_token)
        spans = otel.spans()
    names = [span.name for span in spans if span.name != "redis_jwt.redis"]
    assert names.count("redis_jwt.sign") == 1
    assert names.count("redis_jwt.refresh") == 1
    hashed = {
        (span.attributes or {}).get("redis_jwt.session_id")
        for span in spans
        if span.name in {"redis_jwt.sign", "redis_jwt.verify", "redis_jwt.refresh"}
    }
    assert len(hashed) == 1
    assert session.session_id not in {str(value) for value in hashed}
    for text in _attribute_values(spans):
        for secret in (pair.refresh_token, second.refresh_token, USER, session.session_id):
            assert secret not in text
