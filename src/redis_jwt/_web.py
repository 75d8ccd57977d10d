"""What the web adapters share: where the token rides, and what a failure answers.

Framework-free on purpose: :mod:`redis_jwt.starlette` and :mod:`redis_jwt.fastapi`
both build on it, so a header or an error means the same thing through the
middleware and through the dependency.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from ._asgi import Receive, Send
from ._csrf import SAFE_METHODS, Origin, csrf_valid, is_local_host, origin_trusted
from ._watch import ENDED, SessionWatch, WatchedSocket
from .errors import (
    AuthenticationError,
    ConfigurationError,
    CSRFError,
    InvalidToken,
    MissingToken,
    RedisJWTError,
    SessionNotFound,
    StoreError,
    TokenExpired,
)
from .models import Session

__all__ = [
    "CSRF_FAILED",
    "EMPTY_BEARER",
    "ENDED",
    "MISSING",
    "RETRY_AFTER_SECONDS",
    "Answer",
    "Credentials",
    "SessionCookie",
    "admit_handshake",
    "answer_for",
    "csrf_refused",
    "find_token",
    "read_credentials",
    "refuse_handshake",
    "serve_handshake",
]

#: Seconds a client is told to wait (``Retry-After``) when Redis fails.
RETRY_AFTER_SECONDS = 1

#: No ``Authorization: Bearer`` header and no session cookie.
MISSING = MissingToken("no token in the request")
#: ``Authorization: Bearer`` with nothing after it: a token was meant, so it is invalid.
EMPTY_BEARER = InvalidToken("the bearer token is empty")
#: A WebSocket whose session ended while its handshake was being verified.
#: A cookie-authenticated unsafe request without the CSRF value, or a foreign-origin handshake.
CSRF_FAILED = CSRFError("the CSRF token is missing or wrong, or the origin is not trusted")


def _valid_name(name: str) -> bool:
    return bool(name) and name.isascii() and not any(c in name for c in ' ;,=\t\r\n:()<>@"/[]?{}')


@dataclass(frozen=True, slots=True)
class SessionCookie:
    """Where and how the session token rides in a cookie, and its CSRF defence.

    Attributes:
        name: the cookie's name.
        httponly: hide the cookie from JavaScript (keep it on: it stops XSS stealing sessions).
        secure: send the cookie over HTTPS only. ``None`` (default) decides per
            request: ``Secure``, except for a request over plain ``http`` to a
            local host (``localhost``, a loopback address, or a single-label name
            such as the test clients' ``testserver``), so development servers and
            test clients work while every public site gets ``Secure``.
        samesite: ``lax`` (default) or ``strict`` block most cross-site requests;
            ``none`` requires ``secure=True``.
        path: the URL path the cookie is sent for.
        max_age_seconds: the cookie's lifetime; ``None`` makes it a browser-session
            cookie. The server-side session still ends on its own ttl either way.
        domain: the cookie's domain; ``None`` means this host only.
        csrf: require the CSRF value (header ``csrf_header``) on every unsafe
            request authenticated by this cookie, and a trusted ``Origin`` on
            WebSocket handshakes authenticated by it.
        csrf_name: the name of the readable cookie that carries the CSRF value
            to the page's JavaScript.
        csrf_header: the request header that must carry the CSRF value.
    """

    name: str = "session"
    httponly: bool = True
    secure: bool | None = None
    samesite: Literal["lax", "strict", "none"] = "lax"
    path: str = "/"
    max_age_seconds: int | None = None
    domain: str | None = None
    csrf: bool = True
    csrf_name: str = "csrf_token"
    csrf_header: str = "X-CSRF-Token"

    def __post_init__(self) -> None:
        for what, name in (("cookie", self.name), ("CSRF cookie", self.csrf_name)):
            if not _valid_name(name):
                raise ConfigurationError(f"{what} name {name!r} is not a valid cookie name")
        if self.csrf and self.csrf_name == self.name:
            raise ConfigurationError("csrf_name must differ from the session cookie's name")
        if not _valid_name(self.csrf_header):
            raise ConfigurationError(f"csrf_header {self.csrf_header!r} is not a header name")
        if self.samesite not in ("lax", "strict", "none"):
            raise ConfigurationError("samesite must be 'lax', 'strict' or 'none'")
        if self.samesite == "none" and self.secure is not True:
            raise ConfigurationError("samesite='none' requires secure=True (browsers refuse it)")

    def secure_for(self, scheme: str | None, host: str | None) -> bool:
        """Whether the cookie is ``Secure`` on a response to a request of ``scheme`` and ``Host``.

        ``scheme``/``host`` are ``None`` when the request is unknown: then ``Secure``.
        """
        if self.secure is not None:
            return self.secure
        return not (scheme in ("http", "ws") and is_local_host(host))


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
class Credentials:
    """What a request carries to authenticate: its token and where it came from."""

    #: The token (``None``: none sent; ``""``: ``Bearer`` with nothing after it).
    token: str | None
    #: The token came from the session cookie (not from ``Authorization``).
    via_cookie: bool
    #: The CSRF header's value.
    csrf: str | None
    #: The ``Origin`` header.
    origin: str | None
    #: The ``Host`` header.
    host: str | None


def read_credentials(
    headers: Iterable[tuple[bytes, bytes]], cookie_name: bytes, csrf_header: bytes
) -> Credentials:
    """Read a request's token as :func:`find_token` does, and what the CSRF checks need.

    ``csrf_header`` is lowercase, as ASGI header names are.
    """
    bearer: bytes | None = None
    cookie = csrf = origin = host = None
    for key, value in headers:
        if key == b"authorization":
            scheme, _sep, credentials = value.partition(b" ")
            if bearer is None and len(scheme) == 6 and scheme.lower() == b"bearer":
                bearer = credentials
        elif key == b"cookie":
            cookie = value if cookie is None else cookie + b";" + value
        elif key == csrf_header:
            csrf = value if csrf is None else csrf
        elif key == b"origin":
            origin = value if origin is None else origin
        elif key == b"host":
            host = value if host is None else host
    token: str | None = None
    from_cookie = False
    if bearer is not None:
        token = bearer.decode("latin-1")
    elif cookie is not None:
        token = _cookie_value(cookie, cookie_name)
        from_cookie = token is not None
    return Credentials(
        token,
        from_cookie,
        None if csrf is None else csrf.decode("latin-1"),
        None if origin is None else origin.decode("latin-1"),
        None if host is None else host.decode("latin-1"),
    )


def csrf_refused(credentials: Credentials, method: str | None, trusted: frozenset[Origin]) -> bool:
    """Whether a cookie-authenticated request fails the CSRF checks (``method=None``: a handshake).

    Only a non-empty token that came from the cookie is judged: a header token
    is exempt (a cross-site page cannot set ``Authorization``). An HTTP request
    of an unsafe method needs the CSRF value; a WebSocket handshake that names an
    ``Origin`` needs a trusted one (no ``Origin``: not a browser, judged by its
    token alone).
    """
    token = credentials.token
    if not token or not credentials.via_cookie:
        return False
    if method is None:
        origin = credentials.origin
        return origin is not None and not origin_trusted(origin, credentials.host, trusted)
    return method not in SAFE_METHODS and not csrf_valid(token, credentials.csrf)


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
    CSRFError: "CSRF check failed",
}
_ANSWERS: dict[type[RedisJWTError], Answer] = {}


def _build(cls: type[AuthenticationError | StoreError | CSRFError]) -> Answer:
    detail = next(_DETAILS[c] for c in cls.__mro__ if c in _DETAILS)
    body = b'{"detail":"%s"}' % detail.encode()
    if issubclass(cls, CSRFError):
        # 1008 "policy violation": a handshake from an origin that may not use the cookie.
        return Answer(403, detail, (), 1008, body)
    if issubclass(cls, AuthenticationError):
        www_error = cls.www_error
        challenge = "Bearer" if www_error is None else f'Bearer error="{www_error}"'
        return Answer(401, detail, (("www-authenticate", challenge),), 1008, body)
    return Answer(503, detail, (("retry-after", str(RETRY_AFTER_SECONDS)),), 1013, body)


def answer_for(exc: AuthenticationError | StoreError | CSRFError) -> Answer:
    """Return the answer for ``exc`` (built once per exception class).

    401s carry ``WWW-Authenticate: Bearer``, with ``error="<www_error>"`` (RFC 6750)
    when the exception names one, that is when a token was sent; 503s carry
    ``Retry-After``; a :class:`~redis_jwt.errors.CSRFError` is a 403 (close code
    1008 on a WebSocket). The detail is a fixed phrase per class: nothing the client
    sent is echoed back.
    """
    cls = type(exc)
    answer = _ANSWERS.get(cls)
    if answer is None:
        answer = _ANSWERS[cls] = _build(cls)
    return answer


async def refuse_handshake(
    receive: Receive, send: Send, failure: AuthenticationError | StoreError | CSRFError
) -> None:
    """Refuse a WebSocket handshake: a close before the accept (ASGI spec).

    The server answers the handshake with an HTTP 403; the connect message comes first.
    """
    answer = answer_for(failure)
    if (await receive())["type"] == "websocket.connect":
        await send({"type": "websocket.close", "code": answer.close_code, "reason": answer.detail})


async def admit_handshake(
    watch: SessionWatch,
    verify: Callable[..., Awaitable[Session]],
    token: str | None,
    with_session: bool,
    socket: Callable[[], WatchedSocket],
) -> tuple[Session, WatchedSocket] | AuthenticationError | StoreError:
    """Verify a handshake's token (``None``: none was sent) and watch its socket."""
    if not token:
        return MISSING if token is None else EMPTY_BEARER
    return await watch.admit(verify, token, with_session, socket)


async def serve_handshake(
    watch: SessionWatch,
    verify: Callable[..., Awaitable[Session]],
    token: str | None,
    with_session: bool,
    channels: tuple[Receive, Send],
    serve: Callable[[Session, Receive, Send], Awaitable[None]],
) -> None:
    """Admit a raw ASGI handshake and ``serve`` it while it is watched, or refuse it."""
    receive, send = channels
    admitted = await admit_handshake(
        watch, verify, token, with_session, lambda: WatchedSocket(receive, send)
    )
    if isinstance(admitted, tuple):
        async with watch.watched(*admitted) as session:
            await serve(session, admitted[1].receive, admitted[1].send)
        return
    await refuse_handshake(receive, send, admitted)
