"""The session security operations of :class:`~redis_jwt.RedisJWT`.

Refresh pairs (``sign_pair``, ``refresh``), ``rotate`` and ``update``.

A mixin, so that the facade (``_core.py``) stays one screenful per concept:
each method checks what is common and hands the call to the session backend
(one atomic script in the user's hash slot, layout v1).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._backend import NewSession, SessionBackend, SessionRules, check_client, check_data
from ._duration import Duration
from ._telemetry import Switch, session_id_of_token
from .models import ClientInfo, Session, TokenPair

__all__ = ["SessionOps"]


class SessionOps:
    """``sign_pair``, ``refresh``, ``rotate`` and ``update``, mixed into ``RedisJWT``."""

    _backend: SessionBackend
    _rules: SessionRules
    _otel: Switch

    def _check_open(self) -> None:
        raise NotImplementedError  # RedisJWT's

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
        user_id = backend.check_user_id(user_id)
        new = NewSession(
            user_id,
            self._rules.idle_seconds(ttl),
            check_data(data_token, "data_token"),
            check_data(data_session, "data_session"),
            check_client(client),
        )
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


def _session_id_of_pair(pair: TokenPair) -> str | None:
    return session_id_of_token(pair.access_token)
