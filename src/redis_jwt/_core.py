"""``RedisJWT``: sign, verify, extend, destroy, list and limit sessions."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal, Self

from ._connect import client_from_url
from ._duration import Duration, parse_duration
from ._fast_session import new_session
from ._layout import Layout, check_user_id, is_session_id, new_session_id
from ._lifecycle import wire_events
from ._local_cache import LocalCache
from ._node_sessions import NodeSessions, check_node_options
from ._store import ANNOUNCE, LOAD, SLIDE, AnyRedis, Store
from ._tokens import TokenCodec, dumps
from .errors import ConfigurationError, SessionNotFound, StoreError
from .events import EventBus
from .keys import Key, KeyRing, as_key_ring
from .models import Event, EventKind, Session, SessionInfo
from .settings import Settings

__all__ = ["RedisJWT"]

logger = logging.getLogger("redis_jwt")

# Per-call ttls may exceed max_age (they then become the cap) up to this much.
_TTL_CEILING = 366 * 86400


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def _check_data(value: object, name: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{name} must be a dict (JSON object), not {type(value).__name__}")
    return dict(value)


class RedisJWT:
    """Login sessions as JWTs backed by Redis, shared by every app instance.

    The constructor does no I/O. Open with ``async with auth:`` (or
    :meth:`open`), close with :meth:`aclose`.

    Args:
        secret: the HMAC secret (at least 32 bytes); tokens are HS256.
        keys: instead of ``secret``, a key set for rotation and asymmetric
            algorithms: a :class:`~redis_jwt.keys.KeyRing`, a list of
            :class:`~redis_jwt.keys.Key`, or a JWK Set dict (see the keys guide).
        layout: ``"v1"`` (the default) or ``"redis-jwt"``, the exact layout of
            the Node package redis-jwt 1.4.0 (see the Node interop guide).
        redis_url: where Redis is (``redis://``, ``rediss://``, ``unix://``).
        redis: a ``redis.asyncio`` client you own, instead of ``redis_url``;
            it is borrowed and never closed by this object.
        ttl: idle lifetime of a session (``'15 minutes'``, ``'1d'``, seconds, timedelta).
        max_age: absolute lifetime cap, the JWT ``exp``.
        sliding: whether :meth:`verify` also resets the idle ttl.
        multiple: ``False`` keeps one session per user (a new sign ends the others).
        max_sessions: keep at most this many sessions per user, evicting the oldest.
        prefix: namespace of every key this library writes.
        kea: listen to the events channel and to Redis's keyspace events, so
            that changes made by any instance or any Redis client (a raw
            ``DEL`` of a session key) become events here; enables the
            ``notify-keyspace-events`` flags it needs when CONFIG is allowed.
            Implies ``listen``. See the events guide.
        listen: listen to the events channel only: ``created``, ``extended``,
            ``destroyed`` and timely ``expired`` events from every instance,
            without keyspace events (no CONFIG needed).
        leeway: clock skew tolerated on ``exp``/``iat``.
        issuer: value of the ``iss`` claim, required on verify when set.
        audience: value of the ``aud`` claim, required on verify when set.
        algorithm: HMAC algorithm for ``secret`` (HS256, HS384, HS512).
        timeout_seconds: connect and answer timeout of each Redis attempt.
        retries: immediate retries of a failed Redis attempt.
        max_token_bytes: tokens longer than this are refused before decoding.
        local_cache: remember live sessions in this process, so that repeated
            plain verifies cost no round trip; kept exact by Redis's
            client-side caching invalidations (layout v1; see the decisions page).
        wait_replicas: after a destroy, revoke or destroy_all that ended a
            session, wait until this many replicas have it (Redis ``WAIT``),
            narrowing the asynchronous-replication window (see the deployment
            guide). When fewer confirm in time, the call still returns
            normally, and a warning is logged and an ``error`` event emitted.
        wait_timeout_seconds: how long to wait for ``wait_replicas``.

    Raises:
        ConfigurationError: for a weak secret, a bad duration or conflicting options.
    """

    def __init__(
        self,
        secret: str | bytes | None = None,
        *,
        keys: KeyRing | Key | Iterable[Key] | Mapping[str, Any] | None = None,
        layout: Literal["v1", "redis-jwt"] = "v1",
        redis_url: str | None = None,
        redis: AnyRedis | None = None,
        ttl: Duration = "1 day",
        max_age: Duration = "30 days",
        sliding: bool = False,
        multiple: bool = True,
        max_sessions: int | None = None,
        prefix: str = "rjwt",
        kea: bool = False,
        listen: bool = False,
        leeway: Duration | float = 0,
        issuer: str | None = None,
        audience: str | None = None,
        algorithm: str = "HS256",
        timeout_seconds: float = 0.5,
        retries: int = 1,
        max_token_bytes: int = 8192,
        local_cache: bool = False,
        wait_replicas: int = 0,
        wait_timeout_seconds: float = 0.1,
    ) -> None:
        if (secret is None) == (keys is None):
            raise ConfigurationError("pass exactly one of secret= or keys=")
        ring = as_key_ring(keys) if keys is not None else KeyRing.from_secret(secret, algorithm)
        if layout not in ("v1", "redis-jwt"):
            raise ConfigurationError(f"layout must be 'v1' or 'redis-jwt', got {layout!r}")
        if redis is not None and redis_url is not None:
            raise ConfigurationError("pass redis_url= or redis=, not both")
        self._ttl = parse_duration(ttl, name="ttl")
        self._max_age = parse_duration(max_age, name="max_age")
        self._ttl_ceiling = max(self._max_age, self._ttl, _TTL_CEILING)
        if max_sessions is not None and (
            isinstance(max_sessions, bool) or not isinstance(max_sessions, int) or max_sessions < 1
        ):
            raise ConfigurationError(f"max_sessions must be a positive int, got {max_sessions!r}")
        if not multiple and max_sessions not in (None, 1):
            raise ConfigurationError("multiple=False means max_sessions=1; pass one or the other")
        self._limit = 1 if not multiple else (max_sessions or 0)
        if not 0 < timeout_seconds <= 60 or not 0 <= retries <= 10:
            raise ConfigurationError("timeout_seconds must be in (0, 60] and retries in [0, 10]")
        if (
            isinstance(wait_replicas, bool)
            or not isinstance(wait_replicas, int)
            or not 0 <= wait_replicas <= 100
            or not 0 < wait_timeout_seconds <= 10
        ):
            raise ConfigurationError(
                "wait_replicas must be an int in [0, 100] and wait_timeout_seconds in (0, 10]"
            )
        if wait_replicas and layout != "v1":
            raise ConfigurationError("wait_replicas needs layout v1")
        self._wait_replicas = wait_replicas
        self._wait_timeout_ms = max(1, round(wait_timeout_seconds * 1000))
        if isinstance(leeway, int | float) and not isinstance(leeway, bool) and leeway >= 0:
            leeway_seconds = float(leeway)
        else:
            leeway_seconds = parse_duration(leeway, name="leeway")
        self.sliding = bool(sliding)
        self.kea = bool(kea)
        self.layout = Layout(prefix)
        self._codec = TokenCodec(
            ring,
            lifetime_limit_seconds=self._ttl_ceiling,
            leeway_seconds=leeway_seconds,
            issuer=issuer,
            audience=audience,
            max_token_bytes=max_token_bytes,
        )
        self._keys = ring
        self._owns_client = redis is None
        client = redis or client_from_url(
            redis_url or "redis://127.0.0.1:6379/0",
            timeout_seconds=timeout_seconds,
            retries=retries,
        )
        self._store = Store(client, self.layout, deadline_seconds=timeout_seconds * (retries + 1))
        #: The event bus: ``auth.events.on("destroyed", handler)``.
        self.events = EventBus()
        # layout="redis-jwt": every session call goes to the Node-compatible implementation.
        self._node: NodeSessions | None = None
        if layout == "redis-jwt":
            check_node_options(
                keys=ring,
                client=client,
                max_sessions=max_sessions,
                multiple=multiple,
                kea=kea,
                issuer=issuer,
                audience=audience,
            )
            self._node = NodeSessions(
                self._store,
                ring,
                ttl_seconds=self._ttl,
                max_age_seconds=self._max_age,
                ttl_ceiling_seconds=self._ttl_ceiling,
                sliding=self.sliding,
                multiple=multiple,
                leeway_seconds=leeway_seconds,
                max_token_bytes=max_token_bytes,
                emit=self._emit,
            )
        listening = bool(listen) or self.kea
        if listening and layout != "v1":
            raise ConfigurationError(
                "listen=True and kea=True need layout v1: layout='redis-jwt' has no events "
                "channel nor expiry schedule"
            )
        self._feed, self._life = wire_events(
            self._store, self.events, self._emit, client, listen=listening, kea=self.kea
        )
        if local_cache and layout != "v1":
            raise ConfigurationError("local_cache=True needs layout v1")
        self._cache: LocalCache | None = None
        if local_cache:
            self._cache = LocalCache(self._store, client, timeout_seconds=timeout_seconds)
        self._state: str = "new"  # new -> open -> closed

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **overrides: Any) -> RedisJWT:
        """Build from :class:`~redis_jwt.Settings` (``REDIS_JWT_*`` variables) and overrides."""
        s = settings if settings is not None else Settings()
        options: dict[str, Any] = {
            "secret": s.secret.get_secret_value() if s.secret is not None else None,
            "redis_url": s.redis_url,
            "ttl": s.ttl,
            "max_age": s.max_age,
            "sliding": s.sliding,
            "multiple": s.multiple,
            "max_sessions": s.max_sessions,
            "prefix": s.prefix,
            "kea": s.kea,
            "listen": s.listen,
            "leeway": s.leeway_seconds,
            "issuer": s.issuer,
            "audience": s.audience,
            "algorithm": s.algorithm,
            "timeout_seconds": s.timeout_seconds,
            "retries": s.retries,
            "max_token_bytes": s.max_token_bytes,
            "local_cache": s.local_cache,
            "wait_replicas": s.wait_replicas,
            "wait_timeout_seconds": s.wait_timeout_seconds,
        }
        if s.keys is not None:
            if s.secret is not None:
                raise ConfigurationError("set REDIS_JWT_SECRET or REDIS_JWT_KEYS, not both")
            options["keys"] = KeyRing.from_jwks(s.keys.get_secret_value(), signing=s.signing_kid)
        if s.layout != "v1":
            options["layout"] = s.layout
        options.update(overrides)
        if options.get("redis") is not None:
            options.pop("redis_url")
        if options.get("keys") is not None:
            options.pop("secret")
        return cls(**options)

    # -- lifecycle ---------------------------------------------------------

    @property
    def redis(self) -> AnyRedis:
        """The ``redis.asyncio`` client, for commands of your own."""
        return self._store.client

    @property
    def keys(self) -> KeyRing:
        """The signing and verification keys."""
        return self._keys

    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        """The public JWK Set of the keys, for services that check signatures themselves.

        Public parts only, each with ``kid``, ``alg`` and ``use: "sig"``; HMAC keys
        never appear (an HMAC-only configuration gives ``{"keys": []}``).
        """
        return self._keys.jwks()

    async def open(self) -> None:
        """Connect and load the scripts; never fails because Redis is down.

        Emits ``connected`` then ``ready``; with the listener on (``listen`` or
        ``kea``), waits (2 s at most by default) until it is subscribed, so
        that events made right after are received. When Redis cannot be
        reached, an ``error`` and a ``disconnected`` event are emitted and a
        background task keeps trying; calls meanwhile raise
        :class:`~redis_jwt.errors.StoreUnavailable`.
        """
        if self._state == "closed":
            raise ConfigurationError("this RedisJWT was closed; create a new one")
        if self._state == "open":
            return
        self._state = "open"
        await self._life.open()
        if self._cache is not None:
            await self._cache.open()

    async def aclose(self) -> None:
        """Stop background work and close the client if this object built it; idempotent."""
        if self._state == "closed":
            return
        self._state = "closed"
        # Shielded: a cancelled shutdown must still release connections.
        await asyncio.shield(self._shutdown())

    async def _shutdown(self) -> None:
        await self._life.aclose()
        if self._cache is not None:
            await self._cache.aclose()
        self._feed.close()
        await self.events.aclose()
        if self._owns_client:
            await self._store.aclose()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _check_open(self) -> None:
        if self._state == "closed":
            raise ConfigurationError("this RedisJWT was closed; create a new one")

    def _emit(
        self,
        kind: EventKind,
        user_id: str | None = None,
        session_id: str | None = None,
        *,
        reason: str | None = None,
        error: BaseException | None = None,
    ) -> None:
        if user_id is not None and session_id is not None:
            # Session events: deduplicated against the listener's (see _feed.py).
            self._feed.local(kind, user_id, session_id, reason)
        elif self.events.has_listeners:
            self.events.emit(
                Event(
                    kind=kind,
                    user_id=user_id,
                    session_id=session_id,
                    at=datetime.now(UTC),
                    reason=reason,
                    error=error,
                )
            )

    # -- sessions ----------------------------------------------------------

    async def sign(
        self,
        user_id: str,
        *,
        ttl: Duration | None = None,
        data_token: Mapping[str, Any] | None = None,
        data_session: Mapping[str, Any] | None = None,
    ) -> str:
        """Create a session for ``user_id`` and return its token.

        Args:
            user_id: any non-empty string of at most 512 bytes.
            ttl: idle lifetime of this session (default: the constructor's).
            data_token: public data, signed into the token (claim ``dat``).
            data_session: private data, kept only in Redis.

        Returns:
            The JWT. The session is stored before this returns: never a token
            without a session.

        Raises:
            ConfigurationError: for a bad user id, ttl or data; nothing is written.
            StoreError: when Redis fails; no token is returned.
        """
        self._check_open()
        if self._node is not None:
            return await self._node.sign(
                user_id, ttl=ttl, data_token=data_token, data_session=data_session
            )
        user_id = check_user_id(user_id)
        idle = self._ttl if ttl is None else parse_duration(ttl, name="ttl")
        if idle > self._ttl_ceiling:
            raise ConfigurationError(
                f"ttl={ttl!r} is longer than the longest allowed lifetime "
                f"({self._ttl_ceiling} s); raise max_age to allow it"
            )
        public = _check_data(data_token, "data_token")
        private = _check_data(data_session, "data_session")
        try:
            data = "" if private is None else dumps(private)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"data_session must be JSON-serialisable: {exc}") from exc
        iat = int(time.time())
        session_id = new_session_id()
        claims: dict[str, Any] = {
            "sub": user_id,
            "sid": session_id,
            "iat": iat,
            "exp": iat + max(self._max_age, idle),
        }
        if public:
            claims["dat"] = public
        token = self._codec.encode(claims)
        _created, _ttl_ms, evicted = await self._store.sign(
            user_id, session_id, idle_seconds=idle, exp=claims["exp"], data=data, limit=self._limit
        )
        if evicted:  # their schedule entries must not come due as expiries
            self._life.unscheduler.add([self.layout.session_key(user_id, v) for v in evicted])
        for victim in evicted:
            self._emit("destroyed", user_id, victim, reason="evicted")
        self._emit("created", user_id, session_id)
        return token

    async def verify(self, token: str, *, with_session: bool = False) -> Session:
        """Check ``token`` and that its session is alive: one Redis round trip.

        With ``sliding=True`` this also resets the idle ttl.

        Args:
            token: the JWT.
            with_session: also load the private ``data_session``.

        Raises:
            MissingToken, InvalidToken, TokenExpired: the token itself is bad
                (decided locally, without Redis).
            SessionNotFound: the session was destroyed, evicted or expired.
            StoreError: Redis failed.
        """
        self._check_open()
        if self._node is not None:
            return await self._node.verify(token, with_session=with_session)
        claims = self._codec.decode(token)
        user_id: str = claims["sub"]
        session_id: str = claims["sid"]
        data: str | None = None
        if self.sliding or with_session:
            flags = (SLIDE if self.sliding else 0) | (LOAD if with_session else 0)
            pttl, data = await self._store.touch(user_id, session_id, flags)
        elif self._cache is not None:
            pttl = await self._cache.pttl(user_id, session_id, claims["exp"])
        else:
            pttl = await self._store.pttl(user_id, session_id)
        return self._session(claims, pttl, data, with_session)

    async def extend(self, token: str) -> Session:
        """Reset the session's idle ttl (never past its ``max_age``) and return it.

        Raises:
            AuthenticationError: as :meth:`verify`.
            StoreError: Redis failed.
        """
        self._check_open()
        if self._node is not None:
            return await self._node.extend(token)
        claims = self._codec.decode(token)
        user_id, session_id = claims["sub"], claims["sid"]
        pttl, _ = await self._store.touch(user_id, session_id, SLIDE | ANNOUNCE)
        session = self._session(claims, pttl, None, False)
        self._emit("extended", user_id, session_id)
        return session

    def _session(
        self, claims: dict[str, Any], pttl: int, data: str | None, with_session: bool
    ) -> Session:
        if pttl == -2:
            raise SessionNotFound("the session has ended; log in again")
        now = time.time()
        # A key that lost its expiry outside the library, or a Redis clock a
        # little ahead of ours: the JWT exp is the hard end either way.
        if pttl < 0 or now + pttl / 1000 > claims["exp"]:
            pttl = max(0, int((claims["exp"] - now) * 1000))
        session_data: dict[str, Any] | None = None
        if with_session:
            session_data = self._load_data(data)
        return new_session(
            user_id=claims["sub"],
            session_id=claims["sid"],
            data_token=claims.get("dat") or {},
            data_session=session_data,
            issued_at=_utc(claims["iat"]),
            expires_at=_utc(now + pttl / 1000),
            ttl=pttl // 1000,
            claims=claims,
        )

    @staticmethod
    def _load_data(data: str | None) -> dict[str, Any]:
        if not data:
            return {}
        try:
            value = json.loads(data)
        except ValueError as exc:
            raise StoreError("the stored session data is not JSON") from exc
        return value if isinstance(value, dict) else {}

    async def destroy(self, token: str) -> bool:
        """Log out the token's session; return whether it was alive.

        A token whose ``exp`` has passed is accepted (logging out is always
        allowed) but its signature must be valid.

        Raises:
            InvalidToken, MissingToken: the token is not genuine.
            StoreError: Redis failed.
        """
        self._check_open()
        if self._node is not None:
            return await self._node.destroy(token)
        claims = self._codec.decode(token, verify_exp=False)
        return await self._end(claims["sub"], claims["sid"], "logout")

    async def revoke(self, user_id: str, session_id: str) -> bool:
        """End one session of ``user_id`` by id ("log out that device"); True if it was alive."""
        self._check_open()
        if self._node is not None:
            return await self._node.revoke(user_id, session_id)
        user_id = check_user_id(user_id)
        if not is_session_id(session_id):
            return False
        return await self._end(user_id, session_id, "revoke")

    async def _end(self, user_id: str, session_id: str, reason: str) -> bool:
        ended = await self._store.destroy(user_id, session_id, reason)
        if ended:
            self._emit("destroyed", user_id, session_id, reason=reason)
            await self._confirm_replicated(user_id)
        return ended

    async def _confirm_replicated(self, user_id: str) -> None:
        """With ``wait_replicas``, report an ending that replicas did not confirm in time."""
        if not self._wait_replicas:
            return
        try:
            confirmed = await self._store.wait_replicas(
                user_id, self._wait_replicas, self._wait_timeout_ms
            )
        except StoreError as exc:
            problem = f"could not WAIT for replicas ({exc})"
        else:
            if confirmed >= self._wait_replicas:
                return
            problem = f"{confirmed} of {self._wait_replicas} replicas confirmed it"
        message = (
            f"the session end of user {user_id!r} is done on the primary but {problem} "
            f"within {self._wait_timeout_ms} ms: a failover now could bring the session back"
        )
        logger.warning("%s", message)
        self._emit("error", user_id, reason="wait_replicas", error=StoreError(message))

    async def destroy_all(self, user_id: str) -> int:
        """Log ``user_id`` out everywhere; return how many sessions ended."""
        self._check_open()
        if self._node is not None:
            return await self._node.destroy_all(user_id)
        ended = await self._store.destroy_all(check_user_id(user_id))
        if ended:
            self._life.unscheduler.add([self.layout.session_key(user_id, s) for s in ended])
        for session_id in ended:
            self._emit("destroyed", user_id, session_id, reason="destroy_all")
        if ended:
            await self._confirm_replicated(user_id)
        return len(ended)

    async def sessions(self, user_id: str) -> list[SessionInfo]:
        """List the live sessions of ``user_id``, newest first (exact, no keyspace scan)."""
        self._check_open()
        if self._node is not None:
            return await self._node.sessions(user_id)
        user_id = check_user_id(user_id)
        rows = await self._store.list(user_id)
        now = time.time()
        rows.sort(key=lambda row: (row[2], row[0]), reverse=True)
        return [
            SessionInfo.model_construct(
                user_id=user_id,
                session_id=session_id,
                issued_at=_utc(created / 1_000_000),
                expires_at=_utc(now + max(pttl, 0) / 1000),
                ttl=max(pttl, 0) // 1000,
                idle_ttl=idle,
                data_session=self._load_data(data),
            )
            for session_id, pttl, created, idle, data in rows
        ]

    async def count(self, user_id: str) -> int:
        """Return how many live sessions ``user_id`` has."""
        self._check_open()
        if self._node is not None:
            return await self._node.count(user_id)
        return await self._store.count(check_user_id(user_id))

    async def ping(self) -> bool:
        """Return True when Redis answers; raise :class:`~redis_jwt.errors.StoreError` otherwise."""
        self._check_open()
        return await self._store.ping()

    async def info(self, section: str | None = None) -> dict[str, Any]:
        """Return Redis ``INFO`` (optionally one section) as a dict."""
        self._check_open()
        return await self._store.info(section)
