"""The options of :class:`~redis_jwt.RedisJWT`, declared once.

:class:`Options` is the one declaration: ``RedisJWT(...)`` builds one from its
keywords, ``RedisJWT.from_settings`` builds one from the
:class:`~redis_jwt.Settings` fields of the same names (``REDIS_JWT_<NAME>``),
and :meth:`Options.check` turns it into the checked values the library runs
on (:class:`Resolved`). tests/test_options.py keeps the constructor, the
options and the settings in step.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from ._backend import PairRules, SessionRules
from ._duration import Duration, parse_duration
from ._node_sessions import check_node_options
from .errors import ConfigurationError
from .keys import Key, KeyRing, as_key_ring
from .settings import Settings

if TYPE_CHECKING:
    from ._redis.store import AnyRedis

__all__ = ["Options", "Resolved", "options_from_settings", "settings_keywords"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Options:
    """Every keyword of ``RedisJWT(...)``, with its default (documented there)."""

    secret: str | bytes | None = None
    keys: KeyRing | Key | Iterable[Key] | Mapping[str, Any] | None = None
    layout: Literal["v1", "redis-jwt"] = "v1"
    redis_url: str | None = None
    redis: AnyRedis | None = None
    ttl: Duration = "1 day"
    max_age: Duration = "30 days"
    sliding: bool = False
    multiple: bool = True
    max_sessions: int | None = None
    prefix: str = "rjwt"
    kea: bool = False
    listen: bool = False
    leeway: Duration | float = 0
    issuer: str | None = None
    audience: str | None = None
    algorithm: str = "HS256"
    timeout_seconds: float = 0.5
    retries: int = 1
    max_token_bytes: int = 8192
    local_cache: bool = False
    wait_replicas: int = 0
    wait_timeout_seconds: float = 0.1
    access_ttl: Duration = "15 minutes"
    refresh_grace: Duration | float = "10 seconds"
    track_activity: bool = False
    activity_resolution: Duration | float = "60 seconds"

    def check(self) -> Resolved:
        """Check every option; return the values the library runs on.

        Raises:
            ConfigurationError: saying which option is wrong and how to fix it.
        """
        if self.secret is None and self.keys is None:
            raise ConfigurationError(
                "no signing key: pass exactly one of secret= (at least 32 random bytes) or keys= "
                "(a key set); "
                "RedisJWT.from_settings reads them from REDIS_JWT_SECRET or REDIS_JWT_KEYS"
            )
        if self.secret is not None and self.keys is not None:
            raise ConfigurationError("pass exactly one of secret= or keys=, not both")
        ring = (
            as_key_ring(self.keys)
            if self.keys is not None
            else KeyRing.from_secret(self.secret, self.algorithm)
        )
        if self.layout not in ("v1", "redis-jwt"):
            raise ConfigurationError(f"layout must be 'v1' or 'redis-jwt', got {self.layout!r}")
        if self.redis is not None and self.redis_url is not None:
            raise ConfigurationError("pass redis_url= or redis=, not both")
        ttl = parse_duration(self.ttl, name="ttl")
        max_age = parse_duration(self.max_age, name="max_age")
        max_sessions = self.max_sessions
        if max_sessions is not None and (
            isinstance(max_sessions, bool) or not isinstance(max_sessions, int) or max_sessions < 1
        ):
            raise ConfigurationError(f"max_sessions must be a positive int, got {max_sessions!r}")
        if not self.multiple and max_sessions not in (None, 1):
            raise ConfigurationError("multiple=False means max_sessions=1; pass one or the other")
        if not 0 < self.timeout_seconds <= 60 or not 0 <= self.retries <= 10:
            raise ConfigurationError("timeout_seconds must be in (0, 60] and retries in [0, 10]")
        wait_replicas = self.wait_replicas
        if (
            isinstance(wait_replicas, bool)
            or not isinstance(wait_replicas, int)
            or not 0 <= wait_replicas <= 100
            or not 0 < self.wait_timeout_seconds <= 10
        ):
            raise ConfigurationError(
                "wait_replicas must be an int in [0, 100] and wait_timeout_seconds in (0, 10]"
            )
        v1 = self.layout == "v1"
        if wait_replicas and not v1:
            raise ConfigurationError("wait_replicas needs layout v1")
        leeway = self.leeway
        if isinstance(leeway, int | float) and not isinstance(leeway, bool) and leeway >= 0:
            leeway_seconds = float(leeway)
        else:
            leeway_seconds = parse_duration(leeway, name="leeway")
        if not v1:
            check_node_options(
                keys=ring,
                max_sessions=max_sessions,
                multiple=self.multiple,
                kea=self.kea,
                issuer=self.issuer,
                audience=self.audience,
            )
        listening = bool(self.listen) or bool(self.kea)
        if listening and not v1:
            raise ConfigurationError(
                "listen=True and kea=True need layout v1: layout='redis-jwt' has no events "
                "channel nor expiry schedule"
            )
        if self.local_cache and not v1:
            raise ConfigurationError("local_cache=True needs layout v1")
        pairs = PairRules(
            access_seconds=parse_duration(self.access_ttl, name="access_ttl"),
            grace_ms=_grace_ms(self.refresh_grace),
        )
        activity_resolution = _resolution_seconds(self.activity_resolution)
        if self.track_activity and not v1:
            raise ConfigurationError(
                "track_activity=True needs layout v1: the Node layout has no place for it"
            )
        return Resolved(
            options=self,
            keys=ring,
            rules=SessionRules(ttl, max_age),
            limit=1 if not self.multiple else (max_sessions or 0),
            leeway_seconds=leeway_seconds,
            listening=listening,
            wait_timeout_ms=max(1, round(self.wait_timeout_seconds * 1000)),
            pairs=pairs,
            activity_resolution_seconds=activity_resolution,
        )


@dataclass(frozen=True, slots=True)
class Resolved:
    """Checked options, in the units the library runs on."""

    options: Options
    keys: KeyRing
    rules: SessionRules
    #: Sessions kept per user (0: no limit).
    limit: int
    leeway_seconds: float
    #: Whether the events listener runs (``listen`` or ``kea``).
    listening: bool
    wait_timeout_ms: int
    #: Lifetimes of refresh pairs.
    pairs: PairRules
    #: How stale a last-seen time may be (``track_activity``).
    activity_resolution_seconds: float = 60.0


def _grace_ms(value: object) -> int:
    """``refresh_grace`` in ms: a duration, or a number of seconds (0: no grace)."""
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not 0 <= value <= 3600:
            raise ConfigurationError(f"refresh_grace={value!r} must be between 0 and 3600 seconds")
        return round(value * 1000)
    if isinstance(value, str) and value.strip() in ("0", "0s", "0 seconds"):
        return 0
    seconds = parse_duration(value, name="refresh_grace")
    if seconds > 3600:
        raise ConfigurationError(f"refresh_grace={value!r} must be at most 1 hour")
    return seconds * 1000


def _resolution_seconds(value: object) -> float:
    # Sub-second resolutions are allowed (tests, dashboards that want it live).
    if isinstance(value, timedelta) and value.total_seconds() > 0:
        return value.total_seconds()
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return float(parse_duration(value, name="activity_resolution"))


def settings_keywords(
    settings: Settings | None,
    key_prefix: str | None,
    env_prefix: str | None,
    overrides: dict[str, Any],
) -> dict[str, Any]:
    """The keywords of ``RedisJWT.from_settings(...)`` (see its docstring) for the constructor."""
    if "prefix" in overrides:
        warnings.warn(
            "RedisJWT.from_settings(prefix=...) sets the Redis key prefix; pass "
            "key_prefix= instead (or env_prefix= for the variables' prefix)",
            DeprecationWarning,
            stacklevel=3,
        )
        former = overrides.pop("prefix")
        key_prefix = former if key_prefix is None else key_prefix
    if env_prefix is not None:
        if settings is not None:
            raise ConfigurationError("pass settings or env_prefix=, not both")
        settings = Settings(_env_prefix=env_prefix)  # type: ignore[call-arg]
    if key_prefix is not None:
        overrides["prefix"] = key_prefix
    variables = env_prefix or "REDIS_JWT_"
    return options_from_settings(settings or Settings(), overrides, variables)


def options_from_settings(
    settings: Settings, overrides: Mapping[str, Any], variables: str = "REDIS_JWT_"
) -> dict[str, Any]:
    """The keywords of ``RedisJWT(...)`` from ``settings`` (fields of the same names) and
    ``overrides`` (which win); ``variables`` is the prefix the messages name."""
    names = {f.name for f in fields(Options)}
    values: dict[str, Any] = {}
    for name in type(settings).model_fields:
        if name in names:
            value = getattr(settings, name)
            values[name] = value.get_secret_value() if hasattr(value, "get_secret_value") else value
    if values.get("keys") is not None:
        if values.get("secret") is not None:
            raise ConfigurationError("set REDIS_JWT_SECRET or REDIS_JWT_KEYS, not both")
        values["keys"] = KeyRing.from_jwks(values["keys"], signing=settings.signing_kid)
    values.update(overrides)
    # What the overrides bring replaces what the environment said.
    if values.get("redis") is not None:
        values.pop("redis_url", None)
    if values.get("keys") is not None:
        values.pop("secret", None)
    if values.get("secret") is None and values.get("keys") is None:
        raise ConfigurationError(
            f"no signing key: set {variables}SECRET (an HMAC secret of at least 32 random "
            f"bytes) or {variables}KEYS (a JWK Set, as JSON or a file path), "
            "or pass secret= or keys= to from_settings"
        )
    return values
