"""Small synchronous helpers: free ports, a raw-socket RESP2 client, bounded waiting.

They need neither an event loop nor redis-py, so start-up checks can use them.
"""

from __future__ import annotations

import io
import socket
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

__all__ = ["RedisCommandError", "free_port", "send_command", "wait_until"]

_T = TypeVar("_T")

_RESERVED_PORTS = frozenset({6379, 16379})
_CLUSTER_BUS_OFFSET = 10000


class RedisCommandError(Exception):
    """An error reply (``-ERR ...``) from Redis to :func:`send_command`."""


def free_port(*, cluster_bus: bool = False) -> int:
    """Return a loopback TCP port that is free right now.

    Args:
        cluster_bus: Also require ``port + 10000`` (the Redis Cluster bus port) to be free.

    Returns:
        The port number; never 6379 or 16379.

    Raises:
        RuntimeError: If no suitable port is found after a bounded number of tries.
    """
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
            if port in _RESERVED_PORTS:
                continue
            if not cluster_bus:
                return port
            bus = port + _CLUSTER_BUS_OFFSET
            if bus > 65535 or bus in _RESERVED_PORTS:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as bus_probe:
                try:
                    bus_probe.bind(("127.0.0.1", bus))
                except OSError:
                    continue
                return port
    raise RuntimeError("could not find a free loopback port")


def _encode(args: Sequence[str | bytes | int]) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def _read_reply(stream: io.BufferedReader) -> object:
    line = stream.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("connection closed by Redis")
    kind, body = line[:1], line[1:-2].decode(errors="backslashreplace")
    if kind == b"+":
        return body
    if kind == b"-":
        return RedisCommandError(body)
    if kind == b":":
        return int(body)
    if kind == b"$":
        length = int(body)
        if length < 0:
            return None
        data = stream.read(length + 2)
        return data[:-2].decode(errors="backslashreplace")
    if kind == b"*":
        count = int(body)
        return None if count < 0 else [_read_reply(stream) for _ in range(count)]
    raise ConnectionError(f"unexpected RESP reply: {line!r}")


def send_command(
    host: str,
    port: int,
    *args: str | bytes | int,
    password: str | None = None,
    timeout_seconds: float = 5.0,
) -> object:
    """Send one command over a fresh raw socket and return the decoded RESP2 reply.

    Works without an event loop or redis-py, so it is usable during start-up checks.

    Args:
        host: Server host.
        port: Server port.
        *args: The command and its arguments.
        password: Sent with ``AUTH`` first if given.
        timeout_seconds: Connect and read timeout.

    Returns:
        ``str`` for simple and bulk strings, ``int``, ``None`` or nested ``list``.

    Raises:
        RedisCommandError: If Redis replies with an error.
        OSError: On connection failures and timeouts.
    """
    with socket.create_connection((host, port), timeout=timeout_seconds) as sock:
        payload = _encode(["AUTH", password]) if password is not None else b""
        sock.sendall(payload + _encode(args))
        with sock.makefile("rb") as stream:
            if password is not None:
                auth = _read_reply(stream)
                if isinstance(auth, RedisCommandError):
                    raise auth
            reply = _read_reply(stream)
    if isinstance(reply, RedisCommandError):
        raise reply
    return reply


def wait_until(
    check: Callable[[], _T | None],
    *,
    timeout_seconds: float,
    what: str,
    interval_seconds: float = 0.05,
) -> _T:
    """Call ``check`` until it returns something other than ``None``, bounded in time.

    ``OSError`` and :class:`RedisCommandError` raised by ``check`` count as "not yet".

    Args:
        check: The probe.
        timeout_seconds: Give up after this long.
        what: Description used in the timeout message.
        interval_seconds: Pause between probes.

    Returns:
        The first non-``None`` result.

    Raises:
        TimeoutError: If the deadline passes; the message names ``what`` and the last error.
    """
    deadline = time.monotonic() + timeout_seconds
    last_error: BaseException | None = None
    for _ in range(int(timeout_seconds / interval_seconds) + 2):
        try:
            result = check()
        except (OSError, RedisCommandError) as exc:
            last_error = exc
        else:
            if result is not None:
                return result
        if time.monotonic() >= deadline:
            break
        time.sleep(interval_seconds)
    detail = f" (last error: {last_error!r})" if last_error is not None else ""
    raise TimeoutError(f"timed out after {timeout_seconds}s waiting for {what}{detail}")
