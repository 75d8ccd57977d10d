"""The operations of :class:`~redis_jwt.RedisJWT` on a user's sessions beyond sign/verify.

Refresh pairs (``sign_pair``, ``refresh``), ``rotate``, ``update``, and the
user-wide ones: ``revoke``, ``destroy_all``, ``sessions``, ``count``; and the
server's ``ping`` and ``info``.

A mixin, so that the facade (``_core.py``) stays one screenful per concept:
each method checks what is common and hands the call to the session backend
(one atomic script in the user's hash slot, layout v1).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._backend import NewSession, SessionBackend, SessionRules, check_client, check_data
from ._duration import Duration
from ._lifecycle import Lifecycle
from ._telemetry import Switch, session_id_of_token
from .errors import StoreError
from .models import ClientInfo, Session, SessionInfo, TokenPair

__all__ = ["SessionOps"]


class SessionOps:
    """Pairs, rotation, updates and the user-wide operations, mixed into ``RedisJWT``."""

    _backend: SessionBackend
    _rules: SessionRules
    _otel: Switch
    _life: Lifecycle

    def _check_open(self) -> None:
        raise NotImplementedError  # RedisJWT's

    def _new_session(
        self,
        user_id: str,
        ttl: Duration | None,
        data_token: Mapping[str, Any] | None,
        data_session: Mapping[str, Any] | None,
        client: ClientInfo | None,
    ) -> NewSession:
        """What ``sign`` and ``sign_pair`` check before any write, as one value."""
        return NewSession(
            self._backend.check_user_id(user_id),
            self._rules.idle_seconds(ttl),
            check_data(data_token, "data_token"),
            check_data(data_session, "data_session"),
            check_client(client),
        )

    async def sign_pair(
        self,
        user_id: str,
        *,
        ttl: Duration | None = None,
        data_token: Mapping[str, Any] | None = None,
        data_session: Mapping[str, Any] | None = None,
        client: ClientInfo | None = None,
    ) -> TokenPair:
        """Create a session and return its :class:`~redis_jwt.TokenPair` (layout v1).

        The access token is verified like any token and ends at most
        ``access_ttl`` from now; the refresh token is spent by :meth:`refresh`.
        Arguments as :meth:`sign`, plus ``client``, the device signing in.

        Raises:
            ConfigurationError: for a bad argument, or layout ``"redis-jwt"``; nothing is written.
            StoreError: when Redis fails; no pair is returned.
        """
        self._check_open()
        backend = self._backend
        new = self._new_session(user_id, ttl, data_token, data_session, client)
        return await self._otel.run("redis_jwt.sign", backend.sign_pair(new), _session_id_of_pair)

    async def refresh(
        self, refresh_token: str, *, data_token: Mapping[str, Any] | None = None
    ) -> TokenPair:
        """Spend ``refresh_token`` for the next pair of its session (one atomic script).

        Same session id and private data; the idle ttl is reset; ``data_token``
        replaces the public data. A spent token presented again within
        ``refresh_grace`` continues the same chain; later, the session is ended
        (``destroyed``, reason ``refresh_reuse``).

        Raises:
            RefreshTokenReused: a spent refresh token came back after the grace.
            InvalidToken: not a refresh token of ours (an access token included).
            SessionNotFound: the session has ended.
            ConfigurationError: for bad ``data_token``, or layout ``"redis-jwt"``.
            StoreError: Redis failed; the refresh token was not spent.
        """
        self._check_open()
        call = self._backend.refresh(refresh_token, check_data(data_token, "data_token"))
        return await self._otel.run("redis_jwt.refresh", call, _session_id_of_pair)

    async def rotate(self, token: str) -> str:
        """Give the token's live session a new id and return its new token.

        Call it when the session gains privileges (a role change, a step-up
        login) so that a token captured before no longer works (session
        fixation). The session keeps its private data, device, creation time
        (hence its place in ``sessions()`` and in ``max_sessions`` eviction),
        its idle ttl, time left and absolute cap; the new token carries the
        same public data. The old session ends (event ``destroyed``, reason
        ``rotated``) and a ``created`` event follows for the new id. One
        atomic script.

        Raises:
            SessionNotFound: the session has already ended (nothing is created).
            InvalidToken, TokenExpired, MissingToken: the token itself is bad.
            ConfigurationError: with layout ``"redis-jwt"``.
            StoreError: Redis failed; the old token still works.
        """
        self._check_open()
        return await self._backend.rotate(token)

    async def update(self, token: str, *, data_session: Mapping[str, Any] | None) -> Session:
        """Replace the private data of the token's live session; return the session with it.

        ``data_session=None`` removes it (then ``data_session == {}`` on
        ``verify(..., with_session=True)``). The idle ttl is left as it is.

        Raises:
            SessionNotFound: the session has ended (nothing is written).
            InvalidToken, TokenExpired, MissingToken: the token itself is bad.
            ConfigurationError: for data that is not a JSON object, or with layout
                ``"redis-jwt"``.
            StoreError: Redis failed.
        """
        self._check_open()
        return await self._backend.update(token, check_data(data_session, "data_session"))

    async def revoke(self, user_id: str, session_id: str) -> bool:
        """End one session of ``user_id`` by id ("log out that device"); True if it was alive."""
        self._check_open()
        backend = self._backend
        return await backend.revoke(backend.check_user_id(user_id), session_id)

    async def destroy_all(self, user_id: str, *, keep: str | None = None) -> int:
        """Log ``user_id`` out everywhere, or everywhere but one session; return how many ended.

        Args:
            user_id: the user.
            keep: a session id to spare ("sign out the other devices": pass the
                current session's id). One atomic script: a session signed
                concurrently is either ended or left alive, never half-way.
        """
        self._check_open()
        backend = self._backend
        return await backend.destroy_all(backend.check_user_id(user_id), keep)

    async def sessions(self, user_id: str) -> list[SessionInfo]:
        """List the live sessions of ``user_id``, newest first (exact, no keyspace scan)."""
        self._check_open()
        backend = self._backend
        return await backend.sessions(backend.check_user_id(user_id))

    async def count(self, user_id: str) -> int:
        """Return how many live sessions ``user_id`` has."""
        self._check_open()
        backend = self._backend
        return await backend.count(backend.check_user_id(user_id))

    async def ping(self) -> bool:
        """Return whether Redis answers ``PING`` in time: False (not an error) when it does not."""
        self._check_open()
        try:
            return await self._life.store.ping()
        except StoreError:
            return False

    async def info(self, section: str | None = None) -> dict[str, Any]:
        """Return Redis ``INFO`` (optionally one section) as a dict."""
        self._check_open()
        return await self._life.store.info(section)


def _session_id_of_pair(pair: TokenPair) -> str | None:
    return session_id_of_token(pair.access_token)
