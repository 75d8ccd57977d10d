"""What every command shares: options, building the RedisJWT, output, and one-line failures."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import secrets
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TextIO
from urllib.parse import urlsplit, urlunsplit

from pydantic import ValidationError
from redis import exceptions as rex

from .. import RedisJWT, Settings
from ..errors import ConfigurationError, StoreError

__all__ = [
    "CommandError",
    "Options",
    "Style",
    "build_auth",
    "namespace_of",
    "print_json",
    "print_table",
    "redacted",
    "run",
]

EXIT_OK = 0
EXIT_PROBLEM = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 2
EXIT_INTERRUPTED = 130
#: The deadline of each Redis call of a command, unless REDIS_JWT_TIMEOUT_SECONDS says otherwise.
COMMAND_TIMEOUT_SECONDS = 5.0


class CommandError(Exception):
    """An expected failure: printed as one line on stderr, then exit with ``code``."""

    def __init__(self, message: str, code: int = EXIT_PROBLEM) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Options:
    """The options every command takes (before or after the command name)."""

    url: str | None = None
    prefix: str | None = None
    json: bool = False


def redacted(url: str) -> str:
    """Return ``url`` with its password replaced by ``***``."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unparsable URL>"
    if password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + netloc))


def load_settings() -> Settings:
    """Read the ``REDIS_JWT_*`` variables, turning a bad value into a one-line error."""
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "REDIS_JWT_" + str(first["loc"][0]).upper() if first["loc"] else "REDIS_JWT_*"
        raise CommandError(f"{name}: {first['msg']}", EXIT_USAGE) from None


def redis_url(settings: Settings, options: Options) -> str:
    """The Redis URL in effect: ``--url``, else ``REDIS_JWT_REDIS_URL``."""
    return options.url if options.url is not None else settings.redis_url


def build_auth(settings: Settings, options: Options, **overrides: Any) -> RedisJWT:
    """Build the RedisJWT of a command from the settings and the command-line overrides.

    The CLI never signs tokens, so when no key is configured it uses a throwaway
    random secret: reading, counting and revoking need none. Listening, keyspace
    events and the local cache stay off unless a command asks for them, so that
    an inspection changes nothing on the server (``kea`` would run CONFIG SET).
    """
    options_in_effect: dict[str, Any] = {
        "redis_url": redis_url(settings, options),
        "kea": False,
        "listen": False,
        "local_cache": False,
        "wait_replicas": 0,
    }
    if "timeout_seconds" not in settings.model_fields_set:
        # An operator's command is not in a request's path: it may wait longer
        # for a busy Redis than a request would (REDIS_JWT_TIMEOUT_SECONDS wins).
        options_in_effect["timeout_seconds"] = COMMAND_TIMEOUT_SECONDS
    if options.prefix is not None:
        options_in_effect["key_prefix"] = options.prefix
    if settings.secret is None and settings.keys is None:
        options_in_effect["secret"] = secrets.token_urlsafe(48)
    options_in_effect.update(overrides)
    try:
        return RedisJWT.from_settings(settings, **options_in_effect)
    except ConfigurationError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None


def namespace_of(auth: RedisJWT) -> tuple[str, str]:
    """Return ``(layout, prefix)`` of ``auth``: what the key-counting code must scan for."""
    return auth.layout_name, auth.prefix


async def require_redis(auth: RedisJWT, url: str) -> None:
    """Fail with exit code 2 and one line when Redis does not answer."""
    try:
        await auth.info("server")  # not ping(): it answers False, without the reason
    except (StoreError, rex.RedisClusterException) as exc:
        raise CommandError(
            f"cannot connect to Redis at {redacted(url)}: {_reason(exc)}", EXIT_UNREACHABLE
        ) from None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    reason = text[0] if text else type(exc).__name__
    return reason.removeprefix("Redis is unavailable: ")


def run(factory: Callable[[], Awaitable[int]]) -> int:
    """Run one command's coroutine; expected failures become one line and an exit code."""
    try:
        return _run_loop(factory)
    except CommandError as exc:
        print(f"redis-jwt: {exc}", file=sys.stderr, flush=True)
        return exc.code
    except KeyboardInterrupt:
        print("redis-jwt: interrupted", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED


def _run_loop(factory: Callable[[], Awaitable[int]]) -> int:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_guarded(factory))
    # Called from async code (an app or a test calling main()): a loop of its own,
    # in a worker thread, since asyncio.run cannot nest.
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="redis-jwt-cli") as pool:
        return pool.submit(asyncio.run, _guarded(factory)).result()


async def _guarded(factory: Callable[[], Awaitable[int]]) -> int:
    try:
        return await factory()
    except StoreError as exc:
        raise CommandError(f"Redis failed: {_reason(exc)}", EXIT_UNREACHABLE) from None
    except (rex.ConnectionError, rex.TimeoutError, OSError, rex.RedisClusterException) as exc:
        # RedisClusterException: e.g. no node could give a usable slot map.
        raise CommandError(f"Redis failed: {_reason(exc)}", EXIT_UNREACHABLE) from None
    except rex.ResponseError as exc:
        # e.g. NOPERM for a command the configured user may not run.
        raise CommandError(f"Redis refused a command: {_reason(exc)}", EXIT_PROBLEM) from None


# -- output ---------------------------------------------------------------------------


class Style:
    """ANSI colours, only when writing to a terminal and ``NO_COLOR`` is not set."""

    _CODES: ClassVar[dict[str, str]] = {
        "bold": "1",
        "dim": "2",
        "red": "31",
        "green": "32",
        "yellow": "33",
        "cyan": "36",
    }

    def __init__(self, stream: TextIO) -> None:
        isatty = getattr(stream, "isatty", None)
        self.enabled = bool(isatty and isatty()) and not os.environ.get("NO_COLOR")

    def __call__(self, text: str, *names: str) -> str:
        """Return ``text`` wrapped in the named colours (unchanged without a terminal)."""
        if not self.enabled or not names:
            return text
        codes = ";".join(self._CODES[name] for name in names)
        return f"\x1b[{codes}m{text}\x1b[0m"


def print_json(document: object) -> None:
    """Print one JSON document on stdout."""
    print(json.dumps(document, ensure_ascii=False, indent=2), flush=True)


def print_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    styles: Sequence[Sequence[str]] = (),
) -> None:
    """Print an aligned table; ``styles[i]`` colours column ``i`` (never truncates)."""
    out = sys.stdout
    style = Style(out)
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    head = "  ".join(h.ljust(widths[i]) for i, h in enumerate(headers)).rstrip()
    print(style(head, "bold"), file=out)
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            padded = cell.ljust(widths[i]) if i + 1 < len(row) else cell
            column_style = styles[i] if i < len(styles) else ()
            cells.append(style(padded, *column_style))
        print("  ".join(cells).rstrip(), file=out)
    out.flush()
