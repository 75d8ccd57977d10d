"""Live resharding: the slot of a set of busy users moves to another primary under load.

The slot moves exactly as ``redis-cli --cluster reshard`` moves it (IMPORTING,
MIGRATING, ``GETKEYSINSLOT`` + ``MIGRATE`` in small batches, ``SETSLOT NODE``)
while tasks sign, verify, count and log out everywhere through the library's
own client. Each user is driven by one task that keeps an exact model of the
user's live sessions, so every answer can be judged: a 503 is allowed (for
the moving slot only), a wrong answer never is.

A call that times out (the machine may be busy) is not acknowledged: a write
may or may not have applied, never twice. From then on the user's model is
uncertain, and only bounds are checked, until a log-out everywhere is
acknowledged and makes it exact again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from redis.crc import key_slot

from redis_jwt import RedisJWT, errors
from redis_jwt.testing import RedisClusterSet, default_redis_server

from .conftest import SECRET
from .topologies import cluster_url

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

LIMIT = 3
BUSY_USERS = 12
CALM_USERS = 12
MAX_OPS = 4000  # per user: a bound on the load, whatever happens
MAX_SECONDS = 90.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterSet]:
    with RedisClusterSet(default_redis_server()) as running:
        yield running


def _users_of_one_slot(count: int) -> tuple[int, list[str]]:
    """``count`` user ids whose keys all hash to one slot (their tag is the id)."""
    slot = key_slot(b"busy-0")
    users = ["busy-0"]
    for n in range(1, 5_000_000):
        if len(users) == count:
            break
        if key_slot(f"busy-{n}".encode()) == slot:
            users.append(f"busy-{n}")
    return slot, users


@dataclass
class Tally:
    """What the users of one group saw."""

    requests: int = 0
    unavailable: int = 0  # 503s
    timeouts: int = 0  # of which StoreTimeout: the deadline passed (a busy machine)
    refused: int = 0  # of which not a timeout: the cluster refused the call
    longest_run: int = 0  # of consecutive 503s, for one user
    unavailable_after: int = 0  # refusals (not timeouts) once the slot had moved
    false_401: int = 0  # a session the model says is live was refused
    zombies: int = 0  # a session the model says has ended was accepted
    wrong_counts: int = 0  # count() or destroy_all() differing from the model
    lost: int = 0  # live in the model, missing from sessions()
    duplicated: int = 0  # listed by sessions() without being in the model
    unexpected: list[str] = field(default_factory=list)  # anything else: a 500


@dataclass
class Phase:
    moved: asyncio.Event = field(default_factory=asyncio.Event)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    ops: dict[str, int] = field(default_factory=dict)


async def _drive(auth: RedisJWT, user: str, tally: Tally, phase: Phase) -> None:
    live: list[str] = []  # tokens of live sessions, oldest first
    ended: list[str] = []
    # Writes not acknowledged since the last acknowledged destroy_all: each may
    # have applied (an orphan session, evicting one of `live`) or not.
    unsure = 0
    run = 0
    began = time.monotonic()
    for i in range(MAX_OPS):
        if phase.stop.is_set() or time.monotonic() - began > MAX_SECONDS:
            break
        phase.ops[user] = i
        after = phase.moved.is_set()
        tally.requests += 1
        step = i % 10
        try:
            if step in (0, 3, 6):
                live.append(await auth.sign(user))
                while len(live) > LIMIT:
                    ended.append(live.pop(0))
            elif step == 9:
                if not _fits(await auth.destroy_all(user), len(live), unsure):
                    tally.wrong_counts += 1
                ended.extend(live)
                live.clear()
                unsure = 0
            elif step == 5:
                if not _fits(await auth.count(user), len(live), unsure):
                    tally.wrong_counts += 1
            elif step == 8 and ended:
                try:
                    await auth.verify(ended[-1])
                except errors.SessionNotFound:
                    pass
                else:
                    tally.zombies += 1
            elif live:
                try:
                    await auth.verify(live[i % len(live)])
                except errors.SessionNotFound:
                    tally.false_401 += unsure == 0  # else an orphan may have evicted it
        except errors.StoreError as exc:
            unsure += step in (0, 3, 6, 9)
            if isinstance(exc, errors.StoreTimeout):
                tally.timeouts += 1
            else:
                tally.refused += 1
                tally.unavailable_after += after
            tally.unavailable += 1
            run += 1
            tally.longest_run = max(tally.longest_run, run)
            continue
        except Exception as exc:  # a 500 in a web adapter
            tally.unexpected.append(repr(exc))
            continue
        run = 0
    # The end state, once everything settled: exactly the model, nothing more.
    listed = {info.session_id for info in await auth.sessions(user)}
    expected = set()
    for token in live:
        try:
            expected.add((await auth.verify(token)).session_id)
        except errors.SessionNotFound:
            tally.false_401 += unsure == 0
    tally.lost += len(expected - listed)
    # Sessions of unacknowledged signs may be listed, one per such sign at the most.
    tally.duplicated += max(0, len(listed - expected) - unsure)
    for token in ended[-5:]:
        try:
            await auth.verify(token)
        except errors.SessionNotFound:
            continue
        tally.zombies += 1


def _fits(answer: int, modelled: int, unsure: int) -> bool:
    """A count (or destroy_all's) is exact when every write was acknowledged.

    Otherwise each unacknowledged sign may have added an orphan (evicting
    another past the limit) and an unacknowledged destroy_all may have ended
    them all: never more than the model plus one per unacknowledged write.
    """
    if unsure == 0:
        return answer == modelled
    return 0 <= answer <= min(LIMIT, modelled + unsure)


async def _wait_ops(phase: Phase, users: list[str], at_least: int) -> None:
    """Wait (bounded) until every user's task has done ``at_least`` more operations."""
    start = {user: phase.ops.get(user, 0) for user in users}
    deadline = time.monotonic() + 60
    while any(phase.ops.get(u, 0) < start[u] + at_least for u in users):
        if time.monotonic() > deadline:
            raise AssertionError("the load stalled")
        await asyncio.sleep(0.05)


async def test_a_slot_moves_under_load_without_a_wrong_answer(cluster: RedisClusterSet) -> None:
    slot, busy_users = _users_of_one_slot(BUSY_USERS)
    calm_users = [u for u in (f"calm-{n}" for n in range(100)) if key_slot(u.encode()) != slot]
    calm_users = calm_users[:CALM_USERS]
    source = cluster.node_for_slot(slot)
    target = next(node for node in cluster.primaries() if node.port != source.port)
    busy, calm, phase = Tally(), Tally(), Phase()
    async with RedisJWT(secret=SECRET, redis_url=cluster_url(cluster), max_sessions=LIMIT) as auth:
        tasks = [asyncio.create_task(_drive(auth, u, busy, phase)) for u in busy_users] + [
            asyncio.create_task(_drive(auth, u, calm, phase)) for u in calm_users
        ]
        try:
            await _wait_ops(phase, busy_users + calm_users, 20)
            began = time.monotonic()
            moved = await asyncio.to_thread(
                cluster.move_slot, slot, target, keys_per_batch=5, pause_seconds=0.3
            )
            took = time.monotonic() - began
            await asyncio.to_thread(cluster.wait_healthy, 30.0)
            phase.moved.set()
            await _wait_ops(phase, busy_users + calm_users, 30)
        finally:
            phase.stop.set()
            await asyncio.gather(*tasks)
    assert cluster.node_for_slot(slot).port == target.port
    assert moved > BUSY_USERS  # their indexes and sessions really moved
    print(f"\nresharding: {moved} keys moved in {took:.1f} s; busy {busy}; calm {calm}")
    for tally in (busy, calm):
        assert tally.unexpected == []
        assert tally.false_401 == 0
        assert tally.zombies == 0
        assert tally.lost == 0
        assert tally.duplicated == 0
        assert tally.wrong_counts == 0
    # Users of other slots are not disturbed by the move (a deadline passing on
    # a busy machine is not the move's doing), and once the slot has moved, its
    # users neither.
    assert calm.refused == 0
    assert busy.unavailable_after == 0
