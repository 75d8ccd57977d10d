"""One interface, two layouts: the session-backend protocol and the rules both share.

:class:`~redis_jwt.RedisJWT` holds one :class:`SessionBackend`, chosen at
construction (``layout="v1"``: :class:`~redis_jwt._v1_sessions.V1Sessions`;
``layout="redis-jwt"``: :class:`~redis_jwt._node_sessions.NodeSessions`), and
never asks which. The facade checks what is common (the user id through the
backend, the ttl ceiling, the data types) before it calls the backend.

A new operation is one method here and one script (or command) per layout;
docs/architecture.md lists where the next ones go (``sign_pair``/``refresh``,
``rotate``, ``update``, ``destroy_all(keep=...)``, device info).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from ._duration import Duration, parse_duration
from .errors import ConfigurationError, StoreError
from .models import ClientInfo, Session, SessionInfo, TokenPair

__all__ = [
    "Emit",
    "NewSession",
    "PairRules",
    "SessionBackend",
    "SessionRules",
    "check_client",
    "check_data",
    "load_data",
    "utc",
]

#: ``emit(kind, user_id, session_id, reason=...)``: a session event of this instance.
Emit = Callable[..., None]


def utc(timestamp: float) -> datetime:
    """A Unix time as an aware UTC datetime."""
    return datetime.fromtimestamp(timestamp, UTC)


def check_data(value: object, name: str) -> dict[str, Any] | None:
    """``value`` as a dict, or None; a non-mapping is the programmer's mistake."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{name} must be a dict (JSON object), not {type(value).__name__}")
    return dict(value)


def check_client(value: object) -> ClientInfo | None:
    """``value`` if it is a ``ClientInfo`` or None; anything else is the programmer's mistake."""
    if value is None or isinstance(value, ClientInfo):
        return value
    raise ConfigurationError(
        f"client must be a redis_jwt.ClientInfo (e.g. client_info(request)), "
        f"not {type(value).__name__}"
    )


def load_data(data_json: str | None) -> dict[str, Any]:
    """Stored private data (JSON) as a dict; ``{}`` when nothing was stored."""
    if not data_json:
        return {}
    try:
        value = json.loads(data_json)
    except (ValueError, RecursionError) as exc:
        raise StoreError("the stored session data is not JSON") from exc
    return value if isinstance(value, dict) else {}


# Per-call ttls may exceed max_age (they then become the cap) up to this much.
TTL_CEILING_SECONDS = 366 * 86400


def _days(seconds: int) -> str:
    days = seconds / 86400
    return f"{days:g} days" if days >= 1 else f"{seconds} s"


@dataclass(frozen=True, slots=True)
class SessionRules:
    """Lifetimes every layout applies the same way.

    Args:
        ttl_seconds: the default idle lifetime.
        max_age_seconds: the absolute lifetime cap.
    """

    ttl_seconds: int
    max_age_seconds: int

    @property
    def ceiling_seconds(self) -> int:
        """The longest lifetime a per-call ttl may ask for."""
        return max(self.max_age_seconds, self.ttl_seconds, TTL_CEILING_SECONDS)

    def idle_seconds(self, ttl: Duration | None) -> int:
        """The idle ttl of one session: the call's, else the default; checked against the ceiling.

        Raises:
            ConfigurationError: for a bad or too long ttl (before anything is written).
        """
        idle = self.ttl_seconds if ttl is None else parse_duration(ttl, name="ttl")
        ceiling = self.ceiling_seconds
        if idle > ceiling:
            # Say which option sets the ceiling: max_age only when it is the largest.
            raise ConfigurationError(
                f"ttl={ttl!r} ({idle} s) is longer than the longest lifetime a session may "
                f"ask for, {ceiling} s ({_days(ceiling)}): the largest of 366 days, "
                f"max_age ({_days(self.max_age_seconds)}) and the default ttl "
                f"({_days(self.ttl_seconds)}); to allow it, create RedisJWT with "
                f"max_age={ttl!r} or longer"
            )
        return idle


@dataclass(frozen=True, slots=True)
class PairRules:
    """Lifetimes of refresh pairs (``sign_pair``/``refresh``).

    Args:
        access_seconds: the longest lifetime of an access token (``access_ttl``).
        grace_ms: how long a spent refresh token still continues its chain (``refresh_grace``).
    """

    access_seconds: int
    grace_ms: int


@dataclass(frozen=True, slots=True)
class NewSession:
    """What one ``sign`` asks for, checked by the facade.

    A pair's access ttl joins here as a field when ``sign_pair`` arrives:
    one value, every layout.
    """

    user_id: str
    idle_seconds: int
    #: Public data, signed into the token.
    data_token: dict[str, Any] | None
    #: Private data, kept only in Redis.
    data_session: dict[str, Any] | None
    #: The device signing in (address, user agent), kept with the session.
    client: ClientInfo | None = None


class SessionBackend(Protocol):
    """The operations of one Redis layout; every method is one round trip where it can be.

    User ids reach the methods checked by :meth:`check_user_id`; ttls and
    data checked by :class:`SessionRules` and :func:`check_data`. Each
    method emits the session events of what it did.
    """

    def check_user_id(self, user_id: object) -> str:
        """Return ``user_id`` when this layout can store it, else raise ``ConfigurationError``."""
        ...

    async def sign(self, new: NewSession) -> str:
        """Store a new session and return its token."""
        ...

    async def verify(self, token: str, *, with_session: bool) -> Session:
        """Check the token and that its session lives (sliding when configured)."""
        ...

    async def sign_pair(self, new: NewSession) -> TokenPair:
        """Store a new session and return its access and refresh tokens."""
        ...

    async def refresh(self, token: str, data_token: dict[str, Any] | None) -> TokenPair:
        """Spend a refresh token: the next pair of its session, or end a replayed chain."""
        ...

    async def extend(self, token: str) -> Session:
        """Reset the idle ttl (never past the cap)."""
        ...

    async def destroy(self, token: str) -> bool:
        """End the token's session (an expired ``exp`` is accepted)."""
        ...

    async def revoke(self, user_id: str, session_id: str) -> bool:
        """End one session by id."""
        ...

    async def destroy_all(self, user_id: str, keep: str | None = None) -> int:
        """End every session of a user but ``keep`` (a session id); return how many."""
        ...

    async def rotate(self, token: str) -> str:
        """Give the token's live session a new id; return its token (the old one ends)."""
        ...

    async def update(self, token: str, data_session: dict[str, Any] | None) -> Session:
        """Replace the private data of the token's live session."""
        ...

    async def sessions(self, user_id: str) -> list[SessionInfo]:
        """List the live sessions of a user."""
        ...

    async def count(self, user_id: str) -> int:
        """Count the live sessions of a user."""
        ...
