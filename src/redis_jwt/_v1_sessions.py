"""Layout v1 (docs/layout.md): the session backend of ``RedisJWT(layout="v1")``."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ._activity import ActivityClock
from ._backend import Emit, NewSession, SessionRules, load_data, utc
from ._fast_session import new_session
from ._layout import check_user_id, is_session_id, new_session_id
from ._local_cache import LocalCache
from ._pairs import PairIssuer, data_token_json, stored_data_token
from ._redis.replies import Liveness, RefreshRefused, SessionRow, TouchFlag
from ._redis.v1_store import V1Store
from ._tokens import TokenCodec, dumps
from .errors import (
    ConfigurationError,
    InvalidToken,
    RefreshTokenReused,
    SessionNotFound,
    StoreError,
)
from .models import Session, SessionInfo, TokenPair

__all__ = ["V1Sessions"]

logger = logging.getLogger("redis_jwt")
_from_timestamp = datetime.fromtimestamp


@dataclass(frozen=True, slots=True, kw_only=True)
class V1Sessions:
    """Sign, verify, extend, destroy, list and limit sessions of layout v1.

    Attributes:
        store: the v1 commands.
        codec: signs and checks tokens.
        rules: the lifetimes.
        sliding: whether verify resets the idle ttl.
        limit: sessions kept per user (0: no limit).
        cache: the local verify cache, or None.
        emit: puts session events on the bus.
        unschedule: drops ended sessions (by key) from the expiry schedule.
        wait_replicas: replicas that must confirm an ending (0: don't wait).
        wait_timeout_ms: how long to wait for them.
        pairs: signs the tokens of refresh pairs.
        activity: with ``track_activity``, when this process last wrote each
            session's last-seen time; None otherwise.
        spawn: runs a background coroutine (the last-seen write on a Cluster).
    """

    store: V1Store
    codec: TokenCodec
    rules: SessionRules
    sliding: bool
    limit: int
    cache: LocalCache | None
    emit: Emit
    unschedule: Callable[[list[str]], None]
    wait_replicas: int
    wait_timeout_ms: int
    pairs: PairIssuer
    activity: ActivityClock | None = None
    spawn: Callable[[Coroutine[Any, Any, None]], object] | None = None

    def check_user_id(self, user_id: object) -> str:
        """Any non-empty str of at most 512 UTF-8 bytes."""
        return check_user_id(user_id)

    async def sign(self, new: NewSession) -> str:
        """One script: store the session, index it, evict beyond the limit."""
        claims = self._claims(new)
        token = self.codec.encode(claims)
        await self._store_new(new, claims)
        return token

    async def sign_pair(self, new: NewSession) -> TokenPair:
        """sign.lua, as :meth:`sign`; the chain starts at generation 0 (no field yet)."""
        claims = self._claims(new)
        iat, cap = claims["iat"], claims["exp"]
        access, refresh, access_exp = self.pairs.encode(
            user_id=new.user_id,
            session_id=claims["sid"],
            cap=cap,
            generation=0,
            data_token=new.data_token,
            iat=iat,
        )
        ttl_ms = await self._store_new(new, claims)
        return self.pairs.pair(access, refresh, access_exp, ttl_ms, cap)

    async def refresh(self, token: str, data_token: dict[str, Any] | None) -> TokenPair:
        """refresh.lua: rotate, continue within the grace, or end a replayed chain."""
        claims = self.codec.decode(token, refresh=True)
        user_id, session_id, cap = claims["sub"], claims["sid"], claims["exp"]
        data_json = data_token_json(data_token)
        if data_token is not None:  # a token too large must fail before anything is written
            self.pairs.encode(
                user_id=user_id,
                session_id=session_id,
                cap=cap,
                generation=claims["gen"] + 1,
                data_token=data_token,
            )
        outcome = await self.store.refresh(
            user_id,
            session_id,
            generation=claims["gen"],
            grace_ms=self.pairs.grace_ms,
            data_token_json=data_json,
        )
        if outcome is RefreshRefused.REUSED:
            self.unschedule([self.store.layout.session_key(user_id, session_id)])
            self.emit("destroyed", user_id, session_id, reason="refresh_reuse")
            await self._confirm_replicated(user_id)
            raise RefreshTokenReused(
                "this refresh token was already used: the session was ended; log in again"
            )
        if outcome is RefreshRefused.GONE:
            raise SessionNotFound("the session has ended; log in again")
        if outcome is RefreshRefused.UNKNOWN:
            raise InvalidToken("the refresh token does not belong to this session")
        # New public data, else what a refresh of this chain stored, else the token's own.
        public = data_token
        if public is None:
            public = stored_data_token(outcome.data_token_json)
        if public is None:
            public = claims.get("dat")
        access, refresh, access_exp = self.pairs.encode(
            user_id=user_id,
            session_id=session_id,
            cap=cap,
            generation=outcome.generation,
            data_token=public,
        )
        return self.pairs.pair(access, refresh, access_exp, outcome.ttl_ms, cap)

    def _claims(self, new: NewSession) -> dict[str, Any]:
        """The claims of a new session's token (a new session id)."""
        iat = int(time.time())
        claims: dict[str, Any] = {
            "sub": new.user_id,
            "sid": new_session_id(),
            "iat": iat,
            "exp": iat + max(self.rules.max_age_seconds, new.idle_seconds),
        }
        if new.data_token:
            claims["dat"] = new.data_token
        return claims

    async def _store_new(self, new: NewSession, claims: dict[str, Any]) -> int:
        """sign.lua for a session whose token is signed; return its ttl in ms."""
        user_id, idle_seconds, session_id = new.user_id, new.idle_seconds, claims["sid"]
        try:
            data = "" if new.data_session is None else dumps(new.data_session)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"data_session must be JSON-serialisable: {exc}") from exc
        signed = await self.store.sign(
            user_id,
            session_id,
            idle_seconds=idle_seconds,
            exp=claims["exp"],
            data=data,
            limit=self.limit,
            **_device(new),
        )
        if signed.evicted:  # their schedule entries must not come due as expiries
            layout = self.store.layout
            self.unschedule([layout.session_key(user_id, v) for v in signed.evicted])
        for victim in signed.evicted:
            self.emit("destroyed", user_id, victim, reason="evicted")
        self.emit("created", user_id, session_id)
        return signed.ttl_ms

    async def verify(self, token: str, *, with_session: bool) -> Session:
        """Local signature check, then one ``PTTL`` (or touch.lua to slide or load)."""
        claims = self.codec.decode(token)
        user_id: str = claims["sub"]
        session_id: str = claims["sid"]
        if self.activity is not None and self.activity.due(session_id):
            self._record_seen(user_id, session_id)
        if self.sliding or with_session:
            flags = (TouchFlag.SLIDE if self.sliding else TouchFlag.NONE) | (
                TouchFlag.LOAD if with_session else TouchFlag.NONE
            )
            alive = await self.store.touch(user_id, session_id, flags)
        elif self.cache is not None:
            alive = await self.cache.alive(user_id, session_id, claims["exp"])
        else:
            alive = await self.store.alive(user_id, session_id)
        return self._session(claims, alive, with_session)

    def _record_seen(self, user_id: str, session_id: str) -> None:
        # Queued before the verify's own command: the same round trip carries both.
        if not self.store.record_seen(user_id, session_id) and self.spawn is not None:
            self.spawn(self._seen(user_id, session_id))

    async def _seen(self, user_id: str, session_id: str) -> None:
        try:
            await self.store.seen(user_id, session_id)
        except StoreError as exc:  # a late last-seen time is no reason to fail anything
            logger.debug("could not record activity: %s", exc)

    async def extend(self, token: str) -> Session:
        """touch.lua with SLIDE and ANNOUNCE."""
        claims = self.codec.decode(token)
        user_id, session_id = claims["sub"], claims["sid"]
        alive = await self.store.touch(user_id, session_id, TouchFlag.SLIDE | TouchFlag.ANNOUNCE)
        session = self._session(claims, alive, False)
        self.emit("extended", user_id, session_id)
        return session

    @staticmethod
    def _session(claims: dict[str, Any], alive: Liveness | None, with_session: bool) -> Session:
        if alive is None:
            raise SessionNotFound("the session has ended; log in again")
        now = time.time()
        ttl_ms, exp = alive.ttl_ms, claims["exp"]
        # A key that lost its expiry outside the library, or a Redis clock a
        # little ahead of ours: the JWT exp is the hard end either way.
        if ttl_ms is None or now + ttl_ms / 1000 > exp:
            ttl_ms = max(0, int((exp - now) * 1000))
        # Paid by every verify: utc() inlined, the same values.
        return new_session(
            {
                "user_id": claims["sub"],
                "session_id": claims["sid"],
                "data_token": claims.get("dat") or {},
                "data_session": load_data(alive.data_json) if with_session else None,
                "issued_at": _from_timestamp(claims["iat"], UTC),
                "expires_at": _from_timestamp(now + ttl_ms / 1000, UTC),
                "ttl": ttl_ms // 1000,
                "claims": claims,
            }
        )

    async def destroy(self, token: str) -> bool:
        """destroy.lua for the token's session (an expired ``exp`` is accepted)."""
        claims = self.codec.decode(token, verify_exp=False)
        return await self._end(claims["sub"], claims["sid"], "logout")

    async def revoke(self, user_id: str, session_id: str) -> bool:
        """destroy.lua for one session id; False for an id this layout never makes."""
        if not is_session_id(session_id):
            return False
        return await self._end(user_id, session_id, "revoke")

    async def _end(self, user_id: str, session_id: str, reason: str) -> bool:
        ended = await self.store.destroy(user_id, session_id, reason)
        if ended:
            self.emit("destroyed", user_id, session_id, reason=reason)
            await self._confirm_replicated(user_id)
        return ended

    async def _confirm_replicated(self, user_id: str) -> None:
        """With ``wait_replicas``, report an ending that replicas did not confirm in time."""
        if not self.wait_replicas:
            return
        try:
            confirmed = await self.store.wait_replicas(
                user_id, self.wait_replicas, self.wait_timeout_ms
            )
        except StoreError as exc:
            problem = f"could not WAIT for replicas ({exc})"
        else:
            if confirmed >= self.wait_replicas:
                return
            problem = f"{confirmed} of {self.wait_replicas} replicas confirmed it"
        message = (
            f"the session end of user {user_id!r} is done on the primary but {problem} "
            f"within {self.wait_timeout_ms} ms: a failover now could bring the session back"
        )
        logger.warning("%s", message)
        self.emit("error", user_id, reason="wait_replicas", error=StoreError(message))

    async def destroy_all(self, user_id: str, keep: str | None = None) -> int:
        """destroy_all.lua: every session of the user, from the index, but ``keep``."""
        ended = await self.store.destroy_all(user_id, keep or "")
        if ended:
            layout = self.store.layout
            self.unschedule([layout.session_key(user_id, s) for s in ended])
        for session_id in ended:
            self.emit("destroyed", user_id, session_id, reason="destroy_all")
        if ended:
            await self._confirm_replicated(user_id)
        return len(ended)

    async def sessions(self, user_id: str) -> list[SessionInfo]:
        """list.lua, newest first."""
        rows = await self.store.list(user_id)
        now = time.time()
        rows.sort(key=lambda row: (row.created_us, row.session_id), reverse=True)
        return [
            SessionInfo.model_construct(
                user_id=user_id,
                session_id=row.session_id,
                issued_at=utc(row.created_us / 1_000_000),
                expires_at=utc(now + max(row.ttl_ms, 0) / 1000),
                ttl=max(row.ttl_ms, 0) // 1000,
                idle_ttl=row.idle_ttl_seconds,
                data_session=load_data(row.data_json),
                ip=row.ip,
                user_agent=row.user_agent,
                last_seen_at=self._last_seen(row),
            )
            for row in rows
        ]

    @staticmethod
    def _last_seen(row: SessionRow) -> datetime | None:
        # None until a verify recorded one (a session never used since sign-in).
        if row.last_seen_ms is None:
            return None
        return utc(max(row.last_seen_ms * 1000, row.created_us) / 1_000_000)

    async def rotate(self, token: str) -> str:
        """rotate.lua: a new id for the live session, its data and place kept."""
        claims = self.codec.decode(token)
        user_id: str = claims["sub"]
        old_id: str = claims["sid"]
        new_id = new_session_id()
        # The same session under a new id: the same iat, cap and public data.
        renamed = self.codec.encode({**claims, "sid": new_id})
        # Scheduled due in a second: the sweeper then finds the time really left
        # (a due time too early is corrected; one too late would delay `expired`).
        alive = await self.store.rotate(user_id, old_id, new_id, idle_seconds=1, exp=claims["exp"])
        if alive is None:
            raise SessionNotFound("the session has ended; log in again")
        # Its schedule entry must not come due as an expiry.
        self.unschedule([self.store.layout.session_key(user_id, old_id)])
        self.emit("destroyed", user_id, old_id, reason="rotated")
        self.emit("created", user_id, new_id)
        await self._confirm_replicated(user_id)
        return renamed

    async def update(self, token: str, data_session: dict[str, Any] | None) -> Session:
        """update.lua: replace the private data of the live session."""
        claims = self.codec.decode(token)
        try:
            data = "" if data_session is None else dumps(data_session)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"data_session must be JSON-serialisable: {exc}") from exc
        alive = await self.store.update(claims["sub"], claims["sid"], data)
        return self._session(claims, alive, True)

    async def count(self, user_id: str) -> int:
        """list.lua in count mode."""
        return await self.store.count(user_id)


#: Longest device fields kept: an address fits in 64 characters; longer user agents are cut.
MAX_IP_CHARS = 64
MAX_USER_AGENT_CHARS = 512


def _device(new: NewSession) -> dict[str, str]:
    client = new.client
    if client is None:
        return {}
    return {
        "ip": (client.ip or "")[:MAX_IP_CHARS],
        "user_agent": (client.user_agent or "")[:MAX_USER_AGENT_CHARS],
    }
