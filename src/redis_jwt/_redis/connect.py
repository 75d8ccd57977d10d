"""Building the redis.asyncio client from a URL, with our timeouts and retry budget.

Forms understood (see docs/deployment.md):

- ``redis://[[user]:password@]host[:port][/db]``, ``rediss://...`` (TLS),
  ``unix://[[user]:password@]/path/to/socket[?db=N]``: one server.
- ``redis+sentinel://[[user]:password@]host:port[,host:port...]/service[/db]``
  (``rediss+sentinel://`` for TLS): the primary of ``service``, found through
  the sentinels; query ``sentinel_password``/``sentinel_username`` for
  sentinels that require their own credentials.
- ``redis+cluster://[[user]:password@]host:port[,host:port...]``
  (``rediss+cluster://`` for TLS): a Redis Cluster, from one or more seed nodes.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from redis import exceptions as rex
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff

from ..errors import ConfigurationError
from .store import AnyRedis

__all__ = ["address", "client_from_url"]

_PLAIN = ("redis://", "rediss://", "unix://")
_SENTINEL = ("redis+sentinel://", "rediss+sentinel://")
_CLUSTER = ("redis+cluster://", "rediss+cluster://")


def _hosts(netloc: str, url: str, default_port: int) -> list[tuple[str, int]]:
    hosts = []
    for part in netloc.rpartition("@")[2].split(","):
        host, _, port = part.strip().rpartition(":") if ":" in part else (part, "", "")
        host = host.strip("[]") or part
        try:
            hosts.append((host, int(port) if port else default_port))
        except ValueError as exc:
            raise ConfigurationError(f"bad host:port {part!r} in {url!r}") from exc
    if not hosts or not all(h for h, _ in hosts):
        raise ConfigurationError(f"no host in {url!r}")
    return hosts


def _credentials(netloc: str) -> dict[str, Any]:
    userinfo, at, _ = netloc.rpartition("@")
    if not at:
        return {}
    user, _, password = userinfo.partition(":")
    out: dict[str, Any] = {}
    if user:
        out["username"] = unquote(user)
    if password:
        out["password"] = unquote(password)
    return out


def client_from_url(url: str, *, timeout_seconds: float, retries: int) -> AnyRedis:
    """Return a client for ``url`` whose every call fails fast when Redis is away.

    redis-py's defaults wait for the OS (about a minute on a black-holed
    address); a dead Redis must instead become a fast 503. Each attempt gets
    ``timeout_seconds`` to connect and to answer, and a failed attempt is
    retried ``retries`` times at once (a stale pooled connection costs one
    reconnect, not an error).
    """
    if not isinstance(url, str):
        raise ConfigurationError(f"redis_url must be a str, not {type(url).__name__}")
    common: dict[str, Any] = {
        "socket_timeout": timeout_seconds,
        "socket_connect_timeout": timeout_seconds,
        "retry": Retry(NoBackoff(), retries),
        "retry_on_error": [rex.ConnectionError, rex.TimeoutError, OSError],
    }
    if url.startswith(_PLAIN):
        try:
            return Redis.from_url(url, health_check_interval=0, **common)
        except ValueError as exc:
            raise ConfigurationError(f"redis_url={url!r} is not a valid Redis URL: {exc}") from exc
    if url.startswith(_SENTINEL):
        return _sentinel_client(url, common)
    if url.startswith(_CLUSTER):
        parts = urlsplit(url)
        nodes = [ClusterNode(host, port) for host, port in _hosts(parts.netloc, url, 6379)]
        return RedisCluster(
            startup_nodes=nodes,
            ssl=url.startswith("rediss"),
            **_credentials(parts.netloc),
            **common,
        )
    raise ConfigurationError(
        f"redis_url must start with one of {', '.join(_PLAIN + _SENTINEL + _CLUSTER)}; got {url!r}"
    )


def _sentinel_client(url: str, common: dict[str, Any]) -> Redis:
    parts = urlsplit(url)
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise ConfigurationError(
            f"{url!r} names no service: use redis+sentinel://host:26379,host2:26379/mymaster/0"
        )
    service = unquote(path[0])
    try:
        db = int(path[1]) if len(path) > 1 else 0
    except ValueError as exc:
        raise ConfigurationError(f"bad database number in {url!r}") from exc
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    sentinel_kwargs: dict[str, Any] = {
        "socket_timeout": common["socket_timeout"],
        "socket_connect_timeout": common["socket_connect_timeout"],
    }
    if "sentinel_password" in query:
        sentinel_kwargs["password"] = query["sentinel_password"]
    if "sentinel_username" in query:
        sentinel_kwargs["username"] = query["sentinel_username"]
    ssl = url.startswith("rediss")
    if ssl:
        sentinel_kwargs["ssl"] = True
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        _hosts(parts.netloc, url, 26379),
        sentinel_kwargs=sentinel_kwargs,
        db=db,
        ssl=ssl,
        **_credentials(parts.netloc),
        **common,
    )
    client: Redis = sentinel.master_for(service)
    return client


def address(client: AnyRedis) -> str:
    """Where ``client`` connects, as a URL whose password is ``***`` (for logs and errors)."""
    kwargs: dict[str, Any]
    if isinstance(client, RedisCluster):
        kwargs = dict(getattr(client, "connection_kwargs", {}))
        nodes = client.get_nodes() or list(client.nodes_manager.startup_nodes.values())
        where = ",".join(f"{node.host}:{node.port}" for node in nodes)
        scheme = "rediss+cluster" if kwargs.get("ssl") else "redis+cluster"
        path = ""
    else:
        pool = client.connection_pool
        kwargs = dict(pool.connection_kwargs)
        service = getattr(pool, "service_name", None)
        secure = "SSL" in pool.connection_class.__name__
        if service is not None:
            sentinels = getattr(getattr(pool, "sentinel_manager", None), "sentinels", [])
            where = ",".join(
                "{host}:{port}".format(**sentinel.connection_pool.connection_kwargs)
                for sentinel in sentinels
            )
            scheme, path = "redis+sentinel", f"/{service}"
        elif kwargs.get("path"):
            scheme, where, path = "unix", "", str(kwargs["path"])
        else:
            scheme = "rediss" if secure else "redis"
            where = f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"
            path = f"/{kwargs.get('db', 0)}"
    user = kwargs.get("username") or ""
    credentials = f"{user}:***@" if kwargs.get("password") else (f"{user}@" if user else "")
    return f"{scheme}://{credentials}{where}{path}"
