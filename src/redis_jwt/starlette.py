"""Pure ASGI middleware for Starlette (and any ASGI app): every request carries a live session.

    from redis_jwt.starlette import RedisJWTMiddleware

    app = Starlette(routes=..., middleware=[
        Middleware(RedisJWTMiddleware, auth=auth, exclude=("/login", "/health")),
    ])

    async def me(request):
        session = request.state.user        # a redis_jwt.Session

The token rides in ``Authorization: Bearer <token>`` or, when ``cookie=`` is
given, in a cookie (see :class:`SessionCookie`, :func:`set_session_cookie`,
:func:`clear_session_cookie`); a cookie brings CSRF checks with it (unsafe
methods need ``X-CSRF-Token``, WebSocket handshakes a trusted ``Origin``).
Failures never reach the app:

- no token, or a bad one: ``401 {"detail": ...}`` with ``WWW-Authenticate: Bearer``
  (``error="invalid_token"`` when a token was sent, RFC 6750);
- Redis failing: ``503`` with ``Retry-After: 1``;
- a cookie-authenticated unsafe request without the CSRF value: ``403``
  ``{"detail": "CSRF check failed"}``;
- WebSockets: closed before the handshake completes, code 1008 (bad or missing
  token, or a cookie sent from an untrusted ``Origin``) or 1013 (Redis failing,
  "try again later"); an open socket whose session is destroyed or expires is
  closed by the server with code 1008.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar

from starlette.requests import HTTPConnection
from starlette.responses import Response

from ._asgi import Receive, Scope, Send
from ._core import RedisJWT
from ._csrf import csrf_value, parse_origins
from ._watch import SessionWatch
from ._web import (
    CSRF_FAILED,
    EMPTY_BEARER,
    MISSING,
    SessionCookie,
    answer_for,
    csrf_refused,
    find_token,
    read_credentials,
    refuse_handshake,
    serve_handshake,
)
from .errors import AuthenticationError, CSRFError, StoreError
from .models import ClientInfo, Session

__all__ = [
    "RedisJWTMiddleware",
    "SessionCookie",
    "clear_session_cookie",
    "client_info",
    "set_session_cookie",
]

#: Longest ``User-Agent`` kept by :func:`client_info` (real ones are far shorter).
USER_AGENT_MAX_CHARS = 512
#: The request-state key naming the RedisJWT that verified ``request.state.user``.
VERIFIED_BY = "redis_jwt_verified_by"
#: Longest client address kept (an IPv6 address with a zone fits; a unix socket path may not).
IP_MAX_CHARS = 64

# The scope of the request the middleware is passing on (excluded paths too), so that
# set_session_cookie called without its request still knows where the request went.
_REQUEST_SCOPE: ContextVar[Scope | None] = ContextVar("redis_jwt_request_scope", default=None)

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _secure(config: SessionCookie, request: HTTPConnection | None) -> bool:
    if config.secure is not None:
        return config.secure
    if request is not None:
        return config.secure_for(request.url.scheme, request.headers.get("host"))
    scope = _REQUEST_SCOPE.get()
    if scope is None:  # no idea where the request went: the safe answer
        return config.secure_for(None, None)
    host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), None)
    return config.secure_for(scope.get("scheme", "http"), host)


def set_session_cookie(
    response: Response,
    token: str,
    config: SessionCookie,
    request: HTTPConnection | None = None,
) -> None:
    """Set the session cookie on ``response`` (at login), as ``config`` describes it.

    With ``config.csrf`` (the default) it also sets the readable CSRF cookie
    (``config.csrf_name``), whose value the page's JavaScript sends back in the
    ``X-CSRF-Token`` header of its unsafe requests. Call it again whenever the
    token changes: the CSRF value is bound to the token.

    Args:
        response: the response to set the cookies on.
        token: the session token.
        config: the cookie's settings.
        request: the request being answered; with ``secure=None`` (the default)
            it decides whether the cookies are ``Secure``. Behind
            :class:`RedisJWTMiddleware` (excluded paths included) it is found
            without being passed; elsewhere, without it, the cookies are ``Secure``.
    """
    secure = _secure(config, request)
    response.set_cookie(
        config.name,
        token,
        max_age=config.max_age_seconds,
        path=config.path,
        domain=config.domain,
        secure=secure,
        httponly=config.httponly,
        samesite=config.samesite,
    )
    if config.csrf:
        # Readable on purpose (not HttpOnly): the page copies it into the header.
        response.set_cookie(
            config.csrf_name,
            csrf_value(token),
            max_age=config.max_age_seconds,
            path=config.path,
            domain=config.domain,
            secure=secure,
            httponly=False,
            samesite=config.samesite,
        )


def clear_session_cookie(
    response: Response, config: SessionCookie, request: HTTPConnection | None = None
) -> None:
    """Tell the browser to drop the session cookie and its CSRF cookie (at logout).

    Destroy the session too (``await auth.destroy(token)``): a cookie that is
    only cleared in one browser leaves a copied token alive.
    """
    secure = _secure(config, request)
    names = (config.name, config.csrf_name) if config.csrf else (config.name,)
    for name in names:
        response.delete_cookie(
            name,
            path=config.path,
            domain=config.domain,
            secure=secure,
            httponly=name == config.name and config.httponly,
            samesite=config.samesite,
        )


def client_info(connection: HTTPConnection) -> ClientInfo:
    """The device a request comes from, to pass to ``sign(..., client=...)``.

    The address is the one the ASGI server reports (behind a proxy, run the
    server with its proxy-headers option so that it is the client's, not the
    proxy's); the ``User-Agent`` is cut to 512 characters and the address to 64.
    Works for a :class:`~starlette.requests.Request` and a WebSocket alike.
    """
    address = connection.client.host if connection.client is not None else None
    agent = connection.headers.get("user-agent")
    return ClientInfo(
        ip=address[:IP_MAX_CHARS] if address else None,
        user_agent=agent[:USER_AGENT_MAX_CHARS] if agent else None,
    )


def _with_user(scope: Scope, user: Session | None) -> None:
    # A copy, not an update: a server that shared one state dict between
    # requests must never see one request's user in another.
    state = scope.get("state")
    scope["state"] = {**state, "user": user} if state else {"user": user}


async def _refuse(send: Send, failure: AuthenticationError | StoreError | CSRFError) -> None:
    answer = answer_for(failure)
    # A fresh list: outer middlewares may append to it.
    headers = list(answer.raw_headers)
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})


class RedisJWTMiddleware:
    """Authenticate every HTTP request and WebSocket handshake with a :class:`~redis_jwt.RedisJWT`.

    On success ``request.state.user`` (``scope["state"]["user"]``) is the
    :class:`~redis_jwt.Session`. The middleware keeps no per-request state; it
    does not open ``auth``: open it in the app's lifespan.

    Args:
        app: the ASGI app to protect.
        auth: the session manager that verifies tokens.
        exclude: paths let through without authentication. An entry matches the
            request path exactly (``"/login"`` matches ``/login`` only, not
            ``/login/x`` nor ``/login/``), unless it ends with ``/``, which makes
            it a prefix (``"/static/"`` matches everything under ``/static/``).
        optional: let requests without a token through with
            ``request.state.user = None``. A token that is sent and bad is still
            a 401: a client that thinks it is logged in must learn it is not.
        cookie: also read the token from this cookie (after the header). With
            ``cookie.csrf`` (the default), a request authenticated by the cookie
            must carry the CSRF value when its method is unsafe (else 403) and
            come from a trusted ``Origin`` when it is a WebSocket (else 1008).
        with_session: load the private ``data_session`` on every verify.
        trusted_origins: origins besides the request's own host whose pages may
            open cookie-authenticated WebSockets (``"https://app.example.com"``).
    """

    __slots__ = (
        "_app",
        "_auth",
        "_cookie",
        "_csrf",
        "_exact",
        "_optional",
        "_prefixes",
        "_trusted",
        "_watch",
        "_with",
    )

    def __init__(
        self,
        app: ASGIApp,
        *,
        auth: RedisJWT,
        exclude: Iterable[str] = (),
        optional: bool = False,
        cookie: SessionCookie | None = None,
        with_session: bool = False,
        trusted_origins: Iterable[str] = (),
    ) -> None:
        if isinstance(exclude, str):
            exclude = (exclude,)
        paths = tuple(exclude)
        self._app = app
        self._auth = auth
        self._exact = frozenset(p for p in paths if not p.endswith("/"))
        self._prefixes = tuple(p for p in paths if p.endswith("/"))
        self._optional = bool(optional)
        self._cookie = None if cookie is None else cookie.name.encode("latin-1")
        # (cookie name, CSRF header name), or None: no CSRF checks (no cookie, or csrf=False).
        self._csrf = (
            (cookie.name.encode("latin-1"), cookie.csrf_header.lower().encode("latin-1"))
            if cookie is not None and cookie.csrf
            else None
        )
        self._trusted = parse_origins(trusted_origins)
        self._with = bool(with_session)
        self._watch = SessionWatch(auth.events)

    def _excluded(self, path: str) -> bool:
        return path in self._exact or (bool(self._prefixes) and path.startswith(self._prefixes))

    def _token(self, scope: Scope, method: str | None) -> str | CSRFError | None:
        # The CSRF checks come before the verify: a forged request costs no Redis
        # round trip and never slides the victim's session.
        csrf = self._csrf
        if csrf is None:
            return find_token(scope["headers"], self._cookie)
        found = read_credentials(scope["headers"], *csrf)
        if csrf_refused(found, method, self._trusted):
            return CSRF_FAILED
        return found.token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            # The HTTP path is inline (one coroutine per request, not two): it runs for
            # every request, where a frame and an attribute lookup show in the profile.
            current = _REQUEST_SCOPE.set(scope)
            try:
                path = scope["path"]
                if path in self._exact or (self._prefixes and path.startswith(self._prefixes)):
                    await self._app(scope, receive, send)
                    return
                token = (
                    find_token(scope["headers"], self._cookie)
                    if self._csrf is None
                    else self._token(scope, scope["method"])
                )
                if isinstance(token, str) and token:
                    try:
                        session = await self._auth.verify(token, with_session=self._with)
                    except (AuthenticationError, StoreError) as exc:
                        await _refuse(send, exc)
                        return
                    # As _with_user, and the FastAPI dependencies of the same RedisJWT
                    # reuse this verify (VERIFIED_BY).
                    state = scope.get("state")
                    scope["state"] = (
                        {**state, "user": session, VERIFIED_BY: self._auth}
                        if state
                        else {"user": session, VERIFIED_BY: self._auth}
                    )
                    await self._app(scope, receive, send)
                elif isinstance(token, CSRFError):
                    await _refuse(send, token)
                elif token is None and self._optional:
                    _with_user(scope, None)
                    await self._app(scope, receive, send)
                else:
                    await _refuse(send, MISSING if token is None else EMPTY_BEARER)
            finally:
                _REQUEST_SCOPE.reset(current)
        elif kind == "websocket":
            current = _REQUEST_SCOPE.set(scope)
            try:
                await self._websocket(scope, receive, send)
            finally:
                _REQUEST_SCOPE.reset(current)
        else:  # lifespan and anything newer: not ours
            await self._app(scope, receive, send)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._excluded(scope["path"]):
            await self._app(scope, receive, send)
            return
        token = self._token(scope, None)
        if token is None and self._optional:
            _with_user(scope, None)
            await self._app(scope, receive, send)
            return
        if isinstance(token, CSRFError):
            await refuse_handshake(receive, send, token)
            return

        async def serve(session: Session, receive: Receive, send: Send) -> None:
            _with_user(scope, session)
            await self._app(scope, receive, send)

        await serve_handshake(
            self._watch, self._auth.verify, token, self._with, (receive, send), serve
        )
