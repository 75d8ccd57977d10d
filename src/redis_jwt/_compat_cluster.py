"""Where redis-py's asyncio Cluster client falls short while slots move, and our way round.

Written against redis-py 5.2 to 8.1 (``tests/test_compat_cluster.py`` checks each
reach-in below on the installed version). What goes wrong in redis-py itself:

- on ``ASK`` it sends ``ASKING`` as a pooled command of its own, so with
  several connections the real command often leaves on another one and the
  importing node answers ``MOVED`` back (after a while: "TTL exhausted");
- every ``reinitialize_steps``-th ``MOVED`` (5 by default) it closes every
  connection of every node, in-flight ones included: a 503 for everybody;
- a connection closed under a task that still uses it raises errors that are
  not ``RedisError`` (an ``AttributeError`` on a reader that is gone).

So the store sends its own commands to a Cluster through :func:`call_in_slot`:
one connection per attempt, checked out of the node's pool, ``ASKING`` packed
in the same write as the command it allows, ``MOVED`` patching the one slot it
names, ``TRYAGAIN`` retried after a short backoff. Every attempt is bounded by
the caller's deadline (the store's ``asyncio.timeout``): a slot in migration
costs its own users a brief wait or a 503, never anyone else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis
from redis import exceptions as rex
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.backoff import ExponentialBackoff

__all__ = [
    "Command",
    "call_in_slot",
    "gather_in_slots",
    "raised_by_redis_py",
    "refresh_later",
    "send_on_node",
]

#: One command: its words.
Command = Sequence[str | int | bytes]

# ASK/MOVED/TRYAGAIN answers one call follows at most (redis-py allows 16).
_MAX_REDIRECTS = 64
# TRYAGAIN: the slot's keys are split between two nodes for a moment; wait a
# little, growing, before asking again (the deadline still bounds the call).
_TRYAGAIN_BACKOFF = ExponentialBackoff(cap=0.1, base=0.005)

_REDIS_PY_DIR = Path(redis.__file__).resolve().parent


def raised_by_redis_py(exc: BaseException) -> bool:
    """Whether ``exc`` (not a ``RedisError``) was raised inside redis-py's own code.

    A connection torn down under a task that is still reading it makes redis-py
    raise ``AttributeError`` or ``TypeError`` from its parser: that is Redis
    trouble for the caller (a 503), while the same error from our own code is a
    bug and must propagate.
    """
    tb = exc.__traceback__
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    if last is None:
        return False
    try:
        where = Path(last.tb_frame.f_code.co_filename).resolve()
    except (OSError, RuntimeError):  # pragma: no cover - an odd file name
        return False
    return where.is_relative_to(_REDIS_PY_DIR)


def refresh_later(client: RedisCluster) -> None:
    """Make the client reload the slot map before its next command.

    redis-py does this itself after a connection error in its own path; ours
    must ask for it (reach-in: ``RedisCluster._initialize``, redis-py 5.2-8.1).
    """
    client._initialize = True


def _patch_slot(client: RedisCluster, slot: int, node: ClusterNode) -> None:
    """Route ``slot`` to ``node`` from now on, without closing anything.

    Reach-in: ``NodesManager.slots_cache`` (slot -> [primary, replicas...]),
    redis-py 5.2-8.1.
    """
    client.nodes_manager.slots_cache[slot] = [node]


async def send_on_node(
    node: ClusterNode, commands: Sequence[Command], client: RedisCluster | None = None
) -> Any:
    """Send ``commands`` in one write on one connection of ``node``; return the last reply.

    Every reply is read, so the connection stays in step even when one is an
    error; the first error reply is then raised. Any other failure drops the
    connection (it may be out of step) before it goes back to the pool. So
    does a reload of the slot map that replaced ``node`` in ``client`` meanwhile
    (see :func:`_replaced`): nobody would ever close its connection.
    """
    conn = node.acquire_connection()
    try:
        await conn.send_packed_command(conn.pack_commands(commands))
        replies: list[Any] = []
        for _ in commands:
            try:
                replies.append(await conn.read_response())
            except rex.ResponseError as exc:
                replies.append(exc)
    except BaseException:
        await conn.disconnect(nowait=True)
        raise
    finally:
        if client is not None and _replaced(client, node):
            await conn.disconnect(nowait=True)
        node.release(conn)
    for reply in replies:
        if isinstance(reply, rex.ResponseError):
            raise reply
    return replies[-1]


def _replaced(client: RedisCluster, node: ClusterNode) -> bool:
    """Whether ``client`` no longer holds ``node`` (a reload of its slot map replaced it).

    Up to redis-py 7.1 every reload builds new ``ClusterNode`` objects and
    disconnects the old ones once, in the background: a connection of an old
    node that was still connecting then, or is used afterwards, stays open
    with no owner left to close it (7.2+ keeps the nodes it finds again).
    """
    return client.get_node(node_name=node.name) is not node


async def call_in_slot(
    client: RedisCluster,
    key: str,
    command: Command,
    *,
    fallback: Command | None = None,
    retries: int = 1,
) -> Any:
    """Run ``command`` on the primary serving ``key``'s slot, following the Cluster's answers.

    Args:
        client: the cluster client (its nodes, pools and slot map are used).
        key: a key of the command; every key of it must share this slot.
        command: the command words.
        fallback: sent instead after ``NOSCRIPT`` (the ``EVAL`` form of an ``EVALSHA``).
        retries: how many times a connection failure is retried (the commands
            sent this way are safe to repeat: see the scripts).

    Raises:
        redis.exceptions.RedisError: the reply was an error, or Redis could not be
            reached; ``ClusterError`` after too many redirections.
    """
    await client.initialize()
    node = client.get_node_from_key(key)
    asking = False
    failures = 0
    for attempt in range(_MAX_REDIRECTS):
        if node is None:
            refresh_later(client)
            await client.initialize()
            node = client.get_node_from_key(key)
            if node is None:
                raise rex.ClusterDownError(f"no Cluster node serves {key!r}")
        try:
            if asking:
                return await send_on_node(node, [("ASKING",), command], client)
            return await send_on_node(node, [command], client)
        except rex.MovedError as exc:
            # The slot has a new owner for good: patch that slot, keep every connection.
            asking = False
            found = client.get_node(host=exc.host, port=exc.port)
            if found is None:
                refresh_later(client)
            else:
                _patch_slot(client, exc.slot_id, found)
            node = found
        except rex.AskError as exc:
            # This command only, on the importing node, behind ASKING on the same connection.
            asking = True
            node = client.get_node(host=exc.host, port=exc.port)
            if node is None:
                refresh_later(client)
        except rex.TryAgainError:
            # Keys of the slot are on both nodes right now: ask the owner again shortly.
            asking = False
            await asyncio.sleep(_TRYAGAIN_BACKOFF.compute(min(attempt, 8)))
            node = client.get_node_from_key(key)
        except rex.NoScriptError:
            if fallback is None or command is fallback:
                raise
            command = fallback
        except (rex.ConnectionError, rex.TimeoutError, OSError):
            refresh_later(client)
            failures += 1
            if failures > retries:
                raise
            asking = False
            await client.initialize()
            node = client.get_node_from_key(key)
    raise rex.ClusterError(f"too many redirections for {key!r}")


async def gather_in_slots(
    client: RedisCluster, calls: Sequence[tuple[str, Command, Command | None]]
) -> list[Any]:
    """Run each ``(key, command, fallback)`` on its own slot's primary, all at once.

    Returns the replies in order, an error in place of its reply.
    """
    replies = await asyncio.gather(
        *(
            call_in_slot(client, key, command, fallback=fallback)
            for key, command, fallback in calls
        ),
        return_exceptions=True,
    )
    for reply in replies:
        if isinstance(reply, BaseException) and not isinstance(reply, Exception):
            raise reply  # cancelled
    return list(replies)
