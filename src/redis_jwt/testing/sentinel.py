"""A Redis Sentinel set: 1 primary, 2 replicas and 3 sentinels on loopback."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Self

from redis_jwt.testing._binary import RedisBinary, resolve_binary
from redis_jwt.testing._managed import Managed
from redis_jwt.testing.server import RedisServer, stop_servers, wait_until

__all__ = ["RedisSentinelSet"]

# 7.0 defaults to diskless sync with a 5 s delay, stalling every replica attach.
_DATA_ARGS = ("--repl-diskless-sync-delay", "0")


class _SentinelServer(RedisServer):
    """``redis-server --sentinel`` with a writable config file in its temp dir."""

    def __init__(self, binary: RedisBinary, monitor: Callable[[], list[str]]) -> None:
        super().__init__(binary)
        self._monitor = monitor

    def _command_line(self, workdir: Path) -> list[str]:
        # Sentinel rewrites its config file (state, discovered peers), so it must be
        # a file of its own; everything else stays on the command line.
        config = workdir / "sentinel.conf"
        if not config.exists():
            config.write_text("\n".join(self._monitor()) + "\n")
        return [self.binary.path, str(config), "--sentinel", *super()._command_line(workdir)[1:]]


class RedisSentinelSet(Managed):
    """One primary, two replicas and three sentinels watching them (quorum 2).

    Client connection data: :attr:`sentinels` (addresses) plus :attr:`service_name`,
    e.g. ``redis.asyncio.Sentinel(s.sentinels).master_for(s.service_name)``. :attr:`url`
    packs both as ``redis+sentinel://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3/<service>/0``.

    Args:
        binary: The ``redis-server`` to run; default: ``default_redis_server()``.
        service_name: The monitored master name.
        down_after_ms: ``sentinel down-after-milliseconds``.
        failover_timeout_ms: ``sentinel failover-timeout``.
        startup_timeout_seconds: Bound on the whole start-up.
    """

    def __init__(
        self,
        binary: RedisBinary | str | None = None,
        *,
        service_name: str = "mymaster",
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 5000,
        startup_timeout_seconds: float = 30.0,
    ) -> None:
        self.binary: RedisBinary = resolve_binary(binary)
        self.service_name = service_name
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.startup_timeout_seconds = startup_timeout_seconds
        self.data_servers: list[RedisServer] = [RedisServer(self.binary, extra_args=_DATA_ARGS)]
        self.sentinel_servers: list[RedisServer] = [
            _SentinelServer(self.binary, self._sentinel_config) for _ in range(3)
        ]
        self._initial_primary = self.data_servers[0]
        self._killed: tuple[RedisServer, float] | None = None

    def __repr__(self) -> str:
        return f"<RedisSentinelSet {self.service_name} v{self.binary.version_string}>"

    def _sentinel_config(self) -> list[str]:
        name = self.service_name
        lines = [
            f"sentinel monitor {name} 127.0.0.1 {self._initial_primary.port} 2",
            f"sentinel down-after-milliseconds {name} {self.down_after_ms}",
            f"sentinel failover-timeout {name} {self.failover_timeout_ms}",
            f"sentinel parallel-syncs {name} 1",
            # Peers learn each other's address from hello messages; pin it to loopback.
            "sentinel announce-ip 127.0.0.1",
        ]
        if self.binary.version >= (6, 2, 0):
            lines.append("sentinel resolve-hostnames no")
        return lines

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> Self:
        """Start the data servers, then the sentinels, and wait until they see everything.

        Returns:
            ``self``.

        Raises:
            RuntimeError: If a process fails to start.
            TimeoutError: If the sentinels do not discover the topology in time.
        """
        if self._initial_primary.running:
            return self
        deadline = time.monotonic() + self.startup_timeout_seconds
        try:
            primary = self._initial_primary.start()
            replica_args = (*_DATA_ARGS, "--replicaof", primary.host, str(primary.port))
            self.data_servers = [
                primary,
                *(RedisServer(self.binary, extra_args=replica_args) for _ in range(2)),
            ]
            for server in self.data_servers[1:]:
                server.start()
            for sentinel in self.sentinel_servers:
                sentinel.start()
            self.wait_healthy(max(0.1, deadline - time.monotonic()))
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop sentinels first (so they do not fail over during shutdown), then data."""
        stop_servers(self.sentinel_servers)
        stop_servers(self.data_servers)
        self._killed = None

    # -- topology --------------------------------------------------------------------

    @property
    def sentinels(self) -> list[tuple[str, int]]:
        """``(host, port)`` of each sentinel."""
        return [(s.host, s.port) for s in self.sentinel_servers]

    @property
    def url(self) -> str:
        """``redis+sentinel://h:p,h:p,h:p/<service_name>/0`` (see the class docstring)."""
        hosts = ",".join(f"{host}:{port}" for host, port in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.service_name}/0"

    def _running_sentinels(self) -> list[RedisServer]:
        return [s for s in self.sentinel_servers if s.running and not s.paused]

    def _reported_primary_port(self, sentinel: RedisServer) -> int | None:
        reply = sentinel.command(
            "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service_name, timeout_seconds=2.0
        )
        if not isinstance(reply, list) or len(reply) != 2:
            return None
        return int(str(reply[1]))

    def _server_on(self, port: int) -> RedisServer:
        for server in self.data_servers:
            if server.port == port:
                return server
        raise LookupError(f"sentinels report port {port}, which is not a data server here")

    def primary(self) -> RedisServer:
        """The data server a sentinel currently reports as primary.

        Raises:
            LookupError: If no running sentinel answers with a known address.
        """
        for sentinel in self._running_sentinels():
            port = self._reported_primary_port(sentinel)
            if port is not None:
                return self._server_on(port)
        raise LookupError(f"no sentinel reports a primary for {self.service_name!r}")

    def _health_problem(self) -> str | None:
        sentinels = self._running_sentinels()
        if not sentinels:
            return "no running sentinel"
        ports = {self._reported_primary_port(s) for s in sentinels}
        if len(ports) != 1 or None in ports:
            return f"sentinels disagree on the primary: {ports}"
        primary = self._server_on(int(str(ports.pop())))
        if not primary.running:
            return f"reported primary {primary!r} is not running"
        role = primary.command("ROLE", timeout_seconds=2.0)
        if not isinstance(role, list) or role[0] != "master":
            return f"reported primary {primary!r} has role {role!r}"
        replica_ports = {s.port for s in self.data_servers if s.running and s is not primary}
        for sentinel in sentinels:
            replicas = sentinel.command("SENTINEL", "REPLICAS", self.service_name)
            healthy = {
                int(fields.get("port", "0"))
                for fields in (_pairs(entry) for entry in _as_list(replicas))
                if fields.get("master-link-status") == "ok"
                and not {"s_down", "o_down", "disconnected"}
                & set(fields.get("flags", "").split(","))
            }
            if not replica_ports <= healthy:
                return f"{sentinel!r} sees healthy replicas {healthy}, want {replica_ports}"
            peers = _as_list(sentinel.command("SENTINEL", "SENTINELS", self.service_name))
            if len(peers) < len(sentinels) - 1:
                return f"{sentinel!r} knows {len(peers)} other sentinels"
        return None

    def wait_healthy(self, timeout_seconds: float = 30.0) -> None:
        """Wait until all running sentinels agree on a primary that answers ``ROLE`` as
        master, see every running replica as connected, and know each other.

        Raises:
            TimeoutError: With the last problem seen.
        """
        last: list[str | None] = ["not checked yet"]

        def check() -> bool | None:
            last[0] = self._health_problem()
            return True if last[0] is None else None

        try:
            wait_until(check, timeout_seconds=timeout_seconds, what=f"{self!r} to be healthy")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; last problem: {last[0]}") from None

    # -- faults ----------------------------------------------------------------------

    def kill_primary(self) -> RedisServer:
        """``SIGKILL`` the current primary and remember when, for :meth:`wait_failover`.

        Returns:
            The killed server (restart it with ``.restart()``; sentinels make it a replica).
        """
        primary = self.primary()
        primary.kill()
        self._killed = (primary, time.monotonic())
        return primary

    def wait_failover(self, timeout_seconds: float = 30.0) -> float:
        """Wait until the sentinels report a different primary that answers ``ROLE`` master.

        Args:
            timeout_seconds: Bound on the wait.

        Returns:
            Seconds since :meth:`kill_primary` (else since this call).

        Raises:
            TimeoutError: If no failover completes in time.
        """
        old, began = self._killed if self._killed is not None else (None, time.monotonic())
        if old is None:
            old = self.primary()

        def check() -> bool | None:
            ports = {self._reported_primary_port(s) for s in self._running_sentinels()}
            if len(ports) != 1 or None in ports:
                return None
            candidate = self._server_on(int(str(ports.pop())))
            if candidate is old or not candidate.running:
                return None
            role = candidate.command("ROLE", timeout_seconds=2.0)
            return True if isinstance(role, list) and role[0] == "master" else None

        wait_until(check, timeout_seconds=timeout_seconds, what=f"{self!r} to fail over")
        return time.monotonic() - began


def _as_list(reply: object) -> list[object]:
    return reply if isinstance(reply, list) else []


def _pairs(entry: object) -> dict[str, str]:
    items = [str(item) for item in _as_list(entry)]
    return dict(zip(items[::2], items[1::2], strict=False))
