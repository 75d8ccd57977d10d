"""The topology checks of ``redis-jwt doctor``: Cluster slots and replicas, Sentinel quorum."""

from __future__ import annotations

import contextlib

from redis import exceptions as rex
from redis.asyncio import Redis

from ._checks import Check
from ._nodes import Node, SentinelTarget, call

__all__ = ["check_cluster", "check_sentinel"]

CLUSTER_SLOTS = 16384
_FAILURES = (rex.RedisError, OSError, TimeoutError)
_DOWN = frozenset({"fail", "fail?", "s_down", "o_down", "disconnected", "noaddr", "handshake"})


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _ranges(slots: list[int]) -> str:
    spans: list[str] = []
    start = previous = slots[0]
    for slot in [*slots[1:], -1]:
        if slot != previous + 1:
            spans.append(str(start) if start == previous else f"{start}-{previous}")
            start = slot
        previous = slot
    return ", ".join(spans)


def _view(text: str) -> tuple[bytearray, dict[str, str]]:
    """One node's ``CLUSTER NODES``: which slots a healthy primary serves, and the primaries."""
    covered = bytearray(CLUSTER_SLOTS)
    primaries: dict[str, str] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 8:
            continue
        flags = set(fields[2].split(","))
        address = fields[1].split("@", 1)[0].split(",", 1)[0]
        # A primary without slots serves nothing (e.g. a node not yet made a replica).
        if "master" in flags and not flags & _DOWN and len(fields) > 8:
            primaries[fields[0]] = address
            for spec in fields[8:]:
                if spec.startswith("["):
                    continue  # a slot on the move, still served by its owner
                first, _, last = spec.partition("-")
                covered[int(first) : int(last or first) + 1] = b"\x01" * (
                    int(last or first) + 1 - int(first)
                )
    return covered, primaries


async def check_cluster(nodes: list[Node]) -> list[Check]:
    """Every slot served by a healthy primary, and at least one replica per primary."""
    # A slot counts as served only when every primary's view agrees: a node that
    # dropped slots tells no one, so the other views may still list them.
    covered = bytearray(b"\x01" * CLUSTER_SLOTS)
    primaries: dict[str, str] = {}
    for node in nodes:
        view, owners = _view(_text(await call(node.client, "CLUSTER", "NODES")))
        primaries.update(owners)
        for slot in range(CLUSTER_SLOTS):
            covered[slot] &= view[slot]
    missing = [slot for slot in range(CLUSTER_SLOTS) if not covered[slot]]
    if missing:
        slots = Check(
            "cluster_slots",
            "problem",
            f"{len(missing)} slots have no healthy primary ({_ranges(missing)}): "
            "users whose keys hash there cannot log in",
            "assign the slots (CLUSTER ADDSLOTS / redis-cli --cluster fix) or recover the node",
        )
    else:
        slots = Check(
            "cluster_slots", "ok", f"all {CLUSTER_SLOTS} slots served by {len(primaries)} primaries"
        )
    # Each primary's own word on its replicas: gossip views lag behind.
    online: dict[str, int] = {}
    for node in nodes:
        info = await node.client.info("replication")
        online[node.address] = sum(
            1
            for name, value in info.items()
            if name.startswith("slave")
            and isinstance(value, dict)
            and value.get("state") == "online"
        )
    alone = sorted(address for address, count in online.items() if not count)
    counts = ", ".join(f"{address}: {count}" for address, count in sorted(online.items()))
    if alone:
        replica_check = Check(
            "cluster_replicas",
            "problem",
            f"primaries without an online replica: {', '.join(alone)} (replicas {counts}); "
            "their sessions are lost if they fail",
            "attach a replica to each primary (CLUSTER REPLICATE <primary id> on a new node)",
        )
    else:
        replica_check = Check("cluster_replicas", "ok", f"replicas per primary: {counts}")
    return [slots, replica_check]


def _pairs(entry: object) -> dict[str, str]:
    # redis-py parses SENTINEL REPLICAS into dicts; a raw reply is a flat list.
    if isinstance(entry, dict):
        return {_text(k): _text(v) for k, v in entry.items()}
    items = [_text(item) for item in entry] if isinstance(entry, list) else []
    return dict(zip(items[::2], items[1::2], strict=False))


async def check_sentinel(target: SentinelTarget, kwargs: dict[str, object]) -> list[Check]:
    """``SENTINEL CKQUORUM`` on each sentinel, and the replicas they know as healthy."""
    quorum_ok: list[str] = []
    quorum_bad: list[str] = []
    healthy: set[str] = set()
    known: set[str] = set()
    for host, port in target.hosts:
        sentinel = Redis(
            host=host,
            port=port,
            password=target.password,
            username=target.username,
            socket_timeout=kwargs.get("socket_timeout") or 1.0,  # type: ignore[arg-type]
            socket_connect_timeout=kwargs.get("socket_connect_timeout") or 1.0,  # type: ignore[arg-type]
        )
        try:
            reply = await call(sentinel, "SENTINEL", "CKQUORUM", target.service)
            quorum_ok.append(f"{host}:{port}")
            del reply
            for entry in await call(sentinel, "SENTINEL", "REPLICAS", target.service):
                fields = _pairs(entry)
                address = f"{fields.get('ip')}:{fields.get('port')}"
                known.add(address)
                flags = set(fields.get("flags", "").split(","))
                if fields.get("master-link-status") == "ok" and not flags & _DOWN:
                    healthy.add(address)
        except rex.ResponseError as exc:
            quorum_bad.append(f"{host}:{port}: {_text(exc)}")
        except _FAILURES as exc:
            quorum_bad.append(f"{host}:{port} unreachable ({_text(exc).splitlines()[0]})")
        finally:
            with contextlib.suppress(*_FAILURES):
                await sentinel.aclose()
    if quorum_bad:
        quorum = Check(
            "sentinel_quorum",
            "problem",
            "; ".join(quorum_bad) + f" ({len(quorum_ok)} of {len(target.hosts)} sentinels agree)",
            f"start enough sentinels for the quorum of {target.service!r} (SENTINEL CKQUORUM)",
        )
    else:
        quorum = Check(
            "sentinel_quorum",
            "ok",
            f"{len(quorum_ok)} sentinels reach the quorum and can authorise a failover",
        )
    if not healthy:
        replicas = Check(
            "sentinel_replicas",
            "problem",
            "no healthy replica known to the sentinels "
            f"(known: {', '.join(sorted(known)) or 'none'}): a failover has nowhere to go",
            f"attach a replica to the primary of {target.service!r} (REPLICAOF)",
        )
    else:
        replicas = Check(
            "sentinel_replicas",
            "ok",
            f"{len(healthy)} healthy replicas: {', '.join(sorted(healthy))}",
        )
    return [quorum, replicas]
