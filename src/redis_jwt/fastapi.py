"""FastAPI: ``require_session`` / ``optional_session``, ``sessions_router``, error handlers, JWKS.

    from redis_jwt.fastapi import require_session

    current_session = require_session(auth)

    @app.get("/me")
    async def me(session: Annotated[Session, Depends(current_session)]) -> dict[str, str]:
        return {"user": session.user_id}

The dependencies are ``async`` (no thread pool), read the token the same way
as :class:`~redis_jwt.starlette.RedisJWTMiddleware` (``Authorization: Bearer``,
then the cookie when ``cookie=`` is given, with its CSRF rules), and appear in
OpenAPI as an HTTP Bearer security scheme (plus an API key in a cookie when a
cookie is used), so the *Authorize* button of ``/docs`` works.

Failures are raised as :class:`fastapi.HTTPException` (401 with
``WWW-Authenticate``, 503 with ``Retry-After``, 403 for a failed CSRF check),
which FastAPI answers as ``{"detail": ...}`` with no set-up. On a WebSocket
route the handshake is accepted and closed with 1008 (1013 when Redis fails),
and an open socket is closed with 1008 when its session ends.
:func:`install_error_handlers` adds the same answers for the library's errors
raised by your own code (``await auth.sign(...)`` while Redis is down is a 503,
not a 500). :func:`sessions_router` serves a user's own session list and logouts.
"""

# No ``from __future__ import annotations``: FastAPI reads these signatures at
# run time.
from typing import cast

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ._core import RedisJWT
from ._fastapi_auth import BearerToken, CookieToken, Failure, optional_session, require_session
from ._sessions_router import (
    LoggedOut,
    RefreshedPair,
    RefreshRequest,
    SessionsEnded,
    SessionView,
    sessions_router,
)
from ._web import answer_for
from .errors import AuthenticationError, CSRFError, InvalidUserId, StoreError
from .starlette import client_info

__all__ = [
    "BearerToken",
    "CookieToken",
    "LoggedOut",
    "RefreshRequest",
    "RefreshedPair",
    "SessionView",
    "SessionsEnded",
    "client_info",
    "install_error_handlers",
    "mount_jwks",
    "optional_session",
    "require_session",
    "sessions_router",
]


async def _bad_user_id(request: Request, exc: Exception) -> Response:
    # A fixed phrase: the id came from the client and is not echoed back.
    return JSONResponse({"detail": "invalid user id"}, 400)


async def _handle(request: Request, exc: Exception) -> Response:
    # Registered for these three classes only.
    answer = answer_for(cast(Failure, exc))
    return JSONResponse({"detail": answer.detail}, answer.status, headers=dict(answer.headers))


def install_error_handlers(app: FastAPI) -> None:
    """Answer the library's errors raised anywhere in ``app``'s HTTP routes.

    :class:`~redis_jwt.errors.AuthenticationError` becomes a 401 with
    ``WWW-Authenticate``, :class:`~redis_jwt.errors.StoreError` a 503 with
    ``Retry-After``, :class:`~redis_jwt.errors.CSRFError` a 403, exactly as the
    dependencies and the middleware answer. :class:`~redis_jwt.errors.InvalidUserId`
    (``sign("")`` with an empty name from a login form) is a 400
    ``{"detail": "invalid user id"}``.
    Other errors (any other :class:`~redis_jwt.errors.ConfigurationError`
    included) are bugs and still propagate.
    """
    app.add_exception_handler(InvalidUserId, _bad_user_id)
    app.add_exception_handler(AuthenticationError, _handle)
    app.add_exception_handler(StoreError, _handle)
    app.add_exception_handler(CSRFError, _handle)


def mount_jwks(app: FastAPI, auth: RedisJWT, path: str = "/.well-known/jwks.json") -> None:
    """Serve ``auth.jwks()``, the public keys, so other services can check signatures.

    The answer is cacheable for five minutes; keep a retired key in the ring
    longer than that (plus your tokens' lifetime) when rotating.
    """

    async def jwks(request: Request) -> Response:
        return JSONResponse(auth.jwks(), headers={"cache-control": "public, max-age=300"})

    app.add_route(path, jwks, methods=["GET"], include_in_schema=False)
