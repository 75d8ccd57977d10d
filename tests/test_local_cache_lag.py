"""The local cache under a lagging, stalled or trickling invalidation link.

Only the invalidation link is slowed (the proxy throttles the connection
that names itself ``redis-jwt-cache``); the data connection stays fast, and
other sessions are signed every 50 ms so that the link always has traffic to
deliver late. Instance A caches; instance B signs and destroys. The contract
(docs/decisions.md): no instance accepts a session more than 1.5 s after
another instance's ``destroy`` returned, whatever the link does.

An accept is dated by when its ``verify`` was called: a verify served from
the cache decides at once (it never waits on anything), and one that asks
Redis is answered by Redis itself, after the destroy. So a verify called past
the bound that still accepts is a stale answer, whatever the machine's load.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from redis_jwt import RedisJWT, errors
from redis_jwt.testing import RedisServer, TCPProxy

from .conftest import SECRET

#: The name the invalidation links give themselves (``CLIENT SETNAME``).
LINK_MARKER = b"redis-jwt-cache"
#: The contract's bound, in seconds after the other instance's destroy returned.
BOUND_SECONDS = 1.5
#: How long each destroyed session is still tried after the bound.
TAIL_SECONDS = 0.6


@dataclass
class Victim:
    """One session: when B's destroy returned, and when A's accepting verifies were called."""

    token: str
    destroyed_at: float | None = None
    accepts: list[float] = field(default_factory=list)

    def late_accepts(self) -> list[float]:
        if self.destroyed_at is None:
            return []
        bound = self.destroyed_at + BOUND_SECONDS
        return [at - self.destroyed_at for at in self.accepts if at > bound]


def _pttl_calls(server: RedisServer) -> int:
    """How many PTTL commands the server ran (what A's verify sends on a cache miss)."""
    stats = str(server.command("INFO", "commandstats"))
    _, found, rest = stats.partition("cmdstat_pttl:calls=")
    return int(rest.split(",", 1)[0]) if found else 0


async def _follow(a: RedisJWT, b: RedisJWT, victim: Victim) -> int:
    """Verify with A before and after B destroys; return how many verifies A made."""
    verifies = 0

    async def verify() -> None:
        nonlocal verifies
        verifies += 1
        called = time.monotonic()
        try:
            await a.verify(victim.token)
        except (errors.SessionNotFound, errors.StoreError):
            return
        victim.accepts.append(called)

    for _ in range(5):  # fills the cache when the link is trusted
        await verify()
        await asyncio.sleep(0.02)
    assert await b.destroy(victim.token)
    victim.destroyed_at = done = time.monotonic()
    # Bounded in count and time: about (BOUND + TAIL) / 20 ms verifies.
    for _ in range(200):
        if time.monotonic() > done + BOUND_SECONDS + TAIL_SECONDS:
            break
        await verify()
        await asyncio.sleep(0.02)
    return verifies


async def _run_phase(
    a: RedisJWT,
    b: RedisJWT,
    victims: list[Victim],
    followers: list[asyncio.Task[int]],
    *,
    seconds: float,
    label: str,
) -> None:
    """Start a victim every 150 ms for ``seconds`` while B signs other sessions every 50 ms.

    The victims are still followed after the phase ends (into the next one).
    """
    stop = asyncio.Event()

    async def noise() -> None:
        for n in range(1000):
            if stop.is_set():
                return
            await b.sign(f"noise-{label}-{n % 50}")
            await asyncio.sleep(0.05)

    noisy = asyncio.create_task(noise())
    started = time.monotonic()
    n = 0
    while time.monotonic() - started < seconds and n < 200:
        victim = Victim(await b.sign(f"victim-{label}-{n % 20}", ttl=600))
        victims.append(victim)
        followers.append(asyncio.create_task(_follow(a, b, victim)))
        n += 1
        await asyncio.sleep(0.15)
    stop.set()
    await noisy


async def test_no_accept_past_the_bound_whatever_the_link_does(own_server: RedisServer) -> None:
    victims: list[Victim] = []
    async with (
        TCPProxy("127.0.0.1", own_server.port) as proxy,
        RedisJWT(secret=SECRET, redis_url=proxy.url, local_cache=True) as a,
        RedisJWT(secret=SECRET, redis_url=own_server.url) as b,
    ):
        followers: list[asyncio.Task[int]] = []
        await _run_phase(a, b, victims, followers, seconds=1.0, label="fast")
        # A lag that grows to several seconds (each chunk held that long, in each direction).
        for delay in (0.1, 0.3, 0.6, 1.0, 2.0, 4.0):
            proxy.throttle(LINK_MARKER, delay_seconds=delay)
            await _run_phase(a, b, victims, followers, seconds=1.2, label=f"lag{delay}")
        # A stall: nothing comes through, nothing is closed.
        proxy.throttle(LINK_MARKER, delay_seconds=60.0)
        await _run_phase(a, b, victims, followers, seconds=2.5, label="stall")
        # A trickle: bytes keep coming, slower than the invalidations are made.
        proxy.throttle(LINK_MARKER, bytes_per_second=300)
        await _run_phase(a, b, victims, followers, seconds=3.0, label="trickle")
        verifies = sum(await asyncio.gather(*followers))

        late = {v.token[-12:]: v.late_accepts() for v in victims if v.late_accepts()}
        assert late == {}, f"accepted more than {BOUND_SECONDS} s after the destroy: {late}"
        assert all(v.destroyed_at is not None for v in victims)
        assert len(victims) > 50
        assert verifies > 20 * len(victims)
        # The lag was real and the cache served through it: some sessions were
        # still accepted after their destroy (only the cache can do that), within the bound.
        stale = [at for v in victims for at in v.accepts if v.destroyed_at and at > v.destroyed_at]
        assert stale

        # Once the link is fast again, the cache serves again (bounded wait).
        proxy.unthrottle(LINK_MARKER)
        token = await b.sign("after")
        for _ in range(200):
            await a.verify(token)
            before = _pttl_calls(own_server)
            await a.verify(token)
            if _pttl_calls(own_server) == before:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the cache did not serve again once the link was fast")
