"""Pure ASGI middleware for Starlette (and any ASGI app): every request carries a live session.

    from redis_jwt.starlette import RedisJWTMiddleware

    app = Starlette(routes=..., middleware=[
        Middleware(RedisJWTMiddleware, auth=auth, exclude=("/login", "/health")),
    ])

    async def me(request):
        session = request.state.user        # a redis_jwt.Session

The token rides in ``Authorization: Bearer <token>`` or, when ``cookie=`` is
given, in a cookie (see :class:`SessionCookie`, :func:`set_session_cookie`,
:func:`clear_session_cookie`). Failures never reach the app:

- no token, or a bad one: ``401 {"detail": ...}`` with ``WWW-Authenticate: Bearer``
  (``error="invalid_token"`` when a token was sent, RFC 6750);
- Redis failing: ``503`` with ``Retry-After: 1``;
- WebSockets: closed before the handshake completes, code 1008 (bad or missing
  token) or 1013 (Redis failing, "try again later"); an open socket whose session
  is destroyed or expires is closed by the server with code 1008.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from starlette.responses import Response

from ._core import RedisJWT
from ._watch import SessionWatch, WatchedSocket
from ._web import EMPTY_BEARER, ENDED, MISSING, SessionCookie, answer_for, find_token
from .errors import AuthenticationError, StoreError
from .models import Session

__all__ = [
    "RedisJWTMiddleware",
    "SessionCookie",
    "clear_session_cookie",
    "set_session_cookie",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def set_session_cookie(response: Response, token: str, config: SessionCookie) -> None:
    """Set the session cookie on ``response`` (at login), as ``config`` describes it."""
    response.set_cookie(
        config.name,
        token,
        max_age=config.max_age_seconds,
        path=config.path,
        domain=config.domain,
        secure=config.secure,
        httponly=config.httponly,
        samesite=config.samesite,
    )


def clear_session_cookie(response: Response, config: SessionCookie) -> None:
    """Tell the browser to drop the session cookie (at logout).

    Destroy the session too (``await auth.destroy(token)``): a cookie that is
    only cleared in one browser leaves a copied token alive.
    """
    response.delete_cookie(
        config.name,
        path=config.path,
        domain=config.domain,
        secure=config.secure,
        httponly=config.httponly,
        samesite=config.samesite,
    )


def _with_user(scope: Scope, user: Session | None) -> None:
    # A copy, not an update: a server that shared one state dict between
    # requests must never see one request's user in another.
    state = scope.get("state")
    scope["state"] = {**state, "user": user} if state else {"user": user}


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
        cookie: also read the token from this cookie (after the header).
        with_session: load the private ``data_session`` on every verify.
    """

    __slots__ = ("_app", "_auth", "_cookie", "_exact", "_optional", "_prefixes", "_watch", "_with")

    def __init__(
        self,
        app: ASGIApp,
        *,
        auth: RedisJWT,
        exclude: Iterable[str] = (),
        optional: bool = False,
        cookie: SessionCookie | None = None,
        with_session: bool = False,
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
        self._with = bool(with_session)
        self._watch = SessionWatch(auth.events)

    def _excluded(self, path: str) -> bool:
        return path in self._exact or (bool(self._prefixes) and path.startswith(self._prefixes))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        else:  # lifespan and anything newer: not ours
            await self._app(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._excluded(scope["path"]):
            await self._app(scope, receive, send)
            return
        token = find_token(scope["headers"], self._cookie)
        failure: AuthenticationError | StoreError
        if token:
            try:
                session = await self._auth.verify(token, with_session=self._with)
            except (AuthenticationError, StoreError) as exc:
                failure = exc
            else:
                _with_user(scope, session)
                await self._app(scope, receive, send)
                return
        elif token is None and self._optional:
            _with_user(scope, None)
            await self._app(scope, receive, send)
            return
        else:
            failure = MISSING if token is None else EMPTY_BEARER
        answer = answer_for(failure)
        # A fresh list: outer middlewares may append to it.
        headers = list(answer.raw_headers)
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._excluded(scope["path"]):
            await self._app(scope, receive, send)
            return
        token = find_token(scope["headers"], self._cookie)
        if token is None and self._optional:
            _with_user(scope, None)
            await self._app(scope, receive, send)
            return
        failure: AuthenticationError | StoreError
        if token:
            socket: WatchedSocket | None = None
            ended = self._watch.begin_handshake()
            try:
                session = await self._auth.verify(token, with_session=self._with)
            except (AuthenticationError, StoreError) as exc:
                failure = exc
            else:
                if session.session_id in ended:  # ended while we verified: refuse
                    failure = ENDED
                else:
                    socket = WatchedSocket(receive, send)
                    self._watch.add(session.session_id, socket)
            finally:
                self._watch.end_handshake(ended)
            if socket is not None:
                await self._watched(scope, socket, session)
                return
        else:
            failure = MISSING if token is None else EMPTY_BEARER
        answer = answer_for(failure)
        # Closing before accepting makes the server refuse the handshake (ASGI spec);
        # the connect message comes first.
        if (await receive())["type"] == "websocket.connect":
            close = {"type": "websocket.close", "code": answer.close_code, "reason": answer.detail}
            await send(close)

    async def _watched(self, scope: Scope, socket: WatchedSocket, session: Session) -> None:
        _with_user(scope, session)
        try:
            await self._app(scope, socket.receive, socket.send)
        finally:
            self._watch.remove(session.session_id, socket)
            await socket.finish()
