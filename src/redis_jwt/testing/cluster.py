"""A real Redis Cluster (3 primaries, 1 replica each) formed without ``redis-cli``."""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Self

from redis_jwt.testing._binary import RedisBinary, resolve_binary
from redis_jwt.testing._managed import Managed
from redis_jwt.testing.server import RedisCommandError, RedisServer, stop_servers, wait_until

__all__ = ["CLUSTER_SLOTS", "RedisClusterSet"]

CLUSTER_SLOTS = 16384
_ADDSLOTS_CHUNK = 1000


@dataclass(frozen=True, slots=True)
class _NodeLine:
    """One line of ``CLUSTER NODES``."""

    node_id: str
    port: int
    flags: frozenset[str]
    master_id: str
    slots: tuple[tuple[int, int], ...]

    @classmethod
    def parse(cls, line: str) -> _NodeLine:
        fields = line.split()
        # 7.0 appends ",hostname" to the address; 6.2 does not.
        address = fields[1].split(",", 1)[0].split("@", 1)[0]
        slots: list[tuple[int, int]] = []
        for spec in fields[8:]:
            if spec.startswith("["):
                continue  # a slot being migrated/imported, not owned
            first, _, last = spec.partition("-")
            slots.append((int(first), int(last or first)))
        return cls(
            node_id=fields[0],
            port=int(address.rsplit(":", 1)[1]),
            flags=frozenset(fields[2].split(",")),
            master_id=fields[3],
            slots=tuple(sorted(slots)),
        )


def _cluster_nodes(node: RedisServer) -> list[_NodeLine]:
    text = node.command("CLUSTER", "NODES", timeout_seconds=2.0)
    assert isinstance(text, str)
    return [_NodeLine.parse(line) for line in text.splitlines() if line.strip()]


def _cluster_info(node: RedisServer) -> dict[str, str]:
    text = node.command("CLUSTER", "INFO", timeout_seconds=2.0)
    assert isinstance(text, str)
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


def _slot_ranges(primaries: int) -> list[tuple[int, int]]:
    bounds = [round(i * CLUSTER_SLOTS / primaries) for i in range(primaries + 1)]
    return [(bounds[i], bounds[i + 1] - 1) for i in range(primaries)]


class RedisClusterSet(Managed):
    """Six ``RedisServer`` nodes forming a Redis Cluster: 3 primaries + 1 replica each.

    Works with Redis 6.2 and 7.x binaries. Roles change after a failover, so
    :meth:`primaries` and :meth:`replicas` ask the nodes each time.

    Args:
        binary: The ``redis-server`` to run; default: ``default_redis_server()``.
        primaries: Number of primaries (each gets one replica).
        node_timeout_ms: ``cluster-node-timeout``; bounds failure detection time.
        startup_timeout_seconds: Bound on forming the cluster.
        extra_args: Extra arguments for every node.
    """

    def __init__(
        self,
        binary: RedisBinary | str | None = None,
        *,
        primaries: int = 3,
        node_timeout_ms: int = 2000,
        startup_timeout_seconds: float = 30.0,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.binary: RedisBinary = resolve_binary(binary)
        self.node_timeout_ms = node_timeout_ms
        self.startup_timeout_seconds = startup_timeout_seconds
        self._primary_count = primaries
        args = [
            "--cluster-enabled", "yes",
            # Relative to --dir, so each node keeps its own file across restart().
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(node_timeout_ms),
            "--cluster-announce-ip", "127.0.0.1",
            # 7.0 defaults to diskless sync with a 5 s delay, stalling every replica attach.
            "--repl-diskless-sync-delay", "0",
            *extra_args,
        ]  # fmt: skip
        self.nodes: list[RedisServer] = [
            RedisServer(self.binary, extra_args=args) for _ in range(primaries * 2)
        ]
        self._node_ids: dict[int, str] = {}
        self._killed_at: dict[int, float] = {}

    def __repr__(self) -> str:
        ports = ",".join(str(n.port) for n in self.nodes if n.running)
        return f"<RedisClusterSet v{self.binary.version_string} ports={ports or '-'}>"

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> Self:
        """Start the nodes, assign slots, join them, attach replicas and wait until healthy.

        Returns:
            ``self``.

        Raises:
            RuntimeError: If a node fails to start.
            TimeoutError: If the cluster does not become healthy in time.
        """
        try:
            for node in self.nodes:
                node.start()
            self._form()
        except BaseException:
            self.stop()
            raise
        return self

    def _form(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_seconds
        primaries = self.nodes[: self._primary_count]
        replicas = self.nodes[self._primary_count :]
        for node in self.nodes:
            node_id = node.command("CLUSTER", "MYID")
            assert isinstance(node_id, str)
            self._node_ids[node.port] = node_id
        for epoch, (node, (first, last)) in enumerate(
            zip(primaries, _slot_ranges(self._primary_count), strict=True), start=1
        ):
            # Distinct epochs up front avoid a slow epoch-collision resolution round.
            node.command("CLUSTER", "SET-CONFIG-EPOCH", epoch)
            if node.version >= (7, 0, 0):
                node.command("CLUSTER", "ADDSLOTSRANGE", first, last)
            else:
                for start in range(first, last + 1, _ADDSLOTS_CHUNK):
                    stop = min(start + _ADDSLOTS_CHUNK, last + 1)
                    node.command("CLUSTER", "ADDSLOTS", *range(start, stop))
        seed = self.nodes[0]
        for node in self.nodes[1:]:
            seed.command("CLUSTER", "MEET", node.host, node.port)
        wait_until(
            self._everyone_known,
            timeout_seconds=max(0.1, deadline - time.monotonic()),
            what="all cluster nodes to know each other",
        )
        for replica, primary in zip(replicas, primaries, strict=True):
            # Retried: a node only accepts REPLICATE once gossip marked the target a master.
            wait_until(
                functools.partial(
                    replica.command, "CLUSTER", "REPLICATE", self._node_ids[primary.port]
                ),
                timeout_seconds=max(0.1, deadline - time.monotonic()),
                what=f"{replica!r} to replicate {primary!r}",
            )
        self.wait_healthy(max(0.1, deadline - time.monotonic()), expect_replicas=len(replicas))

    def _everyone_known(self) -> bool | None:
        for node in self.nodes:
            lines = _cluster_nodes(node)
            if len(lines) != len(self.nodes):
                return None
            if any(line.flags & {"handshake", "noaddr"} for line in lines):
                return None
        return True

    def stop(self) -> None:
        """Stop every node (idempotent) and remove their directories."""
        stop_servers(self.nodes)
        self._killed_at.clear()

    # -- topology --------------------------------------------------------------------

    def _running(self) -> list[RedisServer]:
        return [node for node in self.nodes if node.running and not node.paused]

    def _role(self, node: RedisServer) -> list[object]:
        role = node.command("ROLE", timeout_seconds=2.0)
        assert isinstance(role, list)
        return role

    def primaries(self) -> list[RedisServer]:
        """Running nodes whose current role is primary."""
        return [node for node in self._running() if self._role(node)[0] == "master"]

    def replicas(self) -> list[RedisServer]:
        """Running nodes whose current role is replica."""
        return [node for node in self._running() if self._role(node)[0] == "slave"]

    def node_id(self, node: RedisServer) -> str:
        """The cluster node ID of ``node`` (recorded when the cluster was formed)."""
        return self._node_ids[node.port]

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>`` of a current primary, as a cluster client seed."""
        primaries = self.primaries()
        if not primaries:
            raise RuntimeError(f"{self!r} has no running primary")
        return f"redis://{primaries[0].host}:{primaries[0].port}"

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        """``(host, port)`` of every node, for cluster clients' ``startup_nodes``."""
        return [(node.host, node.port) for node in self.nodes]

    def _slot_owners(self, node: RedisServer) -> dict[tuple[int, int], str]:
        return {
            slot_range: line.node_id
            for line in _cluster_nodes(node)
            if "master" in line.flags
            for slot_range in line.slots
        }

    def node_for_slot(self, slot: int) -> RedisServer:
        """The node currently serving ``slot`` as primary.

        Raises:
            LookupError: If no running node owns the slot.
        """
        by_port = {node.port: node for node in self.nodes}
        for asked in self._running():
            with contextlib.suppress(OSError, RedisCommandError):
                for line in _cluster_nodes(asked):
                    if "master" in line.flags and any(a <= slot <= b for a, b in line.slots):
                        owner = by_port.get(line.port)
                        if owner is not None and owner.running:
                            return owner
        raise LookupError(f"no running node serves slot {slot}")

    # -- resharding ------------------------------------------------------------------

    def move_slot(
        self,
        slot: int,
        target: RedisServer,
        *,
        keys_per_batch: int = 10,
        pause_seconds: float = 0.0,
        migrate_timeout_ms: int = 5000,
        max_batches: int = 100_000,
    ) -> int:
        """Move ``slot`` to the primary ``target`` while clients keep using it.

        The steps of ``redis-cli --cluster reshard``: ``CLUSTER SETSLOT ...
        IMPORTING`` on the target, ``MIGRATING`` on the source, then
        ``GETKEYSINSLOT`` + ``MIGRATE`` in small batches until the slot is empty
        on the source, then ``SETSLOT ... NODE`` on the target, the source and
        every other primary. Blocking: run it in a thread beside async clients.

        Args:
            slot: The hash slot to move.
            target: A current primary other than the slot's owner.
            keys_per_batch: Keys per ``MIGRATE`` (redis-cli's ``--cluster-pipeline``, 10).
            pause_seconds: Pause after each batch, to stretch the migration under load.
            migrate_timeout_ms: ``MIGRATE``'s own timeout.
            max_batches: Bound on the number of batches.

        Returns:
            How many keys were migrated.

        Raises:
            ValueError: If ``target`` already owns the slot.
            RedisCommandError: If a step is refused.
        """
        source = self.node_for_slot(slot)
        if source.port == target.port:
            raise ValueError(f"{target!r} already serves slot {slot}")
        source_id, target_id = self.node_id(source), self.node_id(target)
        target.command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        source.command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
        moved = 0
        for _ in range(max_batches):
            keys = source.command("CLUSTER", "GETKEYSINSLOT", slot, keys_per_batch)
            assert isinstance(keys, list)
            if not keys:
                break
            source.command(
                "MIGRATE", target.host, target.port, "", 0, migrate_timeout_ms,
                "KEYS", *(str(key) for key in keys),
            )  # fmt: skip
            moved += len(keys)
            if pause_seconds > 0:
                time.sleep(pause_seconds)
        others = [node for node in self.primaries() if node.port not in (source.port, target.port)]
        for node in (target, source, *others):
            node.command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
        return moved

    # -- faults ----------------------------------------------------------------------

    def kill(self, node: RedisServer) -> None:
        """``SIGKILL`` one node; the kill time is kept for :meth:`wait_failover`."""
        node.kill()
        self._killed_at[node.port] = time.monotonic()

    def _health_problem(self, expect_replicas: int) -> str | None:
        running = self._running()
        if not running:
            return "no running node"
        views: list[dict[tuple[int, int], str]] = []
        replicas = 0
        for node in running:
            info = _cluster_info(node)
            if info.get("cluster_state") != "ok":
                return f"{node!r}: cluster_state={info.get('cluster_state')}"
            if info.get("cluster_slots_assigned") != str(CLUSTER_SLOTS):
                return f"{node!r}: slots_assigned={info.get('cluster_slots_assigned')}"
            views.append(self._slot_owners(node))
            role = self._role(node)
            if role[0] == "slave":
                replicas += 1
                if role[3] != "connected":
                    return f"{node!r}: replica link {role[3]}"
                primary_port = int(str(role[2]))
                primary = next((n for n in running if n.port == primary_port), None)
                if primary is None:
                    return f"{node!r} replicates a node that is not running"
                attached = self._role(primary)[2]
                assert isinstance(attached, list)
                if not any(int(str(entry[1])) == node.port for entry in attached):
                    return f"{primary!r} does not list {node!r} as a connected replica"
        if any(view != views[0] for view in views[1:]):
            return "nodes disagree on slot ownership"
        if sum(b - a + 1 for a, b in views[0]) != CLUSTER_SLOTS:
            return "slot map does not cover all slots"
        if replicas < expect_replicas:
            return f"{replicas}/{expect_replicas} replicas attached"
        return None

    def _wait(
        self,
        what: str,
        timeout_seconds: float,
        problem_of: Callable[[], str | None],
    ) -> None:
        last: list[str | None] = ["not checked yet"]

        def check() -> bool | None:
            last[0] = problem_of()
            return True if last[0] is None else None

        try:
            wait_until(check, timeout_seconds=timeout_seconds, what=what)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; last problem: {last[0]}") from None

    def wait_healthy(self, timeout_seconds: float = 30.0, *, expect_replicas: int = 0) -> None:
        """Wait until every running node reports ``cluster_state:ok`` and agrees on slots.

        Also requires each running replica to be connected to its primary.

        Args:
            timeout_seconds: Bound on the wait.
            expect_replicas: Minimum number of running, connected replicas.

        Raises:
            TimeoutError: With the last problem seen.
        """
        self._wait(
            f"{self!r} to be healthy",
            timeout_seconds,
            lambda: self._health_problem(expect_replicas),
        )

    def wait_failover(self, old_primary: RedisServer, timeout_seconds: float = 30.0) -> float:
        """Wait until a replica of ``old_primary`` took over its slots and the cluster is ok.

        Args:
            old_primary: A primary previously stopped with :meth:`kill` (or otherwise).
            timeout_seconds: Bound on the wait.

        Returns:
            Seconds from the :meth:`kill` of ``old_primary`` (else from this call) until
            the survivors agree on the new primary and report ``cluster_state:ok``.

        Raises:
            TimeoutError: If no failover completes in time.
        """
        began = self._killed_at.get(old_primary.port, time.monotonic())
        old_id = self._node_ids[old_primary.port]

        def problem() -> str | None:
            for node in self._running():
                if old_id in self._slot_owners(node).values():
                    return f"{node!r} still routes slots to {old_primary!r}"
            return self._health_problem(0)

        self._wait(f"failover of {old_primary!r}", timeout_seconds, problem)
        return time.monotonic() - began
