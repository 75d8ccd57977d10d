"""Typed values for what crosses the Lua boundary, with units in the field names.

Replies of the scripts are parsed here, once, into named values; nothing
positional (and no ``-2`` "no such key" sentinel) travels further up.
"""

from __future__ import annotations

import enum
from typing import Any, NamedTuple

__all__ = [
    "Liveness",
    "NodeRow",
    "RefreshRefused",
    "Refreshed",
    "SessionRow",
    "Signed",
    "TouchFlag",
    "liveness",
    "refreshed",
    "text",
]


class TouchFlag(enum.IntFlag):
    """Flags of ``touch.lua`` and ``node_touch.lua`` (same bits in both)."""

    NONE = 0
    #: Reset the idle ttl.
    SLIDE = 1
    #: Also return the private data.
    LOAD = 2
    #: Publish an ``extended`` notice (layout v1 only).
    ANNOUNCE = 4


class Liveness(NamedTuple):
    """A session that exists in Redis."""

    #: Time left; None when the key never expires (set outside the library).
    ttl_ms: int | None
    #: The stored private data (JSON), when it was asked for and exists.
    data_json: str | None = None


class Signed(NamedTuple):
    """What ``sign.lua`` did."""

    created_us: int
    ttl_ms: int
    #: Sessions of the user ended to make room (``max_sessions``), oldest first.
    evicted: list[str]


class Refreshed(NamedTuple):
    """What ``refresh.lua`` did when the chain went on."""

    #: The generation the next refresh token carries.
    generation: int
    #: The session's idle ttl, reset by the refresh.
    ttl_ms: int
    #: The pair's public data when a refresh replaced it (JSON), else None.
    data_token_json: str | None


class RefreshRefused(enum.Enum):
    """Why ``refresh.lua`` gave no pair."""

    #: The session is gone (or was never a session of this library).
    GONE = -2
    #: The token was spent before the grace: the session was ended.
    REUSED = -3
    #: The token names a generation the session never issued.
    UNKNOWN = -4


class SessionRow(NamedTuple):
    """One live session, as ``list.lua`` reports it."""

    session_id: str
    ttl_ms: int
    created_us: int
    idle_ttl_seconds: int
    data_json: str | None
    #: The device given at sign-in, if any.
    ip: str | None = None
    user_agent: str | None = None
    #: The last recorded activity (``track_activity``), unix ms of the Redis clock.
    last_seen_ms: int | None = None


class NodeRow(NamedTuple):
    """One live session of layout ``redis-jwt``."""

    key: str
    #: Time left; None when the key never expires.
    ttl_ms: int | None
    #: The stored object (``{"rjwt": key, "dataSession": ...}``).
    value: dict[str, Any]


def text(value: Any) -> str:
    """A reply as ``str`` (replies are bytes unless the client decodes them)."""
    return value.decode() if isinstance(value, bytes) else str(value)


_new_liveness = tuple.__new__  # NamedTuple's own __new__ costs a Python call per verify


def liveness(pttl: Any, data: Any = None) -> Liveness | None:
    """Parse a ``PTTL``-like reply (``-2``: gone, ``-1``: no expiry) and optional data."""
    ms = int(pttl)
    if ms == -2:
        return None
    return _new_liveness(Liveness, (None if ms < 0 else ms, None if data is None else text(data)))


def refreshed(reply: Any) -> Refreshed | RefreshRefused:
    """Parse a reply of ``refresh.lua``."""
    code = int(reply[0])
    if code != 1:
        return RefreshRefused(code)
    data = text(reply[3]) if len(reply) > 3 and reply[3] else None
    return Refreshed(int(reply[1]), int(reply[2]), data)
