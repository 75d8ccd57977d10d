"""Trying, harmlessly, every command the library would send as the configured Redis user.

Each command is queued inside ``MULTI`` and the transaction is then dropped
with ``DISCARD``: Redis checks the ACL (command, key and channel permissions)
when it queues a command, so a refusal shows as ``NOPERM`` while nothing ever
runs. The keys and channels tried are under the configured prefix with a random
tag that no session has. When ``MULTI`` itself is refused, ``ACL DRYRUN``
(Redis 7) is asked instead, when the user may run it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from redis import exceptions as rex

from .._compat import checkout
from ._checks import Check
from ._nodes import Node, call

__all__ = ["AclPlan", "check_acl", "commands_for"]

_FAILURES = (rex.RedisError, OSError, TimeoutError)
# The commands the Lua scripts run (scripts/*.lua): Redis checks them as the caller.
_SCRIPT_COMMANDS = (
    "DEL", "HGET", "HMGET", "HSET", "PEXPIRE", "PTTL", "PUBLISH", "TIME",
    "ZADD", "ZRANGE", "ZRANGEBYSCORE", "ZREM", "ZREMRANGEBYSCORE",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class AclPlan:
    """What the configured library would do, hence which commands it needs."""

    prefix: str
    layout: str = "v1"
    listen: bool = False
    kea: bool = False
    local_cache: bool = False
    wait_replicas: bool = False


def commands_for(plan: AclPlan) -> list[tuple[str, tuple[str | int, ...]]]:
    """Return ``(label, command)`` pairs: every command ``plan`` makes the library send."""
    tag = f"doctor-{secrets.token_hex(8)}"
    key = f"{plan.prefix}:{{{tag}}}:s:{secrets.token_urlsafe(16)}"
    index = f"{plan.prefix}:{{{tag}}}:i"
    channel = f"{plan.prefix}:events"
    sha = "0" * 40
    probes: list[tuple[str, tuple[str | int, ...]]] = [
        ("PING", ("PING",)),
        ("INFO", ("INFO", "server")),
        ("TIME", ("TIME",)),
    ]
    if plan.layout != "v1":
        node_key = f"{tag}:{secrets.token_hex(8)}"
        probes += [
            ("GET", ("GET", node_key)),
            ("SET", ("SET", node_key, "{}", "EX", 1)),
            ("DEL", ("DEL", node_key)),
            ("PTTL", ("PTTL", node_key)),
            ("SCAN", ("SCAN", 0, "MATCH", f"{tag}:*", "COUNT", 10)),
            ("EVALSHA", ("EVALSHA", sha, 1, node_key)),
            ("EVAL", ("EVAL", "return 0", 1, node_key)),
            ("SCRIPT LOAD", ("SCRIPT", "LOAD", "return 0")),
        ]
        return probes
    probes += [
        ("EVALSHA", ("EVALSHA", sha, 2, key, index)),
        ("EVAL", ("EVAL", "return 0", 2, key, index)),
        ("SCRIPT LOAD", ("SCRIPT", "LOAD", "return 0")),
    ]
    args: dict[str, tuple[str | int, ...]] = {
        "DEL": (key,),
        "HGET": (key, "d"),
        "HMGET": (key, "t", "x", "d"),
        "HSET": (key, "t", 1),
        "PEXPIRE": (key, 1000),
        "PTTL": (key,),
        "PUBLISH": (channel, "{}"),
        "TIME": (),
        "ZADD": (index, 0, "x"),
        "ZRANGE": (index, 0, -1),
        "ZRANGEBYSCORE": (index, "-inf", "+inf"),
        "ZREM": (index, "x"),
        "ZREMRANGEBYSCORE": (index, "-inf", 0),
    }
    probes += [(f"{name} (in scripts)", (name, *args[name])) for name in _SCRIPT_COMMANDS]
    if plan.listen or plan.kea:
        probes.append(("SUBSCRIBE", ("SUBSCRIBE", channel)))
    if plan.kea:
        probes += [
            ("SUBSCRIBE keyevents", ("SUBSCRIBE", "__keyevent@0__:expired")),
            ("CONFIG GET", ("CONFIG", "GET", "notify-keyspace-events")),
            ("CONFIG SET", ("CONFIG", "SET", "notify-keyspace-events", "Egx")),
        ]
    if plan.local_cache:
        probes += [
            ("CLIENT ID", ("CLIENT", "ID")),
            ("CLIENT TRACKING", ("CLIENT", "TRACKING", "off")),
            ("SUBSCRIBE invalidations", ("SUBSCRIBE", "__redis__:invalidate")),
            # The database check (SWAPDB) reads and, once, writes this one key.
            ("GET cache-db", ("GET", f"{plan.prefix}:cache-db")),
            ("SET cache-db", ("SET", f"{plan.prefix}:cache-db", "x", "NX", "EX", 86_400)),
        ]
    if plan.wait_replicas:
        probes.append(("WAIT", ("WAIT", 0, 0)))
    return probes


def _is_refusal(reply: object) -> bool:
    return isinstance(reply, rex.NoPermissionError) or (
        isinstance(reply, rex.ResponseError) and str(reply).startswith("NOPERM")
    )


async def _queued(node: Node, probes: list[tuple[str, tuple[str | int, ...]]]) -> list[str] | None:
    """Labels refused inside MULTI, or None when MULTI itself is refused.

    The commands go out on a connection checked out of the client's pool and
    their replies are read as Redis sent them: a queued command answers
    ``QUEUED``, which redis-py's parser for the command's own reply (ZADD's,
    for one) cannot read. ``MULTI`` is sent and answered first, so that no
    probe is sent when it is refused (the probe would then run for real). Any
    failure but an error reply drops the connection: it may still be inside the
    transaction, or out of step.
    """
    pool = node.client.connection_pool
    conn = await checkout(pool)
    try:
        (multi,) = await _raw_replies(conn, [("MULTI",)])
        if isinstance(multi, Exception):
            return None
        replies = await _raw_replies(conn, [command for _, command in probes] + [("DISCARD",)])
    except BaseException:
        await conn.disconnect(nowait=True)
        raise
    finally:
        await pool.release(conn)
    queued = replies[:-1]  # the last is DISCARD's
    return [label for (label, _), reply in zip(probes, queued, strict=True) if _is_refusal(reply)]


async def _raw_replies(conn: Any, commands: list[tuple[str | int, ...]]) -> list[Any]:
    """Send ``commands`` in one write; every reply as Redis sent it (an error in its place)."""
    await conn.send_packed_command(conn.pack_commands(commands))
    replies: list[Any] = []
    for _ in commands:
        try:
            replies.append(await conn.read_response())
        except rex.ResponseError as exc:  # read in full: the connection is still in step
            replies.append(exc)
    return replies


async def _dry_run(node: Node, probes: list[tuple[str, tuple[str | int, ...]]]) -> list[str] | None:
    """Labels ``ACL DRYRUN`` refuses, or None when the user may not run it."""
    try:
        user = await call(node.client, "ACL", "WHOAMI")
        name = user.decode() if isinstance(user, bytes) else str(user)
        refused = []
        for label, command in probes:
            reply = await call(node.client, "ACL", "DRYRUN", name, *command)
            if reply not in (b"OK", "OK", True):
                refused.append(label)
    except rex.ResponseError:
        return None
    return refused


async def check_acl(nodes: list[Node], plan: AclPlan) -> Check:
    """Try every command the library needs, as the configured user, on every primary."""
    probes = commands_for(plan)
    problems: list[str] = []
    unknown: list[str] = []
    for node in nodes:
        refused = await _queued(node, probes)
        if refused is None:
            refused = await _dry_run(node, probes)
        where = f"{node.address}: " if len(nodes) > 1 else ""
        if refused is None:
            unknown.append(f"{where}MULTI and ACL DRYRUN are refused, so nothing could be tried")
        elif refused:
            problems.append(f"{where}refused {', '.join(refused)}")
    if problems:
        return Check(
            "acl",
            "problem",
            "; ".join(problems),
            f"grant them, e.g. ACL SETUSER <user> +<command> ~{plan.prefix}:* &{plan.prefix}:*",
        )
    if unknown:
        return Check(
            "acl", "skipped", "; ".join(unknown), "allow MULTI or ACL DRYRUN so doctor can check"
        )
    return Check("acl", "ok", f"all {len(probes)} commands the library sends are allowed")
