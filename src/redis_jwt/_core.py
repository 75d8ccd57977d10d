"""``RedisJWT``: sign, verify, extend, destroy, list and limit sessions.

The facade: it checks the options (``_options.py``), builds the Redis
boundary (``_redis/``), the lifecycle and one session backend for the chosen
layout (``_backend.py``), and hands every call to that backend. See
docs/architecture.md.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, Literal, Self

from ._assembly import build_backend
from ._backend import SessionBackend
from ._duration import Duration
from ._layout import Layout
from ._lifecycle import Lifecycle
from ._options import Options, settings_keywords
from ._redis.connect import client_from_url
from ._redis.store import AnyRedis
from ._session_ops import SessionOps
from ._tasks import Supervisor
from ._telemetry import Switch, session_id_of_session, session_id_of_token
from .errors import ConfigurationError
from .events import EventBus
from .keys import Key, KeyRing
from .models import ClientInfo, Session
from .settings import Settings

__all__ = ["RedisJWT"]


class State(enum.Enum):
    """Where a ``RedisJWT`` is in its life: new -> open -> closed (never reopened)."""

    NEW = "new"
    OPEN = "open"
    CLOSED = "closed"


class RedisJWT(SessionOps):
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
        access_ttl: the longest lifetime of the access token of a refresh pair
            (:meth:`sign_pair`); never past the session's ``max_age``.
        refresh_grace: how long a spent refresh token presented again still
            continues its chain (two tabs refreshing at once); after it, the
            session is ended as stolen. ``0`` for no grace.
        track_activity: keep each session's last-seen time (``SessionInfo.last_seen_at``)
            up to date, at no extra round trip on the verify path (layout v1).
        activity_resolution: how stale that time may be (default one minute; a
            duration, or seconds as a number): each process writes it at most
            once per session per resolution.

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
        access_ttl: Duration = "15 minutes",
        refresh_grace: Duration | float = "10 seconds",
        track_activity: bool = False,
        activity_resolution: Duration | float = "60 seconds",
    ) -> None:
        resolved = Options(
            secret=secret,
            keys=keys,
            layout=layout,
            redis_url=redis_url,
            redis=redis,
            ttl=ttl,
            max_age=max_age,
            sliding=sliding,
            multiple=multiple,
            max_sessions=max_sessions,
            prefix=prefix,
            kea=kea,
            listen=listen,
            leeway=leeway,
            issuer=issuer,
            audience=audience,
            algorithm=algorithm,
            timeout_seconds=timeout_seconds,
            retries=retries,
            max_token_bytes=max_token_bytes,
            local_cache=local_cache,
            wait_replicas=wait_replicas,
            wait_timeout_seconds=wait_timeout_seconds,
            access_ttl=access_ttl,
            refresh_grace=refresh_grace,
            track_activity=track_activity,
            activity_resolution=activity_resolution,
        ).check()
        options = resolved.options
        self.sliding = bool(options.sliding)
        self.kea = bool(options.kea)
        #: The key layout: ``"v1"`` or ``"redis-jwt"`` (the Node package's).
        self.layout_name: Literal["v1", "redis-jwt"] = options.layout
        #: The namespace of every key this instance writes.
        self.prefix: str = options.prefix
        self.layout = Layout(options.prefix)
        self._keys = resolved.keys
        self._rules = resolved.rules
        self._owns_client = options.redis is None
        client = options.redis or client_from_url(
            options.redis_url or "redis://127.0.0.1:6379/0",
            timeout_seconds=options.timeout_seconds,
            retries=options.retries,
        )
        #: The event bus: ``auth.events.on("destroyed", handler)``.
        self.events = EventBus()
        self._tasks = Supervisor()
        # OpenTelemetry: decided at open (see _telemetry.py); None until then.
        self._otel = Switch()
        self._life = Lifecycle(
            client,
            self.layout,
            self.events,
            tasks=self._tasks,
            deadline_seconds=options.timeout_seconds * (options.retries + 1),
            listen=resolved.listening,
            kea=self.kea,
            telemetry=self._otel,
        )
        self._backend: SessionBackend
        self._backend, self._cache = build_backend(resolved, self._life, client, self.layout)
        self._state = State.NEW

    @classmethod
    def from_settings(
        cls,
        settings: Settings | None = None,
        *,
        key_prefix: str | None = None,
        env_prefix: str | None = None,
        **overrides: Any,
    ) -> RedisJWT:
        """Build from :class:`~redis_jwt.Settings` (``REDIS_JWT_*`` variables) and overrides.

        Args:
            settings: the settings; read from the environment when omitted.
            key_prefix: the Redis key namespace (the constructor's ``prefix=``).
            env_prefix: read ``<env_prefix>SECRET``... instead of ``REDIS_JWT_*``.
            **overrides: other constructor keywords; they win over the settings.
                ``prefix=`` (deprecated: ambiguous) sets the key prefix.

        Raises:
            ConfigurationError: as the constructor; without a key, it names
                the variables to set (``REDIS_JWT_SECRET`` or ``REDIS_JWT_KEYS``).
        """
        return cls(**settings_keywords(settings, key_prefix, env_prefix, overrides))

    # -- lifecycle ---------------------------------------------------------

    @property
    def redis(self) -> AnyRedis:
        """The ``redis.asyncio`` client, for commands of your own."""
        return self._life.store.client

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
        if self._state is State.CLOSED:
            raise ConfigurationError("this RedisJWT was closed; create a new one")
        if self._state is State.OPEN:
            return
        self._state = State.OPEN
        self._otel.detect()
        await self._life.open()
        if self._cache is not None:
            await self._cache.open()

    async def aclose(self) -> None:
        """Stop background work and close the client if this object built it; idempotent."""
        if self._state is State.CLOSED:
            return
        self._state = State.CLOSED
        # Shielded: a cancelled shutdown must still release connections.
        await asyncio.shield(self._shutdown())

    async def _shutdown(self) -> None:
        # The one place where everything stops: every background task (the
        # supervisor's), the cache, the bus's handlers, then the client.
        await self._life.aclose()
        if self._cache is not None:
            await self._cache.aclose()
        await self.events.aclose()
        if self._owns_client:
            await self._life.store.aclose()

    def __repr__(self) -> str:
        # Never a secret: the address has its password redacted, keys are not shown.
        return (
            f"<RedisJWT layout={self.layout_name!r} redis={self._life.address!r} "
            f"prefix={self.prefix!r} state={self._state.value!r}>"
        )

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
        if self._state is State.CLOSED:
            raise ConfigurationError("this RedisJWT was closed; create a new one")

    # -- sessions ----------------------------------------------------------

    async def sign(
        self,
        user_id: str,
        *,
        ttl: Duration | None = None,
        data_token: Mapping[str, Any] | None = None,
        data_session: Mapping[str, Any] | None = None,
        client: ClientInfo | None = None,
    ) -> str:
        """Create a session for ``user_id`` and return its token.

        Args:
            user_id: any non-empty string of at most 512 bytes.
            ttl: idle lifetime of this session (default: the constructor's).
            data_token: public data, signed into the token (claim ``dat``).
            data_session: private data, kept only in Redis.
            client: the device signing in (``client_info(request)`` in the web
                adapters), listed by :meth:`sessions` (layout v1).

        Returns:
            The JWT. The session is stored before this returns: never a token
            without a session.

        Raises:
            ConfigurationError: for a bad user id, ttl or data; nothing is written.
            StoreError: when Redis fails; no token is returned.
        """
        self._check_open()
        backend = self._backend
        new = self._new_session(user_id, ttl, data_token, data_session, client)
        return await self._otel.run("redis_jwt.sign", backend.sign(new), session_id_of_token)

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
        if self._state is State.CLOSED:  # _check_open(), inlined on the hot path
            raise ConfigurationError("this RedisJWT was closed; create a new one")
        otel = self._otel.active
        call = self._backend.verify(token, with_session=with_session)
        if otel is None:  # telemetry off (decided at open): nothing more on the hot path
            return await call
        return await otel.trace("redis_jwt.verify", call, session_id_of_session)

    async def extend(self, token: str) -> Session:
        """Reset the session's idle ttl (never past its ``max_age``) and return it.

        Raises:
            AuthenticationError: as :meth:`verify`.
            StoreError: Redis failed.
        """
        self._check_open()
        return await self._backend.extend(token)

    async def destroy(self, token: str | None) -> bool:
        """Log out the token's session; return whether it was alive.

        Logging out is never an error for a genuine token: an expired ``exp``
        is accepted, a session already ended (a second logout) gives False,
        and so does no token at all (``None`` or ``""``: nothing to end).

        Raises:
            InvalidToken: a token was given but is not genuine (bad signature,
                malformed): a forged logout is refused, not ignored.
            StoreError: Redis failed.
        """
        self._check_open()
        if not token:
            return False
        return await self._otel.run(
            "redis_jwt.destroy", self._backend.destroy(token), lambda _: session_id_of_token(token)
        )
