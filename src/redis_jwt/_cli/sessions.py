"""``redis-jwt sessions list|count|revoke``: one user's sessions, from the terminal."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

from .. import RedisJWT, SessionInfo
from ..errors import ConfigurationError
from ._common import (
    EXIT_OK,
    EXIT_PROBLEM,
    CommandError,
    Options,
    build_auth,
    load_settings,
    print_json,
    print_table,
    redis_url,
    require_redis,
)

__all__ = ["count", "describe_device", "device_fields", "list_sessions", "revoke"]

T = TypeVar("T")


async def _ask(options: Options, call: Callable[[RedisJWT], Awaitable[T]]) -> T:
    """Run one call against the configured Redis; a refused user id is exit 2."""
    settings = load_settings()
    async with build_auth(settings, options) as auth:
        await require_redis(auth, redis_url(settings, options))
        try:
            return await call(auth)
        except ConfigurationError as exc:
            raise CommandError(str(exc), 2) from None


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def device_fields(info: SessionInfo) -> tuple[str, str]:
    """``(ip, user agent)`` of a session, "" when unknown.

    :attr:`SessionInfo.ip`/``user_agent`` first, else the ``ip``/``user_agent``
    keys an app may keep in ``data_session`` (as the demo does).
    """
    data = info.data_session or {}
    ip = info.ip or _text(data.get("ip")) or ""
    agent = info.user_agent or _text(data.get("user_agent")) or ""
    return ip, agent


def describe_device(info: SessionInfo) -> str:
    """A short description of where a session was signed in from ("unknown device" if unsaid)."""
    parts = [part for part in device_fields(info) if part]
    return " · ".join(parts) if parts else "unknown device"


def _ttl(seconds: int) -> str:
    if seconds >= 86400:
        return f"{seconds // 86400}d {seconds % 86400 // 3600}h"
    if seconds >= 3600:
        return f"{seconds // 3600}h {seconds % 3600 // 60}m"
    if seconds >= 60:
        return f"{seconds // 60}m {seconds % 60}s"
    return f"{seconds}s"


async def list_sessions(options: Options, user_id: str) -> int:
    """Run ``redis-jwt sessions list USER``."""
    infos = await _ask(options, lambda auth: auth.sessions(user_id))
    if options.json:
        print_json([info.model_dump(mode="json") for info in infos])
        return EXIT_OK
    if not infos:
        print(f"no live sessions for user {user_id!r}", flush=True)
        return EXIT_OK
    rows = [
        (
            info.session_id,
            _when(info.issued_at),
            _when(info.last_seen_at or info.last_active_at),
            _ttl(info.ttl),
            describe_device(info),
        )
        for info in infos
    ]
    print_table(
        ("SESSION ID", "SIGNED IN (UTC)", "LAST ACTIVE (UTC)", "EXPIRES IN", "DEVICE"),
        rows,
        styles=(("cyan",), (), (), (), ("dim",)),
    )
    return EXIT_OK


async def count(options: Options, user_id: str) -> int:
    """Run ``redis-jwt sessions count USER``."""
    n = await _ask(options, lambda auth: auth.count(user_id))
    if options.json:
        print_json({"user_id": user_id, "count": n})
    else:
        print(n, flush=True)
    return EXIT_OK


async def revoke(options: Options, user_id: str, session_id: str | None) -> int:
    """Run ``redis-jwt sessions revoke USER SESSION_ID`` or ``... USER --all``.

    Revoking one session that is not live (already ended, or another user's) is
    a problem (exit 1): the operator typed an id that matches nothing. ``--all``
    on a user without sessions is not: there was nothing to end.
    """

    async def call(auth: RedisJWT) -> int:
        if session_id is None:
            return await auth.destroy_all(user_id)
        return 1 if await auth.revoke(user_id, session_id) else 0

    revoked = await _ask(options, call)
    if options.json:
        print_json({"revoked": revoked})
    else:
        print(f"revoked {revoked} session{'' if revoked == 1 else 's'} of user {user_id!r}")
    sys.stdout.flush()
    if session_id is not None and revoked == 0:
        print(
            f"redis-jwt: user {user_id!r} has no live session {session_id!r} "
            "(list them with: redis-jwt sessions list USER)",
            file=sys.stderr,
        )
        return EXIT_PROBLEM
    return EXIT_OK
