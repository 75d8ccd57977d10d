"""Logs: one WARNING per outage, one INFO when Redis is back, ERROR for a failing handler."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator

import pytest

from redis_jwt import Event, RedisJWT, errors
from redis_jwt.testing import RedisBinary, RedisServer

from .conftest import SECRET

PASSWORD = "s3cret-log-pw"


@pytest.fixture
def guarded_server(redis_jwt_binary: RedisBinary) -> Iterator[RedisServer]:
    """A server of this test's own with a password (which logs must never show)."""
    with RedisServer(redis_jwt_binary, password=PASSWORD) as server:
        yield server


def _records(caplog: pytest.LogCaptureFixture, event: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "redis_jwt_event", None) == event]


async def _until(condition: Callable[[], bool], what: str, seconds: float = 15.0) -> None:
    for _ in range(int(seconds / 0.05)):  # bounded polling on the real state
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_one_warning_per_outage_and_one_info_when_back(
    guarded_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="redis_jwt")
    async with RedisJWT(secret=SECRET, redis_url=guarded_server.url) as auth:
        token = await auth.sign("u1")
        assert _records(caplog, "disconnected") == []
        guarded_server.kill()
        for _ in range(20):  # many failing requests, one outage
            with pytest.raises(errors.StoreError):
                await auth.verify(token)
        await _until(lambda: bool(_records(caplog, "disconnected")), "the WARNING")
        for _ in range(20):
            with pytest.raises(errors.StoreError):
                await auth.verify(token)
        guarded_server.restart()  # its data is gone: sign again once it answers
        await _until(lambda: bool(_records(caplog, "connected")), "the INFO")
        token = await auth.sign("u1")
        assert (await auth.verify(token)).user_id == "u1"
    down, back = _records(caplog, "disconnected"), _records(caplog, "connected")
    assert len(down) == 1
    assert len(back) == 1
    assert down[0].levelno == logging.WARNING
    assert back[0].levelno == logging.INFO
    assert down[0].name == back[0].name == "redis_jwt"
    expected_url = f"redis://:***@127.0.0.1:{guarded_server.port}/0"
    assert getattr(down[0], "redis_url", None) == getattr(back[0], "redis_url", None)
    assert getattr(down[0], "redis_url", None) == expected_url
    assert expected_url in down[0].getMessage()
    assert PASSWORD not in caplog.text


async def test_unreachable_at_start_is_one_warning_then_one_info(
    own_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="redis_jwt")
    own_server.kill()
    async with RedisJWT(secret=SECRET, redis_url=own_server.url) as auth:
        assert len(_records(caplog, "disconnected")) == 1
        assert _records(caplog, "connected") == []  # never up yet: nothing "back"
        own_server.restart()
        await _until(lambda: bool(_records(caplog, "connected")), "the INFO")
        assert await auth.ping()
    assert len(_records(caplog, "disconnected")) == 1
    assert len(_records(caplog, "connected")) == 1


async def test_a_failing_handler_is_an_error_record_naming_it_and_the_event(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="redis_jwt")

    def audit_login(event: Event) -> None:
        raise RuntimeError("audit store is down")

    async def notify_login(event: Event) -> None:
        raise RuntimeError("mailer is down")

    async with RedisJWT(secret=SECRET, redis_url=redis_url) as auth:
        auth.events.on("created", audit_login)
        auth.events.on("created", notify_login)
        token = await auth.sign("u1")  # the handlers' failures never break the call
        assert (await auth.verify(token)).user_id == "u1"
        await _until(lambda: len(_records(caplog, "handler_failed")) == 2, "both records")
    failed = _records(caplog, "handler_failed")
    assert {getattr(r, "handler", None) for r in failed} == {
        "test_a_failing_handler_is_an_error_record_naming_it_and_the_event.<locals>.audit_login",
        "test_a_failing_handler_is_an_error_record_naming_it_and_the_event.<locals>.notify_login",
    }
    assert {getattr(r, "event_kind", None) for r in failed} == {"created"}
    assert all(r.levelno == logging.ERROR and r.exc_info for r in failed)
