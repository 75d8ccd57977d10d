"""The exceptions redis-jwt raises on purpose.

Everything derives from :class:`RedisJWTError`. Three branches map to HTTP
answers, one to programmer misuse::

    RedisJWTError                  root of everything raised on purpose
    ├── AuthenticationError        401: the client must log in again
    │   ├── MissingToken           no token in the request
    │   ├── InvalidToken           malformed, bad signature, wrong alg/kid/aud/iss, too large
    │   │   ├── TokenExpired       the JWT ``exp`` has passed
    │   │   └── RefreshTokenReused a spent refresh token came back after the grace
    │   └── SessionNotFound        the JWT is fine but its session is gone
    ├── StoreError                 503: Redis failed; retrying later may work
    │   ├── StoreUnavailable       cannot connect, connection lost, AUTH refused
    │   └── StoreTimeout           Redis did not answer within the configured timeout
    ├── CSRFError                  403: a cookie-authenticated unsafe request without its CSRF token
    └── ConfigurationError         misuse at start-up or in a call (weak secret, bad ttl, ...)
        └── InvalidUserId          400 in the web adapters: an empty or too long user id

Redis client errors are translated into :class:`StoreError` at one boundary
(the store module) and chained (``raise ... from exc``), so the original error
stays visible in tracebacks and logs.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "CSRFError",
    "ConfigurationError",
    "InvalidToken",
    "InvalidUserId",
    "MissingToken",
    "RedisJWTError",
    "RefreshTokenReused",
    "SessionNotFound",
    "StoreError",
    "StoreTimeout",
    "StoreUnavailable",
    "TokenExpired",
]


class RedisJWTError(Exception):
    """Root of every exception redis-jwt raises on purpose."""

    #: The HTTP status a web adapter answers with, or ``None`` for misuse.
    status_code: int | None = None


class AuthenticationError(RedisJWTError):
    """The request does not carry a live session: the client must log in again (401)."""

    status_code = 401
    #: RFC 6750 error code for the ``WWW-Authenticate`` header, if any.
    www_error: str | None = "invalid_token"


class MissingToken(AuthenticationError):
    """No token was given (empty string, no ``Authorization`` header, no cookie)."""

    www_error = None


class InvalidToken(AuthenticationError):
    """The token is malformed, too large, badly signed, or of a wrong alg, key, issuer, audience."""


class TokenExpired(InvalidToken):
    """The token's ``exp`` claim has passed: the session reached its absolute lifetime."""


class RefreshTokenReused(InvalidToken):
    """A spent refresh token came back after the grace: its session was ended as stolen."""


class SessionNotFound(AuthenticationError):
    """The token is genuine but its session is gone (logged out, evicted, revoked, idle-expired)."""


class StoreError(RedisJWTError):
    """Redis failed; the request may succeed later (503)."""

    status_code = 503


class StoreUnavailable(StoreError):
    """Redis cannot be reached: connection refused or lost, AUTH refused, cluster down, failover."""


class StoreTimeout(StoreError):
    """Redis did not answer within the configured timeout."""


class CSRFError(RedisJWTError):
    """A cookie-authenticated unsafe request lacked the session's CSRF token (403)."""

    status_code = 403


class ConfigurationError(RedisJWTError, ValueError):
    """The library was configured or called wrongly; the message says how to fix it."""


class InvalidUserId(ConfigurationError):
    """A user id that cannot name a user (empty, not a str, over 512 bytes).

    Still a :class:`ConfigurationError` (code that passes one is wrong), but
    the id often comes from a request (a login form), so the web adapters'
    error handlers answer it with a 400 instead of letting it become a 500.
    """

    status_code = 400
