"""The servers behind a client: each primary, and a replica to read from when there is one.

``doctor`` checks every primary of a Cluster one by one, and ``stats`` scans each
shard once, on a replica when one answers, so that counting never loads a
primary. Clients built here are owned by the caller (close them with
:func:`close_nodes`); the RedisJWT's own client is borrowed and left open.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from redis import exceptions as rex
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

__all__ = [
    "Node",
    "SentinelTarget",
    "call",
    "close_nodes",
    "node_clients",
    "parse_sentinel_url",
    "read_targets",
]

AnyRedis = Redis | RedisCluster
# Connection options copied from the library's client to the ones built here:
# the same credentials, TLS and (short) timeouts.
_COPIED = (
    "username",
    "password",
    "socket_timeout",
    "socket_connect_timeout",
    "ssl_keyfile",
    "ssl_certfile",
    "ssl_cert_reqs",
    "ssl_ca_certs",
    "ssl_check_hostname",
)
_FAILURES = (rex.RedisError, OSError, TimeoutError)


@dataclass
class Node:
    """One server: its address, a client bound to it, and its role."""

    address: str
    client: Redis
    role: str = "primary"
    owned: bool = True
    slots: list[tuple[int, int]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SentinelTarget:
    """What a ``redis+sentinel://`` URL names: the sentinels and the monitored service."""

    hosts: tuple[tuple[str, int], ...]
    service: str
    password: str | None
    username: str | None


def parse_sentinel_url(url: str) -> SentinelTarget | None:
    """Return the sentinels and service of a ``redis+sentinel://`` URL, else ``None``."""
    if not url.startswith(("redis+sentinel://", "rediss+sentinel://")):
        return None
    parts = urlsplit(url)
    hosts: list[tuple[str, int]] = []
    for part in parts.netloc.rpartition("@")[2].split(","):
        host, _, port = part.strip().rpartition(":")
        with contextlib.suppress(ValueError):
            hosts.append((host.strip("[]") or part, int(port) if port else 26379))
    path = [p for p in parts.path.split("/") if p]
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    return SentinelTarget(
        hosts=tuple(hosts),
        service=unquote(path[0]) if path else "mymaster",
        password=query.get("sentinel_password"),
        username=query.get("sentinel_username"),
    )


async def call(client: Redis, *command: str | int | bytes) -> Any:
    """Send one raw command (redis-py leaves ``execute_command`` untyped)."""
    return await client.execute_command(*command)  # type: ignore[no-untyped-call]


def _kwargs(source: Mapping[str, Any]) -> dict[str, Any]:
    out = {name: source[name] for name in _COPIED if source.get(name) is not None}
    connection_class = source.get("connection_class")
    if connection_class is not None and "SSL" in getattr(connection_class, "__name__", ""):
        out["ssl"] = True
    return out


def client_kwargs(client: AnyRedis) -> dict[str, Any]:
    """The credentials and timeouts of ``client``, to open more connections like it."""
    if isinstance(client, RedisCluster):
        nodes = client.get_nodes()
        return _kwargs(nodes[0].connection_kwargs) if nodes else {}
    return _kwargs(client.connection_pool.connection_kwargs)


def node_clients(client: AnyRedis) -> list[Node]:
    """Each primary behind ``client``: the client itself, or one per Cluster primary."""
    if not isinstance(client, RedisCluster):
        kw = client.connection_pool.connection_kwargs
        address = f"{kw['host']}:{kw.get('port', 6379)}" if "host" in kw else "primary"
        return [Node(address=address, client=client, owned=False)]
    kwargs = client_kwargs(client)
    return [
        Node(address=f"{n.host}:{n.port}", client=Redis(host=n.host, port=int(n.port), **kwargs))
        for n in sorted(client.get_primaries(), key=lambda n: (n.host, int(n.port)))
    ]


async def close_nodes(nodes: Iterable[Node]) -> None:
    """Close the clients this module built."""
    for node in nodes:
        if node.owned:
            with contextlib.suppress(*_FAILURES):
                await node.client.aclose()


async def _answers(client: Redis) -> bool:
    try:
        return bool(await client.ping())
    except _FAILURES:
        return False


async def _replica_of(primary: Redis, kwargs: dict[str, Any]) -> tuple[str, Redis] | None:
    """An online replica listed by the primary's ``INFO replication``, if one answers."""
    try:
        info = await primary.info("replication")
    except _FAILURES:
        return None
    for name, value in sorted(info.items()):
        if not (name.startswith("slave") and isinstance(value, dict)):
            continue
        if value.get("state") != "online":
            continue
        host, port = str(value.get("ip")), int(value.get("port", 0))
        replica = Redis(host=host, port=port, **kwargs)
        if await _answers(replica):
            with contextlib.suppress(*_FAILURES):
                await call(replica, "READONLY")
            return f"{host}:{port}", replica
        await replica.aclose()
    return None


async def read_targets(client: AnyRedis) -> list[Node]:
    """One server per shard to read from: an online replica when one answers, else the primary.

    Sentinel and standalone servers list their replicas in ``INFO replication``;
    each Cluster primary lists its own.
    """
    kwargs = client_kwargs(client)
    targets: list[Node] = []
    for primary in node_clients(client):
        found = await _replica_of(primary.client, kwargs)
        if found is None:
            targets.append(primary)
            continue
        address, replica = found
        targets.append(Node(address=address, client=replica, role="replica"))
        if primary.owned:
            await primary.client.aclose()
    return targets
