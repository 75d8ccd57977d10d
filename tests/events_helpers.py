"""Helpers of the events tests: record what an instance emits, wait for it (bounded)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

from redis.asyncio.client import PubSub

from redis_jwt import Event, RedisJWT
from redis_jwt._redis.store import AnyRedis


class Recorder:
    """Records every event of one instance, with the monotonic time it arrived."""

    def __init__(self, auth: RedisJWT) -> None:
        self.events: list[Event] = []
        self.times: list[float] = []
        auth.events.on("*", self._record)

    def _record(self, event: Event) -> None:
        self.events.append(event)
        self.times.append(time.monotonic())

    def kinds(self, *only: str) -> list[str]:
        """The kinds received so far (of ``only``, when given), in order."""
        return [e.kind for e in self.events if not only or e.kind in only]

    def of(self, kind: str) -> list[Event]:
        """The events of one kind, in order."""
        return [e for e in self.events if e.kind == kind]

    def session_ids(self, kind: str) -> list[str | None]:
        """The session ids of the events of one kind, in order."""
        return [e.session_id for e in self.of(kind)]

    def arrival(self, kind: str, session_id: str) -> float:
        """When the first ``kind`` event of ``session_id`` arrived (monotonic)."""
        for event, at in zip(self.events, self.times, strict=True):
            if event.kind == kind and event.session_id == session_id:
                return at
        raise LookupError(f"no {kind} event for {session_id}")

    async def wait_for(
        self, check: Callable[[Recorder], bool], *, timeout_seconds: float, what: str
    ) -> None:
        """Poll ``check`` until it holds; fail the test after ``timeout_seconds``."""
        deadline = time.monotonic() + timeout_seconds
        for _ in range(int(timeout_seconds / 0.02) + 2):
            if check(self):
                return
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.02)
        raise AssertionError(f"timed out after {timeout_seconds} s waiting for {what}: {self}")

    async def wait_kinds(self, *kinds: str, timeout_seconds: float = 5.0) -> None:
        """Wait until the last kinds received are ``kinds``, in this order."""
        n = len(kinds)
        await self.wait_for(
            lambda r: r.kinds()[-n:] == list(kinds),
            timeout_seconds=timeout_seconds,
            what=f"the kinds {kinds}",
        )

    def __repr__(self) -> str:
        shown = [(e.kind, (e.session_id or "")[:6], e.reason) for e in self.events[-30:]]
        return f"<Recorder {shown}>"


async def settle(seconds: float = 0.3) -> None:
    """Leave time for late duplicates to show up (used before asserting 'exactly once')."""
    await asyncio.sleep(seconds)


async def volatile_keys(client: AnyRedis, count: int, *, ttl_seconds: int = 3600) -> None:
    """``DEBUG POPULATE`` ``count`` keys (``key:0``...) and give each an expiry, in chunks."""
    await client.execute_command("DEBUG", "POPULATE", count)
    script = "for i = ARGV[1], ARGV[2] do redis.call('EXPIRE', 'key:' .. i, ARGV[3]) end"
    for start in range(0, count, 50_000):
        end = min(start + 50_000, count) - 1
        await client.eval(script, 0, start, end, ttl_seconds)


async def drain(pubsub: PubSub) -> list[str]:
    """The kinds (``e``) of the notices received so far by a raw subscriber of the channel."""
    kinds: list[str] = []
    idle = 0
    for _ in range(10_000):
        message = await pubsub.get_message(timeout=0.05)
        if message is None:
            idle += 1
            if idle == 3:
                break
            continue
        idle = 0
        if message["type"] == "message":
            kinds.append(json.loads(message["data"])["e"])
    return kinds
