"""Litestar plugin: sessions for every HTTP route and WebSocket of a Litestar app.

    from litestar import Litestar, Request, get
    from redis_jwt.litestar import RedisJWTPlugin

    @get("/me")
    async def me(request: Request[Session, str, Any]) -> dict[str, str]:
        return {"user": request.user.user_id}     # request.auth is the token

    app = Litestar([me, login], plugins=[RedisJWTPlugin(auth, exclude=["/login"])])

The plugin opens ``auth`` when the app starts and closes it when the app stops
(Litestar's lifespan), authenticates every route through one pure ASGI
middleware, and adds the Bearer scheme to Litestar's OpenAPI document. The
answers are those of :class:`~redis_jwt.starlette.RedisJWTMiddleware`, built by
the same shared code:

- no token, or a bad one: ``401 {"detail": ...}`` with ``WWW-Authenticate: Bearer``
  (``error="invalid_token"`` when a token was sent);
- Redis failing: ``503`` with ``Retry-After``;
- WebSockets: the handshake is refused with close code 1008 (missing or bad
  token) or 1013 (Redis failing); an open socket whose session ends is closed
  with 1008.

Litestar's OpenAPI routes (``/schema`` and everything under it, or the path the
app's ``OpenAPIConfig`` names) need no token. Tokens ride in the
``Authorization`` header only.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from litestar.config.app import AppConfig
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins import InitPlugin

from ._asgi import Receive, Scope, Send
from ._core import RedisJWT
from ._watch import SessionWatch
from ._web import EMPTY_BEARER, MISSING, answer_for, find_token, serve_handshake
from .errors import AuthenticationError, StoreError
from .models import Session

if TYPE_CHECKING:
    from litestar.types import Middleware

__all__ = ["RedisJWTPlugin"]

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The OpenAPI security scheme's name, the same as the FastAPI dependencies'.
SCHEME_NAME = "RedisJWT"
_DEFAULT_SCHEMA_PATH = "/schema"


def _schema_path(config: OpenAPIConfig | None) -> str | None:
    """Where Litestar serves its OpenAPI routes, or ``None`` when they are off."""
    if config is None:
        return None
    if config.openapi_controller is not None:
        return config.openapi_controller.path
    if config.openapi_router is not None:
        return config.openapi_router.path
    return config.path or _DEFAULT_SCHEMA_PATH


@dataclass(frozen=True, slots=True)
class _Rules:
    """What the middleware needs, shared by the middleware of every route."""

    auth: RedisJWT
    exact: frozenset[str]
    prefixes: tuple[str, ...]
    optional: bool
    with_session: bool
    watch: SessionWatch

    def excluded(self, path: str) -> bool:
        return path in self.exact or (bool(self.prefixes) and path.startswith(self.prefixes))


def _authenticated(scope: Scope, session: Session | None, token: str | None) -> None:
    # Litestar's ``request.user`` and ``request.auth`` read these two scope keys.
    scope["user"] = session
    scope["auth"] = token


class _Authenticate:
    """The pure ASGI middleware the plugin puts in front of every route handler."""

    __slots__ = ("_app", "_rules")

    def __init__(self, app: ASGIApp, rules: _Rules) -> None:
        self._app = app
        self._rules = rules

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        rules = self._rules
        if kind not in ("http", "websocket") or rules.excluded(scope["path"]):
            await self._app(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        else:
            # The HTTP path is inline: one coroutine per request, not two.
            token = find_token(scope["headers"], None)
            failure: AuthenticationError | StoreError
            if token:
                try:
                    session = await rules.auth.verify(token, with_session=rules.with_session)
                except (AuthenticationError, StoreError) as exc:
                    failure = exc
                else:
                    # Litestar's ``request.user`` and ``request.auth`` read these two keys.
                    scope["user"] = session
                    scope["auth"] = token
                    await self._app(scope, receive, send)
                    return
            elif token is None and rules.optional:
                _authenticated(scope, None, None)
                await self._app(scope, receive, send)
                return
            else:
                failure = MISSING if token is None else EMPTY_BEARER
            answer = answer_for(failure)
            await send(
                {
                    "type": "http.response.start",
                    "status": answer.status,
                    "headers": [*answer.raw_headers],
                }
            )
            await send({"type": "http.response.body", "body": answer.body})

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        rules = self._rules
        token = find_token(scope["headers"], None)
        if token is None and rules.optional:
            _authenticated(scope, None, None)
            await self._app(scope, receive, send)
            return

        async def serve(session: Session, receive: Receive, send: Send) -> None:
            _authenticated(scope, session, token)
            await self._app(scope, receive, send)

        await serve_handshake(
            rules.watch, rules.auth.verify, token, rules.with_session, (receive, send), serve
        )


class RedisJWTPlugin(InitPlugin):
    """Authenticate every HTTP request and WebSocket of a Litestar app with a ``RedisJWT``.

    On success ``request.user`` (``socket.user`` on a WebSocket) is the
    :class:`~redis_jwt.Session` and ``request.auth`` the token it came from.

    Args:
        auth: the session manager; the plugin opens it when the app starts and
            closes it when the app stops, so one ``auth`` serves one app (a
            closed ``RedisJWT`` cannot be reopened).
        exclude: paths let through without authentication, matched as by
            :class:`~redis_jwt.starlette.RedisJWTMiddleware`: an entry matches
            the request path exactly, unless it ends with ``/``, which makes it
            a prefix. The app's OpenAPI routes are always excluded.
        optional: let requests without a token through with ``request.user``
            and ``request.auth`` set to ``None``. A token that is sent and bad
            is still a 401.
        with_session: load the private ``data_session`` on every verify.
    """

    __slots__ = ("_exclude", "_optional", "_watch", "_with", "auth")

    def __init__(
        self,
        auth: RedisJWT,
        *,
        exclude: Iterable[str] = (),
        optional: bool = False,
        with_session: bool = False,
    ) -> None:
        #: The session manager this plugin opens, closes and verifies with.
        self.auth = auth
        self._exclude = (exclude,) if isinstance(exclude, str) else tuple(exclude)
        self._optional = bool(optional)
        self._with = bool(with_session)
        # One watch for the whole app: Litestar builds a middleware per route.
        self._watch = SessionWatch(auth.events)

    @asynccontextmanager
    async def _lifespan(self, _app: object) -> AsyncIterator[None]:
        async with self.auth:
            yield

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        """Add the lifespan, the middleware and the OpenAPI security scheme to the app."""
        paths = list(self._exclude)
        schema = _schema_path(app_config.openapi_config)
        if schema is not None and schema.strip("/"):
            # Never a bare "/": as a prefix it would open the whole app.
            paths += [schema, schema.rstrip("/") + "/"]
        rules = _Rules(
            auth=self.auth,
            exact=frozenset(p for p in paths if not p.endswith("/")),
            prefixes=tuple(p for p in paths if p.endswith("/")),
            optional=self._optional,
            with_session=self._with,
            watch=self._watch,
        )

        def middleware(app: ASGIApp) -> ASGIApp:
            return _Authenticate(app, rules)

        app_config.lifespan.append(self._lifespan)
        # First, so that the app's own middleware sees the authenticated user.
        app_config.middleware.insert(0, cast("Middleware", middleware))
        if app_config.openapi_config is not None:
            app_config.openapi_config = _with_bearer(app_config.openapi_config)
        return app_config


def _with_bearer(config: OpenAPIConfig) -> OpenAPIConfig:
    """A copy of ``config`` that declares the Bearer scheme and requires it by default."""
    scheme = SecurityScheme(
        type="http",
        scheme="bearer",
        bearer_format="JWT",
        description="A session token from redis-jwt: `Authorization: Bearer <token>`.",
    )
    ours = Components(security_schemes={SCHEME_NAME: scheme})
    theirs = config.components
    # New lists: the default config object is shared by every app of the process.
    components = [*theirs, ours] if isinstance(theirs, list) else [theirs, ours]
    security = [*(config.security or ()), {SCHEME_NAME: []}]
    # ``copy`` rather than ``dataclasses.replace``: replace would run __post_init__ again.
    clone = copy.copy(config)
    clone.components = components
    clone.security = security
    return clone
