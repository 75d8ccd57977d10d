"""Configuration from the environment: ``Settings`` reads ``REDIS_JWT_*`` variables."""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    """Every option of :class:`~redis_jwt.RedisJWT`, read from ``REDIS_JWT_<NAME>``.

    Each field has the name of the constructor keyword it feeds (the options
    are declared once, in ``redis_jwt._options.Options``); ``keys`` and
    ``signing_kid`` together make the key set.

    Example::

        REDIS_JWT_SECRET=... REDIS_JWT_REDIS_URL=redis://cache:6379/0 REDIS_JWT_TTL="15 minutes"

    then ``RedisJWT.from_settings(Settings())``. Values are checked by
    :class:`~redis_jwt.RedisJWT`, which raises
    :class:`~redis_jwt.errors.ConfigurationError` for bad ones.
    """

    model_config = SettingsConfigDict(
        env_prefix="REDIS_JWT_", extra="ignore", populate_by_name=True
    )

    secret: SecretStr | None = None
    #: A JWK Set: its JSON text, or the path of a JSON file (``REDIS_JWT_KEYS``).
    keys: SecretStr | None = None
    #: The ``kid`` of the signing key of ``keys`` (default: the set's first key).
    signing_kid: str | None = None
    #: ``v1`` or ``redis-jwt`` (checked by :class:`~redis_jwt.RedisJWT`).
    layout: str = "v1"
    redis_url: str = "redis://127.0.0.1:6379/0"
    ttl: str = "1 day"
    max_age: str = "30 days"
    sliding: bool = False
    multiple: bool = True
    max_sessions: int | None = None
    prefix: str = "rjwt"
    kea: bool = False
    listen: bool = False
    #: Clock skew tolerated on ``exp``/``iat``, in seconds (``REDIS_JWT_LEEWAY``; the
    #: former name ``REDIS_JWT_LEEWAY_SECONDS`` still works).
    leeway: float = Field(
        default=0,
        validation_alias=AliasChoices("REDIS_JWT_LEEWAY", "REDIS_JWT_LEEWAY_SECONDS"),
    )

    @model_validator(mode="before")
    @classmethod
    def _former_names(cls, data: Any) -> Any:
        # Settings(leeway_seconds=...) keeps working: the field's former name.
        if isinstance(data, dict) and ("leeway" in data or "leeway_seconds" in data):
            # The environment brings its values under the variable names: a keyword
            # (by field name) wins over them, whatever pydantic's alias priority.
            data = {k: v for k, v in data.items() if not k.upper().startswith("REDIS_JWT_LEEWAY")}
            if "leeway_seconds" in data:
                data["leeway"] = data.pop("leeway_seconds")
        return data

    issuer: str | None = None
    audience: str | None = None
    algorithm: str = "HS256"
    timeout_seconds: float = 0.5
    retries: int = 1
    max_token_bytes: int = 8192
    #: Remember live sessions locally, invalidated by Redis (``RedisJWT(local_cache=True)``).
    local_cache: bool = False
    #: Replicas that must confirm each destroy (``RedisJWT(wait_replicas=...)``); 0: don't wait.
    wait_replicas: int = 0
    #: How long to wait for them (``RedisJWT(wait_timeout_seconds=...)``).
    wait_timeout_seconds: float = 0.1
    #: Longest lifetime of the access token of a refresh pair (``RedisJWT(access_ttl=...)``).
    access_ttl: str = "15 minutes"
    #: How long a spent refresh token still continues its chain (``RedisJWT(refresh_grace=...)``).
    refresh_grace: str = "10 seconds"
    #: Keep each session's last-seen time (``RedisJWT(track_activity=...)``).
    track_activity: bool = False
    #: How stale it may be (``RedisJWT(activity_resolution=...)``).
    activity_resolution: str = "60 seconds"

    @property
    def leeway_seconds(self) -> float:
        """The former name of :attr:`leeway`."""
        return self.leeway
