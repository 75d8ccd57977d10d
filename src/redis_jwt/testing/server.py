"""A throw-away ``redis-server`` process on a free loopback port."""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Self
from urllib.parse import quote

from redis_jwt.testing._binary import RedisBinary, resolve_binary
from redis_jwt.testing._managed import Managed
from redis_jwt.testing._resp import (
    _RESERVED_PORTS,
    RedisCommandError,
    free_port,
    send_command,
    wait_until,
)

__all__ = [
    "RedisCommandError",
    "RedisServer",
    "free_port",
    "send_command",
    "stop_servers",
    "wait_until",
]

_PORT_ATTEMPTS = 5
_POLL_SECONDS = 0.02
_STOP_TIMEOUT_SECONDS = 5.0
_LOG_TAIL_LINES = 30


_LIVE: set[RedisServer] = set()
_LIVE_LOCK = threading.Lock()


def stop_servers(servers: Iterable[RedisServer]) -> None:
    """Stop several servers concurrently: ``SIGTERM`` all, then reap each (bounded).

    Redis only acts on ``SIGTERM`` at its next cron tick (~100 ms), so stopping a
    cluster one node at a time would add that delay per node.

    Args:
        servers: Servers to stop; already stopped ones are fine.
    """
    servers = list(servers)
    for server in servers:
        with contextlib.suppress(OSError):
            server._terminate()
    for server in servers:
        server._finish_stop()


@atexit.register
def _stop_leftovers() -> None:
    # A crashed or interrupted test run must not leave Redis processes behind.
    with _LIVE_LOCK:
        leftovers = list(_LIVE)
    with contextlib.suppress(Exception):
        stop_servers(leftovers)


def _require_loopback(host: str) -> None:
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise ValueError(f"the test harness binds loopback only, not {host!r}")


class RedisServer(Managed):
    """A ``redis-server`` child process bound to loopback, without persistence.

    Nothing starts in the constructor; call :meth:`start` or use ``with``. The process
    is tracked by PID, and an ``atexit`` hook stops it if the interpreter exits first.

    Args:
        binary: The executable (``RedisBinary`` or path); default: ``default_redis_server()``.
        port: Fixed port; default: a free one picked at start (re-picked on collision).
        host: Loopback address to bind.
        password: ``requirepass`` value, also put in :attr:`url`.
        extra_args: Extra ``--option value`` arguments appended to the command line.
        startup_timeout_seconds: Bound on waiting for the server to answer.
    """

    def __init__(
        self,
        binary: RedisBinary | str | None = None,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        password: str | None = None,
        extra_args: Sequence[str] = (),
        startup_timeout_seconds: float = 10.0,
    ) -> None:
        _require_loopback(host)
        if port in _RESERVED_PORTS:
            raise ValueError(f"port {port} is reserved for the machine's own Redis")
        self.binary: RedisBinary = resolve_binary(binary)
        self.host = host
        self.password = password
        self.extra_args: tuple[str, ...] = tuple(extra_args)
        self.startup_timeout_seconds = startup_timeout_seconds
        self._fixed_port = port is not None
        self._port: int | None = port
        self._process: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None
        self._paused = False

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        where = f"{self.host}:{self._port}"
        return f"<{type(self).__name__} {where} v{self.binary.version_string} {state}>"

    @property
    def port(self) -> int:
        """The TCP port (picked at first start unless given)."""
        if self._port is None:
            raise RuntimeError("port is chosen at start(); the server was never started")
        return self._port

    @property
    def pid(self) -> int | None:
        """PID of the running process, else ``None``."""
        return self._process.pid if self.running and self._process is not None else None

    @property
    def url(self) -> str:
        """``redis://[:password@]host:port/0``."""
        auth = f":{quote(self.password, safe='')}@" if self.password is not None else ""
        return f"redis://{auth}{self.host}:{self.port}/0"

    @property
    def version(self) -> tuple[int, int, int]:
        """The binary's ``(major, minor, patch)``."""
        return self.binary.version

    @property
    def running(self) -> bool:
        """Whether the process exists and has not exited (a paused one counts as running)."""
        return self._process is not None and self._process.poll() is None

    @property
    def paused(self) -> bool:
        """Whether the process is stopped with ``SIGSTOP``."""
        return self._paused and self.running

    @property
    def data_dir(self) -> Path | None:
        """The temporary working directory (``--dir``), kept until :meth:`stop`."""
        return self._dir

    @property
    def log_path(self) -> Path | None:
        """The server log file, or ``None`` before the first start."""
        return None if self._dir is None else self._dir / "redis.log"

    def _cluster_mode(self) -> bool:
        args = list(self.extra_args)
        return any(
            a == "--cluster-enabled" and i + 1 < len(args) and args[i + 1] == "yes"
            for i, a in enumerate(args)
        )

    def _command_line(self, workdir: Path) -> list[str]:
        """Build argv; subclasses (sentinels) override it."""
        args = [
            self.binary.path,
            "--port", str(self.port),
            "--bind", self.host,
            "--save", "",
            "--appendonly", "no",
            "--dir", str(workdir),
            "--logfile", str(self.log_path),
            "--daemonize", "no",
        ]  # fmt: skip
        # 7.0 made DEBUG opt-in; 6.2 always allows it and rejects the option.
        if self.binary.version >= (7, 0, 0):
            args += ["--enable-debug-command", "local"]
        if self.password is not None:
            args += ["--requirepass", self.password]
        return args + list(self.extra_args)

    def _log_tail(self) -> str:
        lines: list[str] = []
        if self._dir is not None:
            for name in ("stdio.log", "redis.log"):
                path = self._dir / name
                with contextlib.suppress(OSError):
                    lines += path.read_text(errors="replace").splitlines()[-_LOG_TAIL_LINES:]
        return "\n".join(lines) or "(empty log)"

    def start(self) -> Self:
        """Start the process and wait (bounded) until it answers (``INFO`` with its PID).

        Returns:
            ``self``.

        Raises:
            RuntimeError: If it exits or does not answer in time (message has the log tail).
        """
        return self._start(keep_port=self._fixed_port)

    def _start(self, *, keep_port: bool) -> Self:
        if self.running:
            return self
        try:
            return self._start_attempts(keep_port=keep_port)
        except BaseException:
            self.stop()  # the error message already carries the log tail
            raise

    def _start_attempts(self, *, keep_port: bool) -> Self:
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="redis-jwt-test-"))
        if self._port is None:
            self._port = free_port(cluster_bus=self._cluster_mode())
        for attempt in range(_PORT_ATTEMPTS):
            if self._spawn_and_wait():
                return self
            # Lost a race for the port: another process took it after free_port().
            if attempt + 1 < _PORT_ATTEMPTS:
                if keep_port:
                    time.sleep(0.2 * (attempt + 1))
                else:
                    self._port = free_port(cluster_bus=self._cluster_mode())
        raise RuntimeError(f"{self!r}: port stayed in use\n{self._log_tail()}")

    def _spawn_and_wait(self) -> bool:
        assert self._dir is not None
        with (self._dir / "stdio.log").open("ab") as stdio:
            self._process = subprocess.Popen(
                self._command_line(self._dir),
                stdin=subprocess.DEVNULL,
                stdout=stdio,
                stderr=subprocess.STDOUT,
                cwd=self._dir,
            )
        self._paused = False
        with _LIVE_LOCK:
            _LIVE.add(self)
        deadline = time.monotonic() + self.startup_timeout_seconds
        for _ in range(int(self.startup_timeout_seconds / _POLL_SECONDS) + 1):
            if time.monotonic() > deadline:
                break
            if self._process.poll() is not None:
                tail = self._log_tail()
                if "Address already in use" in tail:
                    self._truncate_logs()
                    return False
                raise RuntimeError(f"{self!r} exited with code {self._process.returncode}\n{tail}")
            try:
                # INFO rather than PING: if another process won the port race, its PONG
                # must not be mistaken for ours before our process notices and exits.
                info = self.command("INFO", "server", timeout_seconds=1.0)
                if f"process_id:{self._process.pid}\r\n" in str(info):
                    return True
            except (OSError, RedisCommandError):
                pass
            time.sleep(_POLL_SECONDS)
        self.kill()
        raise RuntimeError(
            f"{self!r} did not answer within {self.startup_timeout_seconds}s\n{self._log_tail()}"
        )

    def _truncate_logs(self) -> None:
        # The next attempt must not mistake this attempt's bind error for its own.
        if self._dir is not None:
            for name in ("stdio.log", "redis.log"):
                with contextlib.suppress(OSError):
                    (self._dir / name).unlink()

    def _reap(self, timeout_seconds: float) -> bool:
        assert self._process is not None
        try:
            self._process.wait(timeout=timeout_seconds)
        except subprocess.TimeoutExpired:
            return False
        return True

    def stop(self) -> None:
        """Stop the process (``SIGTERM``, then ``SIGKILL``) and delete its directory.

        Idempotent; a paused process is resumed first so it can handle ``SIGTERM``.
        """
        self._terminate()
        self._finish_stop()

    def _terminate(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            if self._paused:
                self.resume()
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)

    def _finish_stop(self) -> None:
        if self._process is not None and not self._reap(_STOP_TIMEOUT_SECONDS):
            self.kill()
        self._process = None
        self._paused = False
        with _LIVE_LOCK:
            _LIVE.discard(self)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def kill(self) -> None:
        """``SIGKILL`` the process and reap it; the port and directory stay for :meth:`restart`."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            if not self._reap(_STOP_TIMEOUT_SECONDS):
                raise RuntimeError(f"{self!r} (pid {process.pid}) survived SIGKILL")
        self._paused = False

    def pause(self) -> None:
        """Freeze the process with ``SIGSTOP``: connections stay open but nothing answers."""
        if not self.running or self._process is None:
            raise RuntimeError(f"{self!r} is not running")
        os.kill(self._process.pid, signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        """Continue a paused process with ``SIGCONT``."""
        if self.running and self._process is not None:
            os.kill(self._process.pid, signal.SIGCONT)
        self._paused = False

    def restart(self) -> None:
        """Kill the process if running, then start it again on the same port.

        Data is lost (no persistence); a cluster node keeps its ``nodes.conf`` and rejoins.
        """
        self.kill()
        self._start(keep_port=self._port is not None)

    def command(self, *args: str | bytes | int, timeout_seconds: float = 5.0) -> object:
        """Send one command over a raw socket (see :func:`send_command`).

        Args:
            *args: The command, e.g. ``("CONFIG", "SET", "maxclients", "10")``.
            timeout_seconds: Connect and read timeout.

        Returns:
            The decoded reply.
        """
        return send_command(
            self.host, self.port, *args, password=self.password, timeout_seconds=timeout_seconds
        )
