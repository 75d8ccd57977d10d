"""The FastAPI session dependencies: token schemes, CSRF rules, verify, WebSocket watch.

Public through :mod:`redis_jwt.fastapi`; a module of its own so that the
ready-made routes (:mod:`redis_jwt._sessions_router`) build on it without an
import cycle.
"""

# No ``from __future__ import annotations``: FastAPI reads these signatures at
# run time, and the dependencies' annotations name local variables.
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Annotated, NoReturn, cast

from fastapi import HTTPException, Security, WebSocketException
from fastapi.openapi.models import APIKey, APIKeyIn
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase
from starlette.requests import HTTPConnection
from starlette.websockets import WebSocket, WebSocketDisconnect

from ._core import RedisJWT
from ._csrf import parse_origins
from ._watch import SessionWatch, WatchedSocket
from ._web import (
    CSRF_FAILED,
    EMPTY_BEARER,
    MISSING,
    Credentials,
    SessionCookie,
    _cookie_value,
    admit_handshake,
    answer_for,
    csrf_refused,
    find_token,
)
from ._web_compat import socket_channels
from .errors import AuthenticationError, CSRFError, StoreError
from .models import Session
from .starlette import VERIFIED_BY

__all__ = [
    "BearerToken",
    "CookieToken",
    "Failure",
    "Guard",
    "failure_for",
    "optional_session",
    "require_session",
]

#: What the adapters answer: 401, 503 or 403.
Failure = AuthenticationError | StoreError | CSRFError


class BearerToken(SecurityBase):
    """The token of a request, declared in OpenAPI as an HTTP Bearer scheme.

    A dependency returning the raw token (``None`` when the request carries none,
    ``""`` for ``Bearer`` with nothing after it). It never fails by itself;
    :func:`require_session` and :func:`optional_session` build on it.

    Args:
        cookie: also read the token from this cookie (after the header).
        scheme_name: the scheme's name in OpenAPI.
    """

    def __init__(self, cookie: SessionCookie | None = None, scheme_name: str = "RedisJWT") -> None:
        self.model = HTTPBearerModel(
            bearerFormat="JWT", description="A session token from redis-jwt."
        )
        self.scheme_name = scheme_name
        self._cookie = None if cookie is None else cookie.name.encode("latin-1")

    async def __call__(self, connection: HTTPConnection) -> str | None:
        return find_token(connection.scope["headers"], self._cookie)


class CookieToken(SecurityBase):
    """The session cookie's token, declared in OpenAPI as an API key in a cookie.

    A dependency returning the cookie's value, or ``None`` when the request has
    no such cookie. It never fails by itself.

    Args:
        cookie: the session cookie's settings.
        scheme_name: the scheme's name in OpenAPI.
    """

    def __init__(self, cookie: SessionCookie, scheme_name: str = "RedisJWTCookie") -> None:
        description = "A session token from redis-jwt in a cookie."
        if cookie.csrf:
            description += f" Unsafe methods also need the {cookie.csrf_header} header."
        self.model = APIKey(
            **{"in": APIKeyIn.cookie},  # type: ignore[arg-type]  # ``in`` is a keyword
            name=cookie.name,
            description=description,
        )
        self.scheme_name = scheme_name
        self._name = cookie.name.encode("latin-1")

    async def __call__(self, connection: HTTPConnection) -> str | None:
        header = b";".join(v for k, v in connection.scope["headers"] if k == b"cookie")
        return _cookie_value(header, self._name) if header else None


def failure_for(connection: HTTPConnection, exc: Failure) -> Exception:
    """The exception FastAPI answers ``exc`` with: an HTTP one, or a WebSocket close."""
    answer = answer_for(exc)
    if connection.scope["type"] == "websocket":
        return WebSocketException(code=answer.close_code, reason=answer.detail)
    return HTTPException(answer.status, answer.detail, headers=dict(answer.headers) or None)


async def _refuse(connection: HTTPConnection, exc: Failure) -> NoReturn:
    if isinstance(connection, WebSocket):
        # Accept, then close: a close before accepting is an HTTP 403 on the
        # wire, and the client must see the close code (1008, or 1013 to retry).
        with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
            await connection.accept()
    raise failure_for(connection, exc) from None


class Guard:
    """What one dependency checks: the CSRF rules, the verify, the watch of its sockets."""

    __slots__ = ("_auth", "_csrf_header", "_trusted", "_watch", "_with")

    def __init__(
        self,
        auth: RedisJWT,
        with_session: bool,
        cookie: SessionCookie | None,
        trusted_origins: Iterable[str],
    ) -> None:
        self._auth = auth
        self._with = with_session
        self._csrf_header = cookie.csrf_header if cookie is not None and cookie.csrf else None
        self._trusted = parse_origins(trusted_origins)
        self._watch = SessionWatch(auth.events)

    def credentials(
        self, connection: HTTPConnection, header: str | None, cookie: str | None
    ) -> Credentials:
        """The request's token, where it came from, and what the CSRF checks need."""
        if header is not None or cookie is None:
            return Credentials(header, False, None, None, None)
        if self._csrf_header is None:  # CSRF checks off: nothing more to read
            return Credentials(cookie, True, None, None, None)
        headers = connection.headers
        return Credentials(
            cookie, True, headers.get(self._csrf_header), headers.get("origin"), headers.get("host")
        )

    def check_csrf(self, connection: HTTPConnection, found: Credentials) -> None:
        """Raise the 403 (or close 1008) when a cookie-authenticated request fails CSRF."""
        if self._csrf_header is None:
            return
        method = connection.scope.get("method") if connection.scope["type"] == "http" else None
        if csrf_refused(found, method, self._trusted):
            raise failure_for(connection, CSRF_FAILED)

    async def http(self, connection: HTTPConnection, found: Credentials) -> Session:
        """Verify an HTTP request's token (CSRF first: a forgery costs no round trip).

        Behind :class:`~redis_jwt.starlette.RedisJWTMiddleware` of the same
        ``RedisJWT``, the session the middleware verified for this very request
        is reused (no second verify), unless this dependency needs the
        ``data_session`` the middleware did not load.
        """
        self.check_csrf(connection, found)
        state = connection.scope.get("state")
        if state and state.get(VERIFIED_BY) is self._auth and found.token:
            user = state.get("user")
            if isinstance(user, Session) and (not self._with or user.data_session is not None):
                return user
        token = found.token
        failure: Failure
        if token:
            try:
                return await self._auth.verify(token, with_session=self._with)
            except (AuthenticationError, StoreError) as exc:
                failure = exc
        else:
            failure = MISSING if token is None else EMPTY_BEARER
        raise failure_for(connection, failure) from None

    @contextlib.asynccontextmanager
    async def websocket(self, socket: WebSocket, found: Credentials) -> AsyncIterator[Session]:
        """Verify a handshake's token, then close the socket with 1008 when its session ends."""
        token = found.token
        if self._csrf_header is not None and csrf_refused(found, None, self._trusted):
            await _refuse(socket, CSRF_FAILED)
        admitted = await admit_handshake(
            self._watch,
            self._auth.verify,
            token,
            self._with,
            lambda: socket_channels(socket, WatchedSocket),
        )
        if isinstance(admitted, tuple):
            async with self._watch.watched(*admitted) as session:
                yield session
            return
        await _refuse(socket, admitted)


class _HeaderSession(SecurityBase):
    """The dependency when tokens ride in the ``Authorization`` header only.

    It is its own OpenAPI Bearer scheme (the same as :class:`BearerToken`'s), so
    FastAPI solves one dependency per request instead of two (the token
    sub-dependency costs about as much as the verify itself).
    """

    def __init__(self, guard: Guard, optional: bool, scheme_name: str = "RedisJWT") -> None:
        self.model = BearerToken().model
        self.scheme_name = scheme_name
        self._guard = guard
        self._optional = optional

    async def __call__(self, connection: HTTPConnection) -> AsyncIterator[Session | None]:
        token = find_token(connection.scope["headers"], None)
        if token is None and self._optional:
            yield None
        elif isinstance(connection, WebSocket):
            found = Credentials(token, False, None, None, None)
            async with self._guard.websocket(connection, found) as session:
                yield session
        else:
            yield await self._guard.http(connection, Credentials(token, False, None, None, None))


def _dependency(
    auth: RedisJWT,
    *,
    optional: bool,
    with_session: bool,
    cookie: SessionCookie | None,
    trusted_origins: Iterable[str],
) -> Callable[..., AsyncIterator[Session | None]]:
    guard = Guard(auth, with_session, cookie, trusted_origins)
    if cookie is None:
        return _HeaderSession(guard, optional)

    bearer = BearerToken()
    in_cookie = CookieToken(cookie)

    # Two security schemes (header and cookie): FastAPI reads them from the signature.
    async def from_header_or_cookie(
        connection: HTTPConnection,
        token: Annotated[str | None, Security(bearer)],
        cookie_token: Annotated[str | None, Security(in_cookie)],
    ) -> AsyncIterator[Session | None]:
        found = guard.credentials(connection, token, cookie_token)
        if found.token is None and optional:
            yield None
        elif isinstance(connection, WebSocket):
            async with guard.websocket(connection, found) as session:
                yield session
        else:
            yield await guard.http(connection, found)

    return from_header_or_cookie


def require_session(
    auth: RedisJWT,
    *,
    with_session: bool = False,
    cookie: SessionCookie | None = None,
    trusted_origins: Iterable[str] = (),
) -> Callable[..., AsyncIterator[Session]]:
    """Return a dependency that yields the request's live :class:`~redis_jwt.Session`.

    Create it once and reuse it (``current = require_session(auth)``), so that
    FastAPI verifies once per request however many times it is used.

    Args:
        auth: the session manager.
        with_session: also load the private ``data_session``.
        cookie: also read the token from this cookie (shown in OpenAPI as an
            API key in a cookie). With ``cookie.csrf`` (the default), an unsafe
            request authenticated by the cookie needs the CSRF value in the
            ``X-CSRF-Token`` header (else 403), and a WebSocket handshake
            authenticated by it a trusted ``Origin`` (else close 1008).
        trusted_origins: origins besides the request's own host whose pages may
            open cookie-authenticated WebSockets.

    On HTTP the dependency raises ``HTTPException(401)`` (missing or bad token),
    ``HTTPException(403)`` (CSRF) or ``HTTPException(503)`` (Redis failing). On a
    WebSocket route it accepts the handshake and closes it with 1008 (1013 when
    Redis fails), so the client sees the code; and it closes an open socket with
    1008 when its session ends, as :class:`~redis_jwt.starlette.RedisJWTMiddleware` does.
    """
    return cast(
        Callable[..., AsyncIterator[Session]],
        _dependency(
            auth,
            optional=False,
            with_session=with_session,
            cookie=cookie,
            trusted_origins=trusted_origins,
        ),
    )


def optional_session(
    auth: RedisJWT,
    *,
    with_session: bool = False,
    cookie: SessionCookie | None = None,
    trusted_origins: Iterable[str] = (),
) -> Callable[..., AsyncIterator[Session | None]]:
    """Like :func:`require_session`, but a request without a token yields ``None``.

    A token that is sent and bad is still a 401: a client that believes it is
    logged in must learn that it is not. The CSRF rules apply as soon as a
    cookie carries a token.
    """
    return _dependency(
        auth,
        optional=True,
        with_session=with_session,
        cookie=cookie,
        trusted_origins=trusted_origins,
    )
