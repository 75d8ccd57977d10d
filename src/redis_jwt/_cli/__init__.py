"""The ``redis-jwt`` command line (also ``python -m redis_jwt``).

    redis-jwt [--url URL] [--prefix P] [--json] COMMAND ...

    doctor                              check that Redis is fit to keep sessions
    sessions list USER                  a user's live sessions
    sessions count USER                 how many
    sessions revoke USER SESSION_ID     end one
    sessions revoke USER --all          end them all
    stats                               sessions and users alive
    events                              follow live events
    demo                                serve the demo web app

Configured by the ``REDIS_JWT_*`` variables (see :class:`~redis_jwt.Settings`);
``--url``, ``--prefix`` and ``--json`` go before or after the command. Exit
codes: 0 success, 1 ran but found a problem, 2 usage error or Redis unreachable.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Iterator, Sequence

from ..__about__ import __version__
from . import demo, doctor, events, sessions, stats
from ._common import EXIT_USAGE, CommandError, Options, run

__all__ = ["main"]


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be between 1 and 65535, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError("must be in (0, 86400]")
    return value


def _common_options(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument("--url", default=default, help="Redis URL (overrides REDIS_JWT_REDIS_URL)")
    parser.add_argument("--prefix", default=default, help="key prefix (overrides REDIS_JWT_PREFIX)")
    parser.add_argument(
        "--json",
        action="store_true",
        default=default,
        help="print JSON for machines instead of tables",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``redis-jwt``."""
    parser = argparse.ArgumentParser(
        prog="redis-jwt",
        description="Login sessions with JWT + Redis: operations tools.",
        epilog="Configured by the REDIS_JWT_* environment variables. "
        "Exit codes: 0 ok, 1 problem found, 2 usage error or Redis unreachable.",
    )
    parser.add_argument("--version", action="version", version=f"redis-jwt {__version__}")
    _common_options(parser, None)
    # The same options after the command: SUPPRESS keeps a value given before it.
    shared = argparse.ArgumentParser(add_help=False)
    _common_options(shared, argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    commands.add_parser(
        "doctor",
        parents=[shared],
        help="check that Redis is fit to keep sessions",
        description="Check connectivity, version, memory policy, persistence, keyspace "
        "events, ACL permissions, Cluster/Sentinel topology and clock skew.",
    )
    group = commands.add_parser(
        "sessions", parents=[shared], help="list, count or revoke a user's sessions"
    )
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser(
        "list", parents=[shared], help="a user's live sessions, newest first"
    )
    listing.add_argument("user", metavar="USER")
    counting = actions.add_parser(
        "count", parents=[shared], help="how many live sessions a user has"
    )
    counting.add_argument("user", metavar="USER")
    revoking = actions.add_parser(
        "revoke", parents=[shared], help="end one session (SESSION_ID) or all (--all)"
    )
    revoking.add_argument("user", metavar="USER")
    revoking.add_argument("session_id", metavar="SESSION_ID", nargs="?")
    revoking.add_argument("--all", action="store_true", help="end every session of USER")
    stats_parser = commands.add_parser(
        "stats", parents=[shared], help="live sessions and users (SCAN, never KEYS)"
    )
    stats_parser.add_argument(
        "--max-seconds",
        type=_seconds,
        default=stats.MAX_SCAN_SECONDS,
        help=f"stop counting after this long ({stats.MAX_SCAN_SECONDS:g})",
    )
    commands.add_parser(
        "events", parents=[shared], help="follow live events (one line each) until Ctrl-C"
    )
    demo_parser = commands.add_parser(
        "demo",
        help="serve the demo web app (log in, list and revoke sessions, live events)",
        description="Serve the demo web app under uvicorn. Uses REDIS_URL when set, "
        "else starts a throwaway redis-server.",
    )
    demo_parser.add_argument("--host", default="127.0.0.1", help="interface to bind (127.0.0.1)")
    demo_parser.add_argument("--port", type=_port, default=8000, help="port to listen on (8000)")
    parser.set_defaults(revoking=revoking)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``redis-jwt`` command line; return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # usage errors and --help: argparse has printed them
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    options = Options(url=args.url, prefix=args.prefix, json=bool(args.json))
    # Every command, the demo included, says what goes wrong with Redis itself.
    with _library_logs_quiet():
        if args.command == "demo":
            return run_demo(args.host, args.port)
        return _dispatch(args, options)


@contextlib.contextmanager
def _library_logs_quiet() -> Iterator[None]:
    """Expected trouble is reported by the command itself, in one line; the library's
    own records (reconnect warnings) would only repeat it, as stray stderr lines."""
    logger = logging.getLogger("redis_jwt")
    handler = logging.NullHandler()
    previous = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = previous


def _dispatch(args: argparse.Namespace, options: Options) -> int:
    if args.command == "doctor":
        return run(lambda: doctor.command(options))
    if args.command == "stats":
        return run(lambda: stats.command(options, args.max_seconds))
    if args.command == "events":
        return run(lambda: events.command(options))
    user: str = args.user
    if args.action == "list":
        return run(lambda: sessions.list_sessions(options, user))
    if args.action == "count":
        return run(lambda: sessions.count(options, user))
    if (args.session_id is None) == (not args.all):
        revoking: argparse.ArgumentParser = args.revoking
        revoking.print_usage(sys.stderr)
        print(
            "redis-jwt sessions revoke: error: give a SESSION_ID or --all (one of them)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    return run(lambda: sessions.revoke(options, user, args.session_id))


def run_demo(host: str, port: int) -> int:
    """Run ``redis-jwt demo`` (expected failures: one line, exit code)."""
    try:
        return demo.command(host, port)
    except CommandError as exc:
        print(f"redis-jwt: {exc}", file=sys.stderr, flush=True)
        return exc.code
