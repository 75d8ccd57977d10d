"""The values redis-jwt hands back: :class:`Session`, :class:`SessionInfo`, :class:`TokenPair`,
:class:`Event`, and the :class:`ClientInfo` a login passes in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ClientInfo",
    "DestroyReason",
    "Event",
    "EventKind",
    "Session",
    "SessionInfo",
    "TokenPair",
]


class Session(BaseModel):
    """A verified, live session: what :meth:`RedisJWT.verify` returns.

    Attributes:
        user_id: the user the session belongs to (the JWT ``sub``).
        session_id: the session's random id (the JWT ``sid``).
        data_token: the public data signed into the token (readable by anyone holding it).
        data_session: the private data kept only in Redis; ``None`` unless
            loaded with ``with_session=True`` (then ``{}`` when nothing was stored).
        issued_at: when the session was created (the JWT ``iat``).
        expires_at: when the session ends if nothing extends it.
        ttl: whole seconds left until ``expires_at`` (rounded down).
        claims: the raw JWT payload.
    """

    model_config = ConfigDict(frozen=True)

    user_id: str
    session_id: str
    data_token: dict[str, Any] = Field(default_factory=dict)
    data_session: dict[str, Any] | None = None
    issued_at: datetime
    expires_at: datetime
    ttl: int
    claims: dict[str, Any] = Field(default_factory=dict)

    @property
    def max_expires_at(self) -> datetime:
        """The absolute end of the session (the JWT ``exp``): no extension goes past it.

        ``datetime.max`` (UTC) for a token without ``exp`` (layout ``"redis-jwt"``).
        """
        if "exp" not in self.claims:
            return datetime.max.replace(tzinfo=UTC)
        return datetime.fromtimestamp(self.claims["exp"], tz=self.issued_at.tzinfo)


class SessionInfo(BaseModel):
    """One live session of a user, as :meth:`RedisJWT.sessions` lists it.

    Attributes:
        user_id: the session's user.
        session_id: the id to pass to :meth:`RedisJWT.revoke`.
        issued_at: when the session was created (microsecond precision, Redis clock).
        expires_at: when the session ends if nothing extends it.
        ttl: whole seconds left.
        idle_ttl: the idle lifetime the session is reset to by ``extend``/sliding verifies.
        data_session: the private data stored with the session (``{}`` when none).
        ip: the client address given at sign-in (``client=ClientInfo(...)``), if any.
        user_agent: the client's ``User-Agent`` given at sign-in, if any.
        last_seen_at: with ``track_activity=True``, the time of the last successful
            verify (exact to ``activity_resolution``); ``None`` otherwise.
    """

    model_config = ConfigDict(frozen=True)

    user_id: str
    session_id: str
    issued_at: datetime
    expires_at: datetime
    ttl: int
    idle_ttl: int
    data_session: dict[str, Any] = Field(default_factory=dict)
    ip: str | None = None
    user_agent: str | None = None
    last_seen_at: datetime | None = None

    @property
    def last_active_at(self) -> datetime:
        """When the session was last created or extended (``expires_at - idle_ttl``)."""
        return max(self.issued_at, self.expires_at - timedelta(seconds=self.idle_ttl))


#: The kinds of :class:`Event`.
EventKind = Literal[
    "connected", "ready", "disconnected", "error", "created", "extended", "destroyed", "expired"
]

#: Why a session was destroyed.
DestroyReason = Literal[
    "logout", "destroy_all", "revoke", "evicted", "external", "rotated", "refresh_reuse"
]


class Event(BaseModel):
    """Something that happened to the connection or to a session.

    Attributes:
        kind: what happened.
        user_id: the session's user, for session events.
        session_id: the session's id, for session events.
        at: when this process learned of it (UTC).
        reason: for ``destroyed``: ``logout``, ``destroy_all``, ``revoke``,
            ``evicted`` (by ``max_sessions``/``multiple=False``) or
            ``external`` (a key deleted outside the library); for
            connection events, a short description.
        error: the exception, for ``error`` events.
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    kind: EventKind
    user_id: str | None = None
    session_id: str | None = None
    at: datetime
    reason: str | None = None
    error: BaseException | None = None


class ClientInfo(BaseModel):
    """The device a session is signed in from, as a login passes it to ``sign``/``sign_pair``.

    The web adapters build one from a request with ``client_info(request)``.

    Attributes:
        ip: the client's address (as the app sees it; behind a proxy, the app decides).
        user_agent: the client's ``User-Agent`` header.
    """

    model_config = ConfigDict(frozen=True)

    ip: str | None = None
    user_agent: str | None = None


class TokenPair(BaseModel):
    """An access token and a refresh token of one session: what ``sign_pair``/``refresh`` return.

    Attributes:
        access_token: a session token, verified like any other; short-lived (``access_ttl``).
        refresh_token: spent by :meth:`RedisJWT.refresh` for the next pair; ``verify`` refuses it.
        access_expires_at: the access token's ``exp`` (UTC).
        refresh_expires_at: when the refresh token stops working if the session is not
            refreshed or extended before (UTC).
    """

    model_config = ConfigDict(frozen=True)

    access_token: str
    refresh_token: str
    access_expires_at: datetime
    refresh_expires_at: datetime
