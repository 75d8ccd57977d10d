"""FastAPI dependencies: ``require_session`` / ``optional_session``, error handlers, JWKS.

    from redis_jwt.fastapi import require_session

    current_session = require_session(auth)

    @app.get("/me")
    async def me(session: Annotated[Session, Depends(current_session)]) -> dict[str, str]:
        return {"user": session.user_id}

The dependencies are plain ``async def`` (no thread pool), read the token the
same way as :class:`~redis_jwt.starlette.RedisJWTMiddleware` (``Authorization:
Bearer``, then the cookie when ``cookie=`` is given), and appear in OpenAPI as
an HTTP Bearer security scheme, so the *Authorize* button of ``/docs`` works.

Failures are raised as :class:`fastapi.HTTPException` (401 with
``WWW-Authenticate``, 503 with ``Retry-After``), which FastAPI answers as
``{"detail": ...}`` with no set-up. On a WebSocket route they become a
:class:`fastapi.WebSocketException` (close code 1008, or 1013 when Redis fails).
:func:`install_error_handlers` adds the same answers for the library's errors
raised by your own code (``await auth.sign(...)`` while Redis is down is a 503,
not a 500).
"""

# No ``from __future__ import annotations``: FastAPI reads these signatures at
# run time, and the dependencies' annotations name local variables.
from collections.abc import Awaitable, Callable
from typing import Annotated, cast

from fastapi import FastAPI, HTTPException, Security, WebSocketException
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response

from ._core import RedisJWT
from ._web import EMPTY_BEARER, MISSING, SessionCookie, answer_for, find_token
from .errors import AuthenticationError, StoreError
from .models import Session

__all__ = [
    "BearerToken",
    "install_error_handlers",
    "mount_jwks",
    "optional_session",
    "require_session",
]


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


def _failure(connection: HTTPConnection, exc: AuthenticationError | StoreError) -> Exception:
    answer = answer_for(exc)
    if connection.scope["type"] == "websocket":
        return WebSocketException(code=answer.close_code, reason=answer.detail)
    return HTTPException(answer.status, answer.detail, headers=dict(answer.headers))


async def _verify(
    auth: RedisJWT, connection: HTTPConnection, token: str | None, *, with_session: bool
) -> Session:
    failure: AuthenticationError | StoreError
    if token:
        try:
            return await auth.verify(token, with_session=with_session)
        except (AuthenticationError, StoreError) as exc:
            failure = exc
    else:
        failure = MISSING if token is None else EMPTY_BEARER
    raise _failure(connection, failure) from None


def require_session(
    auth: RedisJWT, *, with_session: bool = False, cookie: SessionCookie | None = None
) -> Callable[[HTTPConnection, str | None], Awaitable[Session]]:
    """Return a dependency that yields the request's live :class:`~redis_jwt.Session`.

    Create it once and reuse it (``current = require_session(auth)``), so that
    FastAPI verifies once per request however many times it is used.

    Args:
        auth: the session manager.
        with_session: also load the private ``data_session``.
        cookie: also read the token from this cookie.

    The dependency raises ``HTTPException(401)`` (missing or bad token) or
    ``HTTPException(503)`` (Redis failing), or their WebSocket equivalents.
    """
    bearer = BearerToken(cookie)

    async def current_session(
        connection: HTTPConnection, token: Annotated[str | None, Security(bearer)]
    ) -> Session:
        return await _verify(auth, connection, token, with_session=with_session)

    return current_session


def optional_session(
    auth: RedisJWT, *, with_session: bool = False, cookie: SessionCookie | None = None
) -> Callable[[HTTPConnection, str | None], Awaitable[Session | None]]:
    """Like :func:`require_session`, but a request without a token yields ``None``.

    A token that is sent and bad is still a 401: a client that believes it is
    logged in must learn that it is not.
    """
    bearer = BearerToken(cookie)

    async def current_session_or_none(
        connection: HTTPConnection, token: Annotated[str | None, Security(bearer)]
    ) -> Session | None:
        if token is None:
            return None
        return await _verify(auth, connection, token, with_session=with_session)

    return current_session_or_none


async def _handle(request: Request, exc: Exception) -> Response:
    # Registered for these two classes only.
    answer = answer_for(cast(AuthenticationError | StoreError, exc))
    return JSONResponse({"detail": answer.detail}, answer.status, headers=dict(answer.headers))


def install_error_handlers(app: FastAPI) -> None:
    """Answer the library's errors raised anywhere in ``app``'s HTTP routes.

    :class:`~redis_jwt.errors.AuthenticationError` becomes a 401 with
    ``WWW-Authenticate``, :class:`~redis_jwt.errors.StoreError` a 503 with
    ``Retry-After``, exactly as the dependencies and the middleware answer.
    Other errors (:class:`~redis_jwt.errors.ConfigurationError` included) are
    bugs and still propagate.
    """
    app.add_exception_handler(AuthenticationError, _handle)
    app.add_exception_handler(StoreError, _handle)


def mount_jwks(app: FastAPI, auth: RedisJWT, path: str = "/.well-known/jwks.json") -> None:
    """Serve ``auth.jwks()``, the public keys, so other services can check signatures.

    The answer is cacheable for five minutes; keep a retired key in the ring
    longer than that (plus your tokens' lifetime) when rotating.
    """

    async def jwks(request: Request) -> Response:
        return JSONResponse(auth.jwks(), headers={"cache-control": "public, max-age=300"})

    app.add_route(path, jwks, methods=["GET"], include_in_schema=False)
