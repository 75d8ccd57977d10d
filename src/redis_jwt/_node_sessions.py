"""The operations of :class:`~redis_jwt.RedisJWT` in layout ``"redis-jwt"`` (Node interop).

``RedisJWT(layout="redis-jwt")`` hands every session call to :class:`NodeSessions`;
what this layout can and cannot do is in docs/node-interop.md.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from ._backend import Emit, NewSession, SessionRules, utc
from ._fast_session import new_session
from ._node_layout import (
    NodeTokenCodec,
    check_node_user_id,
    is_node_session_id,
    new_node_session_id,
    node_key,
    node_value,
    split_node_key,
)
from ._redis.node_store import NodeStore
from ._redis.replies import Liveness, NodeRow, TouchFlag
from ._redis.store import AnyRedis, Store, is_cluster
from .errors import ConfigurationError, SessionNotFound, StoreError
from .keys import KeyRing
from .models import Session, SessionInfo, TokenPair

__all__ = ["NodeSessions", "check_node_client", "check_node_options"]

#: ``expires_at`` of a session whose key never expires (a Node session signed without ttl).
NEVER = datetime.max.replace(tzinfo=UTC)
# The Node package has no refresh tokens nor a place for their chain in its layout.
_NO_PAIRS = (
    "sign_pair() and refresh() need layout v1: layout='redis-jwt' (the Node package's) "
    "has no refresh tokens; use sign() there, or layout='v1'"
)
#: ``issued_at`` in :meth:`NodeSessions.sessions`: this layout does not record it.
UNKNOWN = datetime.fromtimestamp(0, UTC)


def check_node_options(
    *,
    keys: KeyRing,
    max_sessions: int | None,
    multiple: bool,
    kea: bool,
    issuer: str | None,
    audience: str | None,
) -> None:
    """Refuse the options the Node layout cannot honour, saying what to use instead."""
    signing = keys.signing
    if (
        len(keys.keys) != 1
        or signing is None
        or signing.kid is not None
        or signing.algorithm != "HS256"
    ):
        raise ConfigurationError(
            "layout='redis-jwt' signs and verifies like the Node package: HS256 with one "
            "shared secret and no kid; pass secret=... (the Node side's secret)"
        )
    if max_sessions is not None and not (max_sessions == 1 and not multiple):
        raise ConfigurationError(
            "layout='redis-jwt' has no session limit beyond multiple=False (one session per "
            "user); use layout v1 for max_sessions"
        )
    if kea:
        raise ConfigurationError(
            "kea=True needs layout v1: keys of layout='redis-jwt' carry no prefix, so "
            "keyspace events cannot tell sessions from other keys"
        )
    if issuer is not None or audience is not None:
        raise ConfigurationError(
            "layout='redis-jwt' cannot use issuer= or audience=: Node tokens carry neither"
        )


def check_node_client(client: AnyRedis) -> None:
    """Refuse a Redis Cluster client: the Node layout lives on one Redis."""
    if is_cluster(client):
        raise ConfigurationError(
            "layout='redis-jwt' works on one Redis (standalone or Sentinel), like the Node "
            "package; use layout v1 on Redis Cluster"
        )


class NodeSessions:
    """Sign, verify, extend, destroy, list: the Node package's layout, done safely."""

    __slots__ = ("_codec", "_emit", "_max_age", "_single", "_sliding", "_store", "_ttl")

    def __init__(
        self,
        store: Store,
        keys: KeyRing,
        rules: SessionRules,
        *,
        sliding: bool,
        multiple: bool,
        leeway_seconds: float,
        max_token_bytes: int,
        emit: Emit,
    ) -> None:
        self._store = NodeStore(store)
        self._codec = NodeTokenCodec(
            keys,
            lifetime_limit_seconds=rules.ceiling_seconds,
            leeway_seconds=leeway_seconds,
            max_token_bytes=max_token_bytes,
        )
        self._ttl = rules.ttl_seconds
        self._max_age = rules.max_age_seconds
        self._sliding = sliding
        self._single = not multiple
        self._emit = emit

    def check_user_id(self, user_id: object) -> str:
        """A user id without the characters Node's ``KEYS`` patterns would misread."""
        return check_node_user_id(user_id)

    async def sign(self, new: NewSession) -> str:
        """Create a session as the Node package does, after ending the user's others if single."""
        if new.client is not None:
            raise ConfigurationError(
                "client= (device info) needs layout v1: the Node layout's value has no place "
                "for it (see docs/node-interop.md)"
            )
        user_id = new.user_id
        key = node_key(user_id, new_node_session_id())
        try:
            value = node_value(key, new.data_session)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"data_session must be JSON-serialisable: {exc}") from exc
        claims: dict[str, Any] = {"rjwt": key}
        if new.data_token is not None:
            claims["dataToken"] = new.data_token
        claims["iat"] = int(time.time())
        token = self._codec.encode(claims)
        replaced = (
            [row.key for row in await self._store.user_sessions(user_id)] if self._single else []
        )
        await self._store.create(key, value, new.idle_seconds, replaced)
        for old in replaced:
            self._emit("destroyed", user_id, old.partition(":")[2], reason="evicted")
        self._emit("created", user_id, key.partition(":")[2])
        return token

    def _decode(self, token: str, *, verify_exp: bool = True) -> tuple[dict[str, Any], str]:
        claims = self._codec.decode(token, verify_exp=verify_exp)
        return claims, claims["rjwt"]

    def _slide_ms(self, claims: dict[str, Any]) -> int:
        """The ttl an extension sets: the idle ttl, capped at iat + max_age (and at exp)."""
        cap = claims["iat"] + max(self._max_age, self._ttl)
        if "exp" in claims:
            cap = min(cap, claims["exp"])
        return min(self._ttl * 1000, int((cap - time.time()) * 1000))

    async def verify(self, token: str, *, with_session: bool = False) -> Session:
        """Check the token and that its key exists (one round trip)."""
        claims, key = self._decode(token)
        if self._sliding or with_session:
            slide = self._slide_ms(claims) if self._sliding else 0
            flags = (TouchFlag.SLIDE if slide > 0 else TouchFlag.NONE) | (
                TouchFlag.LOAD if with_session else TouchFlag.NONE
            )
            alive = await self._store.touch(key, flags, slide)
        else:
            alive = await self._store.alive(key)
        return self._session(claims, key, alive, with_session)

    async def sign_pair(self, new: NewSession) -> TokenPair:
        """Not in this layout: the Node package has no refresh tokens."""
        raise ConfigurationError(_NO_PAIRS)

    async def refresh(self, token: str, data_token: dict[str, Any] | None) -> TokenPair:
        """Not in this layout: the Node package has no refresh tokens."""
        raise ConfigurationError(_NO_PAIRS)

    async def extend(self, token: str) -> Session:
        """Reset the key's ttl to the idle ttl (never past iat + max_age, never shortening)."""
        claims, key = self._decode(token)
        slide = self._slide_ms(claims)
        alive = await self._store.touch(
            key, TouchFlag.SLIDE if slide > 0 else TouchFlag.NONE, slide
        )
        session = self._session(claims, key, alive, False)
        self._emit("extended", session.user_id, session.session_id)
        return session

    def _session(
        self, claims: dict[str, Any], key: str, alive: Liveness | None, with_session: bool
    ) -> Session:
        if alive is None:
            raise SessionNotFound("the session has ended; log in again")
        user_id, _, session_id = key.partition(":")
        data: dict[str, Any] | None = None
        if with_session:
            data = self._data(alive.data_json)
        ttl_ms = alive.ttl_ms
        public = claims.get("dataToken")
        now = time.time()
        # Every field given, unvalidated: what model_construct builds, for less (_fast_session.py).
        return new_session(
            {
                "user_id": user_id,
                "session_id": session_id,
                "data_token": public if isinstance(public, dict) else {},
                "data_session": data,
                "issued_at": utc(claims["iat"]),
                "expires_at": NEVER if ttl_ms is None else utc(now + ttl_ms / 1000),
                "ttl": -1 if ttl_ms is None else ttl_ms // 1000,
                "claims": claims,
            }
        )

    @staticmethod
    def _data(raw: str | None) -> dict[str, Any]:
        if raw is None:
            return {}
        try:
            value = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise StoreError("the stored session value is not JSON") from exc
        if not isinstance(value, dict):
            raise StoreError("the stored session value is not a JSON object")
        data = value.get("dataSession")
        return data if isinstance(data, dict) else {}

    async def destroy(self, token: str) -> bool:
        """Delete the token's key (an expired ``exp`` is accepted: logging out always is)."""
        _, key = self._decode(token, verify_exp=False)
        ended = await self._store.delete([key]) == 1
        if ended:
            user_id, _, session_id = key.partition(":")
            self._emit("destroyed", user_id, session_id, reason="logout")
        return ended

    async def revoke(self, user_id: str, session_id: str) -> bool:
        """Delete ``<user id>:<session id>``; True if it existed."""
        if not is_node_session_id(session_id):
            return False
        ended = await self._store.delete([node_key(user_id, session_id)]) == 1
        if ended:
            self._emit("destroyed", user_id, session_id, reason="revoke")
        return ended

    async def destroy_all(self, user_id: str, keep: str | None = None) -> int:
        """Delete every session of ``user_id`` (found by SCAN; see the module docs)."""
        if keep is not None:
            raise ConfigurationError(
                "destroy_all(keep=...) needs layout v1: the Node layout cannot end a user's "
                "other sessions atomically (see docs/node-interop.md)"
            )
        keys = [row.key for row in await self._store.user_sessions(user_id)]
        await self._store.delete(keys)
        for key in keys:
            self._emit("destroyed", user_id, key.partition(":")[2], reason="destroy_all")
        return len(keys)

    async def rotate(self, token: str) -> str:
        """Not in this layout: raises ``ConfigurationError``."""
        raise ConfigurationError(
            "rotate() needs layout v1: the Node layout has no atomic rename of a session "
            "(see docs/node-interop.md)"
        )

    async def update(self, token: str, data_session: dict[str, Any] | None) -> Session:
        """Not in this layout: raises ``ConfigurationError``."""
        raise ConfigurationError(
            "update() needs layout v1: the Node layout has no atomic replacement of the "
            "private data (see docs/node-interop.md)"
        )

    async def sessions(self, user_id: str) -> list[SessionInfo]:
        """List the live sessions of ``user_id``, the latest-expiring first.

        ``issued_at`` is not recorded in this layout and is reported as the Unix epoch.
        """
        rows: list[NodeRow] = await self._store.user_sessions(user_id)
        now = time.time()
        # Keys that never expire first, then the latest-expiring.
        rows.sort(key=lambda row: (row.ttl_ms is None, row.ttl_ms or 0, row.key), reverse=True)
        infos: list[SessionInfo] = []
        for key, ttl_ms, value in rows:
            owner, session_id = split_node_key(key) or ("", "")
            data = value.get("dataSession")
            infos.append(
                SessionInfo.model_construct(
                    user_id=owner,
                    session_id=session_id,
                    issued_at=UNKNOWN,
                    expires_at=NEVER if ttl_ms is None else utc(now + ttl_ms / 1000),
                    ttl=-1 if ttl_ms is None else ttl_ms // 1000,
                    idle_ttl=self._ttl,
                    data_session=data if isinstance(data, dict) else {},
                )
            )
        return infos

    async def count(self, user_id: str) -> int:
        """Return how many live sessions ``user_id`` has."""
        return len(await self._store.user_sessions(user_id))
