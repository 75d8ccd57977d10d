"""The ASGI apps that ``bench/http.py`` serves with uvicorn (one per process).

``uvicorn --factory bench.http_apps:create_app`` builds the app named by
``BENCH_APP`` against ``BENCH_REDIS_URL``, with ``BENCH_SECRET`` for redis-jwt:

- ``bare``: a Starlette app with one JSON route, no authentication;
- ``middleware``: the same app behind ``redis_jwt.starlette.RedisJWTMiddleware``;
- ``middleware_cached``: the same with ``RedisJWT(local_cache=True)``;
- ``fastapi``: a bare FastAPI app with one JSON route (to tell FastAPI's own
  cost from fastapi-users');
- ``fastapi_dependency``: the bare FastAPI route with the session of
  ``redis_jwt.fastapi.require_session`` as a dependency;
- ``litestar``: a bare Litestar app with one JSON route;
- ``litestar_plugin``: the same behind ``redis_jwt.litestar.RedisJWTPlugin``;
- ``fastapi_users``: a FastAPI route protected by fastapi-users 15
  (``BearerTransport`` + ``RedisStrategy``), as its documentation builds it.

Every app answers ``GET /health`` without authentication (the readiness probe).
Each authenticated route answers the user id of a 9-character user
(``http-user``) where its bare counterpart answers ``anonymous``: the same
route, the same body size, so that a ratio measures the authentication only.
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures at
# run time, and string annotations of names local to a factory cannot resolve.
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, cast

import redis.asyncio
from fastapi import Depends, FastAPI
from fastapi_users import FastAPIUsers
from fastapi_users.authentication import AuthenticationBackend, BearerTransport, RedisStrategy
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from bench._rivals import BenchUser, InMemoryUserDatabase, UserManager, make_users

__all__ = ["APPS", "create_app"]

APPS = (
    "bare",
    "middleware",
    "middleware_cached",
    "fastapi",
    "fastapi_dependency",
    "litestar",
    "litestar_plugin",
    "fastapi_users",
)
#: How many users the fastapi-users app knows (ids UUID(int=1) ... UUID(int=N)).
FU_USERS = 100
LIFETIME_SECONDS = 3600


async def _health(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


async def _anonymous(request: Request) -> JSONResponse:
    return JSONResponse({"user_id": "anonymous"})


async def _whoami(request: Request) -> JSONResponse:
    return JSONResponse({"user_id": request.state.user.user_id})


def _bare() -> ASGIApp:
    return Starlette(routes=[Route("/", _anonymous), Route("/health", _health)])


def _middleware(redis_url: str, secret: str, *, cached: bool) -> ASGIApp:
    from redis_jwt import RedisJWT
    from redis_jwt.starlette import RedisJWTMiddleware  # type: ignore[import-not-found,unused-ignore]

    options: dict[str, Any] = {"local_cache": True} if cached else {}
    auth = RedisJWT(secret=secret, redis_url=redis_url, ttl=LIFETIME_SECONDS, **options)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with auth:
            yield

    return Starlette(
        routes=[Route("/", _whoami), Route("/health", _health)],
        middleware=[Middleware(RedisJWTMiddleware, auth=auth, exclude=("/health",))],
        lifespan=lifespan,
    )


def _fastapi() -> ASGIApp:
    app = FastAPI()

    @app.get("/")
    async def anonymous() -> dict[str, str]:
        return {"user_id": "anonymous"}

    @app.get("/health")
    async def health() -> dict[str, bool]:
        return {"ok": True}

    return app


def _fastapi_dependency(redis_url: str, secret: str) -> ASGIApp:
    from redis_jwt import RedisJWT, Session
    from redis_jwt.fastapi import require_session

    auth = RedisJWT(secret=secret, redis_url=redis_url, ttl=LIFETIME_SECONDS)
    current_session = require_session(auth)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with auth:
            yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/")
    async def whoami(session: Annotated[Session, Depends(current_session)]) -> dict[str, str]:
        return {"user_id": session.user_id}

    @app.get("/health")
    async def health() -> dict[str, bool]:
        return {"ok": True}

    return app


def _litestar(redis_url: str, secret: str, *, plugin: bool) -> ASGIApp:
    from litestar import Litestar, Request, get
    from litestar.plugins import PluginProtocol

    from redis_jwt import RedisJWT, Session
    from redis_jwt.litestar import RedisJWTPlugin

    @get("/health")
    async def health() -> dict[str, bool]:
        return {"ok": True}

    @get("/", name="anonymous")
    async def anonymous() -> dict[str, str]:
        return {"user_id": "anonymous"}

    @get("/", name="whoami")
    async def whoami(request: Request[Session, str, Any]) -> dict[str, str]:
        return {"user_id": request.user.user_id}

    plugins: list[PluginProtocol] = []
    if plugin:
        auth = RedisJWT(secret=secret, redis_url=redis_url, ttl=LIFETIME_SECONDS)
        plugins.append(RedisJWTPlugin(auth, exclude=["/health"]))
    app = Litestar(route_handlers=[whoami if plugin else anonymous, health], plugins=plugins)
    return cast(ASGIApp, app)


def _fastapi_users(redis_url: str) -> ASGIApp:
    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    user_db = InMemoryUserDatabase(make_users(FU_USERS))

    def get_redis_strategy() -> RedisStrategy[BenchUser, uuid.UUID]:
        return RedisStrategy(client, lifetime_seconds=LIFETIME_SECONDS)

    async def get_user_manager() -> AsyncIterator[UserManager]:
        yield UserManager(user_db)

    backend = AuthenticationBackend(
        name="redis",
        transport=BearerTransport(tokenUrl="auth/login"),
        get_strategy=get_redis_strategy,
    )
    fastapi_users = FastAPIUsers[BenchUser, uuid.UUID](get_user_manager, [backend])
    current_active_user = fastapi_users.current_user(active=True)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await client.aclose()

    app = FastAPI(lifespan=lifespan)

    @app.get("/")
    async def whoami(user: Annotated[BenchUser, Depends(current_active_user)]) -> dict[str, str]:
        return {"user_id": str(user.id)}

    @app.get("/health")
    async def health() -> dict[str, bool]:
        return {"ok": True}

    return app


def create_app() -> ASGIApp:
    """Build the app that ``BENCH_APP`` names (uvicorn calls this with ``--factory``)."""
    name = os.environ.get("BENCH_APP", "bare")
    redis_url = os.environ.get("BENCH_REDIS_URL", "")
    secret = os.environ.get("BENCH_SECRET", "")
    if name == "bare":
        return _bare()
    if name in ("middleware", "middleware_cached"):
        return _middleware(redis_url, secret, cached=name == "middleware_cached")
    if name == "fastapi":
        return _fastapi()
    if name == "fastapi_dependency":
        return _fastapi_dependency(redis_url, secret)
    if name in ("litestar", "litestar_plugin"):
        return _litestar(redis_url, secret, plugin=name == "litestar_plugin")
    if name == "fastapi_users":
        return _fastapi_users(redis_url)
    raise SystemExit(f"BENCH_APP={name!r} is not one of {', '.join(APPS)}")
