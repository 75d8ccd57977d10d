"""What the web adapters share: where the token rides, and what a failure answers.

Framework-free on purpose: :mod:`redis_jwt.starlette` and :mod:`redis_jwt.fastapi`
both build on it, so a header or an error means the same thing through the
middleware and through the dependency.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from .errors import (
    AuthenticationError,
    ConfigurationError,
    InvalidToken,
    MissingToken,
    RedisJWTError,
    SessionNotFound,
    StoreError,
    TokenExpired,
)

__all__ = [
    "EMPTY_BEARER",
    "ENDED",
    "MISSING",
    "RETRY_AFTER_SECONDS",
    "Answer",
    "SessionCookie",
    "answer_for",
    "find_token",
]

#: Seconds a client is told to wait (``Retry-After``) when Redis fails.
RETRY_AFTER_SECONDS = 1

#: No ``Authorization: Bearer`` header and no session cookie.
MISSING = MissingToken("no token in the request")
#: ``Authorization: Bearer`` with nothing after it: a token was meant, so it is invalid.
EMPTY_BEARER = InvalidToken("the bearer token is empty")
#: A WebSocket whose session ended while its handshake was being verified.
ENDED = SessionNotFound("the session ended during the handshake")


@dataclass(frozen=True, slots=True)
class SessionCookie:
    """Where and how the session token rides in a cookie.

    Attributes:
        name: the cookie's name.
        httponly: hide the cookie from JavaScript (keep it on: it stops XSS stealing sessions).
        secure: send the cookie over HTTPS only (browsers also allow it on ``http://localhost``).
        samesite: ``lax`` (default) or ``strict`` block most cross-site requests;
            ``none`` requires ``secure`` and a CSRF defence of your own.
        path: the URL path the cookie is sent for.
        max_age_seconds: the cookie's lifetime; ``None`` makes it a browser-session
            cookie. The server-side session still ends on its own ttl either way.
        domain: the cookie's domain; ``None`` means this host only.
    """

    name: str = "session"
    httponly: bool = True
    secure: bool = True
    samesite: Literal["lax", "strict", "none"] = "lax"
    path: str = "/"
    max_age_seconds: int | None = None
    domain: str | None = None

    def __post_init__(self) -> None:
        if not self.name or not self.name.isascii() or any(c in self.name for c in " ;,=\t\r\n"):
            raise ConfigurationError(f"cookie name {self.name!r} is not a valid cookie name")
        if self.samesite not in ("lax", "strict", "none"):
            raise ConfigurationError("samesite must be 'lax', 'strict' or 'none'")
        if self.samesite == "none" and not self.secure:
            raise ConfigurationError("samesite='none' requires secure=True (browsers refuse it)")


def _cookie_value(header: bytes, name: bytes) -> str | None:
    # The first cookie of that name wins, as in browsers' ordering (most specific path first).
    for part in header.split(b";"):
        key, sep, value = part.partition(b"=")
        if sep and key.strip() == name:
            return value.strip().strip(b'"').decode("latin-1")
    return None


def find_token(headers: Iterable[tuple[bytes, bytes]], cookie_name: bytes | None) -> str | None:
    """Return the token an ASGI request carries, or ``None`` when it carries none.

    ``Authorization: Bearer <token>`` comes first (the scheme is case-insensitive;
    exactly one space separates it from the token, and anything after that space
    is the token, so stray whitespace makes the token invalid rather than being
    guessed away). An ``Authorization`` header of another scheme is not ours and
    is ignored. Then the cookie ``cookie_name``, when given. ``""`` means
    ``Bearer`` was sent with no token.
    """
    cookie: bytes | None = None
    for key, value in headers:
        if key == b"authorization":
            scheme, _sep, credentials = value.partition(b" ")
            if len(scheme) == 6 and scheme.lower() == b"bearer":
                return credentials.decode("latin-1")
        elif key == b"cookie" and cookie_name is not None:
            cookie = value if cookie is None else cookie + b";" + value
    if cookie is not None and cookie_name is not None:
        return _cookie_value(cookie, cookie_name)
    return None


@dataclass(frozen=True, slots=True)
class Answer:
    """The HTTP answer to an authentication or store failure."""

    status: int
    detail: str
    #: Header names are lowercase, as ASGI wants them.
    headers: tuple[tuple[str, str], ...]
    #: The WebSocket close code for the same failure (RFC 6455 section 7.4.1).
    close_code: int
    body: bytes
    #: Every header of the HTTP answer, encoded for ASGI (copy the tuple into a list).
    raw_headers: tuple[tuple[bytes, bytes], ...] = ()

    def __post_init__(self) -> None:
        raw = (
            (b"content-type", b"application/json"),
            *((k.encode(), v.encode()) for k, v in self.headers),
            (b"content-length", str(len(self.body)).encode()),
        )
        object.__setattr__(self, "raw_headers", raw)


_DETAILS: dict[type[RedisJWTError], str] = {
    MissingToken: "Not authenticated",
    TokenExpired: "Token expired",
    InvalidToken: "Invalid token",
    SessionNotFound: "Session ended",
    AuthenticationError: "Not authenticated",
    StoreError: "Session store unavailable, retry later",
}
_ANSWERS: dict[type[RedisJWTError], Answer] = {}


def _build(cls: type[AuthenticationError | StoreError]) -> Answer:
    detail = next(_DETAILS[c] for c in cls.__mro__ if c in _DETAILS)
    body = b'{"detail":"%s"}' % detail.encode()
    if issubclass(cls, AuthenticationError):
        www_error = cls.www_error
        challenge = "Bearer" if www_error is None else f'Bearer error="{www_error}"'
        return Answer(401, detail, (("www-authenticate", challenge),), 1008, body)
    return Answer(503, detail, (("retry-after", str(RETRY_AFTER_SECONDS)),), 1013, body)


def answer_for(exc: AuthenticationError | StoreError) -> Answer:
    """Return the answer for ``exc`` (built once per exception class).

    401s carry ``WWW-Authenticate: Bearer``, with ``error="<www_error>"`` (RFC 6750)
    when the exception names one, that is when a token was sent; 503s carry
    ``Retry-After``. The detail is a fixed phrase per class: nothing the client
    sent is echoed back.
    """
    cls = type(exc)
    answer = _ANSWERS.get(cls)
    if answer is None:
        answer = _ANSWERS[cls] = _build(cls)
    return answer
