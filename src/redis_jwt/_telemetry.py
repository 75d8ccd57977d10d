"""OpenTelemetry metrics and spans (``pip install redis-jwt[otel]``), free when unused.

Only ``opentelemetry-api`` is used: the application owns the SDK (providers,
exporters). Whether telemetry is on is decided once, when a ``RedisJWT``
opens (:func:`detect`): with the API not installed, or installed but with no
SDK provider set, every hook below stays ``None`` and the calls pay one
attribute check. Configure the SDK before opening ``RedisJWT``.

Nothing identifying leaves through an attribute: session ids are hashed with
a key drawn once per process (stable within the process, meaningless outside
it); tokens, user ids, secrets and error messages never appear. See
docs/observability.md for the instruments and spans.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Literal, TypeVar

import jwt

from .__about__ import __version__
from .errors import AuthenticationError, SessionNotFound, StoreError, TokenExpired

if TYPE_CHECKING:
    from opentelemetry.metrics import Counter, Histogram, Meter
    from opentelemetry.trace import Span, Tracer

    from .models import Session

__all__ = [
    "SESSION_ID_ATTRIBUTE",
    "Switch",
    "Telemetry",
    "Traced",
    "detect",
    "hash_session_id",
    "outcome_of",
    "session_id_of_session",
    "session_id_of_token",
]

T = TypeVar("T")

#: The meter's and the tracer's name.
SCOPE = "redis_jwt"
#: The span attribute carrying the hashed session id.
SESSION_ID_ATTRIBUTE = "redis_jwt.session_id"
#: Histogram buckets (s) of ``redis_jwt.verify.duration`` and ``redis_jwt.events.lag``.
VERIFY_BUCKETS_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
LAG_BUCKETS_SECONDS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300)
Outcome = Literal["ok", "invalid", "expired", "not_found", "store_error"]
#: The four operations traced by the facade.
Traced = Literal["redis_jwt.sign", "redis_jwt.verify", "redis_jwt.refresh", "redis_jwt.destroy"]

# One key per process: the same session id gives the same hash within the
# process, and a hash cannot be checked against a guessed id from outside it.
_HASH_KEY = secrets.token_bytes(32)


def hash_session_id(session_id: str) -> str:
    """The session id as it appears in span attributes (keyed BLAKE2b, 128 bits, hex)."""
    return hashlib.blake2b(session_id.encode(), key=_HASH_KEY, digest_size=16).hexdigest()


def session_id_of_token(token: str) -> str | None:
    """The ``sid`` claim of a token the library just signed or accepted (no check here)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    session_id = claims.get("sid")
    return session_id if isinstance(session_id, str) else None


def session_id_of_session(session: Session) -> str:
    """The session id of a verified session."""
    return session.session_id


def outcome_of(exc: BaseException | None) -> Outcome:
    """The ``outcome`` attribute of a verify that raised ``exc`` (None: it succeeded).

    Anything that is neither a Redis failure nor a missing session nor an
    expired token (a malformed token, a missing one, a misuse, a bug) is
    ``invalid``: the token was not accepted.
    """
    if exc is None:
        return "ok"
    if isinstance(exc, StoreError):
        return "store_error"
    if isinstance(exc, TokenExpired):
        return "expired"
    if isinstance(exc, SessionNotFound):
        return "not_found"
    return "invalid"


def _is_sdk(provider: object) -> bool:
    # The API's own providers (the proxy returned before an SDK is set, the
    # no-op ones) live in the API's packages; any other provider is an SDK.
    module = type(provider).__module__
    return not module.startswith(("opentelemetry.trace", "opentelemetry.metrics"))


class Telemetry:
    """The tracer and the instruments of one process's SDK.

    Args:
        tracer: the ``redis_jwt`` tracer.
        meter: the ``redis_jwt`` meter.
    """

    __slots__ = (
        "_client_kind",
        "_error_status",
        "created",
        "ended",
        "events_lag",
        "store_errors",
        "tracer",
        "verify_duration",
    )

    def __init__(self, tracer: Tracer, meter: Meter) -> None:
        from opentelemetry.trace import SpanKind, Status, StatusCode

        self.tracer = tracer
        self._client_kind = SpanKind.CLIENT
        self._error_status: Callable[[str], Status] = lambda name: Status(StatusCode.ERROR, name)
        # Buckets in seconds: the SDK's default ones suit milliseconds, and would
        # put every verify (well under 5 s) in the first bucket.
        self.verify_duration: Histogram = meter.create_histogram(
            "redis_jwt.verify.duration",
            unit="s",
            description="Duration of verify, by outcome.",
            explicit_bucket_boundaries_advisory=VERIFY_BUCKETS_SECONDS,
        )
        self.created: Counter = meter.create_counter(
            "redis_jwt.sessions.created", unit="{session}", description="Sessions signed."
        )
        self.ended: Counter = meter.create_counter(
            "redis_jwt.sessions.ended",
            unit="{session}",
            description="Sessions ended by this instance, by reason.",
        )
        self.store_errors: Counter = meter.create_counter(
            "redis_jwt.store.errors", unit="{error}", description="Redis calls that failed."
        )
        self.events_lag: Histogram = meter.create_histogram(
            "redis_jwt.events.lag",
            unit="s",
            description="Time from a session's end to its expired event.",
            explicit_bucket_boundaries_advisory=LAG_BUCKETS_SECONDS,
        )

    async def trace(
        self,
        name: Traced,
        call: Awaitable[T],
        session_id_of: Callable[[T], str | None] | None = None,
    ) -> T:
        """Await ``call`` inside the span ``name``; a verify also records its duration.

        The span is current while ``call`` runs, so the Redis round trip
        (the auto-pipeline's flush included) is its child. Errors set the
        span's status to the error's class name, never its message (which
        may name a user).
        """
        start = time.perf_counter()
        with self.tracer.start_as_current_span(
            name, record_exception=False, set_status_on_exception=False
        ) as span:
            try:
                result = await call
            except Exception as exc:
                self._finish(name, span, start, exc)
                raise
            self._finish(name, span, start, None)
            if session_id_of is not None:
                session_id = session_id_of(result)
                if session_id:
                    span.set_attribute(SESSION_ID_ATTRIBUTE, hash_session_id(session_id))
            return result

    def _finish(self, name: str, span: Span, start: float, exc: Exception | None) -> None:
        if exc is not None:
            span.set_attribute("error.type", type(exc).__name__)
            if not isinstance(exc, AuthenticationError):
                # A refused token is the library working; Redis failing is not.
                span.set_status(self._error_status(type(exc).__name__))
        if name == "redis_jwt.verify":
            outcome = outcome_of(exc)
            span.set_attribute("redis_jwt.outcome", outcome)
            self.verify_duration.record(time.perf_counter() - start, {"outcome": outcome})

    def redis_span(
        self, command: tuple[str | int | bytes, ...], size: int
    ) -> AbstractContextManager[Span]:
        """A client span around one auto-pipelined round trip of ``size`` commands.

        Started in the first caller's context (see pipeline.py), so its parent
        is that caller's span. Only the command's name is recorded: keys and
        arguments name users.
        """
        name = command[0] if size == 1 else "PIPELINE"
        return self.tracer.start_as_current_span(
            "redis_jwt.redis",
            kind=self._client_kind,
            attributes={
                "db.system.name": "redis",
                "db.operation.name": name.decode() if isinstance(name, bytes) else str(name),
                "db.operation.batch.size": size,
            },
        )

    def session_event(self, kind: str, reason: str | None) -> None:
        """Count a session this instance created or ended (``expired``: found by its sweeper)."""
        if kind == "created":
            self.created.add(1)
        elif kind == "destroyed":
            self.ended.add(1, {"reason": reason or "logout"})
        elif kind == "expired":
            self.ended.add(1, {"reason": "expired"})

    def store_error(self, error: BaseException) -> None:
        """Count one failed Redis call."""
        self.store_errors.add(1, {"error.type": type(error).__name__})


class Switch:
    """Where the parts of one ``RedisJWT`` find the telemetry decided at open.

    ``active`` is None (the default, and whenever no SDK is configured) or
    the :class:`Telemetry` to report to. Built before the parts that read it,
    set once by ``RedisJWT.open``.
    """

    __slots__ = ("active",)

    def __init__(self) -> None:
        self.active: Telemetry | None = None

    async def run(
        self,
        name: Traced,
        call: Awaitable[T],
        session_id_of: Callable[[T], str | None] | None = None,
    ) -> T:
        """Await ``call``, inside the span ``name`` when telemetry is on.

        The one line an operation of the facade needs (``refresh`` included:
        ``self._otel.run("redis_jwt.refresh", ..., lambda pair:
        session_id_of_token(pair.access_token))``).
        """
        active = self.active
        if active is None:
            return await call
        return await active.trace(name, call, session_id_of)

    def detect(self) -> None:
        """Decide, once: telemetry on when the API is installed and an SDK provider is set."""
        self.active = detect()


def detect() -> Telemetry | None:
    """A :class:`Telemetry` when ``opentelemetry-api`` is installed and an SDK is configured."""
    try:
        from opentelemetry import metrics, trace
    except ImportError:
        return None
    tracer_provider = trace.get_tracer_provider()
    meter_provider = metrics.get_meter_provider()
    if not (_is_sdk(tracer_provider) or _is_sdk(meter_provider)):
        return None
    return Telemetry(
        tracer_provider.get_tracer(SCOPE, __version__),
        meter_provider.get_meter(SCOPE, __version__),
    )
