"""``sessions_router(auth)``: ready-made FastAPI routes for a user's own sessions.

    app.include_router(sessions_router(auth, cookie=COOKIE), prefix="/auth")

serves ``GET /sessions``, ``DELETE /sessions/{session_id}``, ``POST /logout``,
``POST /logout-others``, ``POST /logout-all`` and ``POST /refresh``,
authenticated like :func:`redis_jwt.fastapi.require_session` (header or
cookie, the CSRF rules on the unsafe routes). Logging in stays the app's: its login route checks the
password and calls ``sign`` or ``sign_pair``.
"""

# No ``from __future__ import annotations``: FastAPI reads the routes' annotations.
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from typing import Annotated, Literal, TypeVar

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Security
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import HTTPConnection
from starlette.responses import Response

from ._core import RedisJWT
from ._csrf import csrf_valid
from ._fastapi_auth import BearerToken, CookieToken, Guard, failure_for, require_session
from ._web import CSRF_FAILED, MISSING, SessionCookie
from .errors import AuthenticationError, ConfigurationError, StoreError
from .models import Session, SessionInfo, TokenPair
from .starlette import clear_session_cookie, set_session_cookie

__all__ = [
    "LoggedOut",
    "RefreshRequest",
    "RefreshedPair",
    "SessionView",
    "SessionsEnded",
    "sessions_router",
]

_T = TypeVar("_T")
#: Session ids are 22 to 43 URL-safe characters; anything longer is not one of ours.
_SESSION_ID_MAX_CHARS = 128


class SessionView(BaseModel):
    """One of the caller's live sessions, as ``GET /sessions`` lists it.

    Attributes:
        session_id: the id to pass to ``DELETE /sessions/{session_id}``.
        current: whether this is the session making the request.
        issued_at: when the session was created.
        expires_at: when it ends if nothing extends it.
        ip: the client address given at sign-in, if any.
        user_agent: the client's ``User-Agent`` given at sign-in, if any.
        last_seen_at: the last successful verify (with ``track_activity=True``).
    """

    model_config = ConfigDict(frozen=True)

    session_id: str
    current: bool
    issued_at: datetime
    expires_at: datetime
    ip: str | None = None
    user_agent: str | None = None
    last_seen_at: datetime | None = None

    @classmethod
    def of(cls, info: SessionInfo, *, current: bool) -> "SessionView":
        """The view of ``info`` (its private ``data_session`` is never shown)."""
        return cls(
            session_id=info.session_id,
            current=current,
            issued_at=info.issued_at,
            expires_at=info.expires_at,
            ip=info.ip,
            user_agent=info.user_agent,
            last_seen_at=info.last_seen_at,
        )


class LoggedOut(BaseModel):
    """The answer of ``POST /logout``: whether a live session was ended by this call."""

    ended: bool = Field(description="False when there was nothing left to end (a second logout).")


class SessionsEnded(BaseModel):
    """The answer of ``POST /logout-all`` and ``POST /logout-others``: how many sessions ended."""

    ended: int


class RefreshRequest(BaseModel):
    """The body of ``POST /refresh`` (optional when the refresh token rides in its cookie)."""

    refresh_token: str | None = Field(
        default=None, max_length=16384, description="The refresh token of the pair."
    )


class RefreshedPair(BaseModel):
    """The answer of ``POST /refresh``: the next pair of the session.

    The tokens are in the body when the refresh token came in the body; when it
    came in its cookie, they go back in the cookies only (``null`` here), so
    that page scripts never see them.
    """

    access_token: str | None
    refresh_token: str | None
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (a scheme name, no secret)
    access_expires_at: datetime
    refresh_expires_at: datetime


async def _answered(connection: HTTPConnection, call: Awaitable[_T]) -> _T:
    # Redis trouble inside a route is the same 503 the dependency answers, not a 500.
    try:
        return await call
    except (AuthenticationError, StoreError) as exc:
        raise failure_for(connection, exc) from None


def sessions_router(
    auth: RedisJWT,
    *,
    cookie: SessionCookie | None = None,
    refresh_cookie: SessionCookie | None = None,
    trusted_origins: Iterable[str] = (),
    tags: Sequence[str] = ("sessions",),
) -> APIRouter:
    """Return a router serving the caller's session list, revocation and logouts.

    Include it under any prefix (``app.include_router(sessions_router(auth), prefix="/auth")``).

    - ``GET /sessions``: the caller's live sessions, newest first, the current one
      marked (:class:`SessionView`; never the private ``data_session``).
    - ``DELETE /sessions/{session_id}``: end one of the caller's sessions (204); an
      unknown id, or another user's, is a 404 and touches nothing.
    - ``POST /logout``: end the calling session and clear the cookies; a second
      logout, or one with an expired or unknown token, is not an error
      (``{"ended": false}``).
    - ``POST /logout-others``: end every other session of the caller ("sign out the
      other devices"), atomically; this one stays (``{"ended": n}``).
    - ``POST /logout-all``: end every session of the caller and clear the cookies.
    - ``POST /refresh``: spend a refresh token (``{"refresh_token": ...}`` in the
      JSON body, else the ``refresh_cookie``) for the next pair
      (:class:`RefreshedPair`); from the cookie, the new tokens are set in the
      cookies (the CSRF value follows the new access token) and the request
      must carry the CSRF header like any cookie-authenticated unsafe request.

    Args:
        auth: the session manager.
        cookie: the session cookie, when the app uses one: it authenticates too,
            the CSRF rules apply to the unsafe routes, and logouts clear it.
        refresh_cookie: the cookie of the refresh token of a pair, e.g.
            ``SessionCookie(name="refresh_token", path="/auth/refresh", csrf=False)``
            (needs ``cookie``, which carries the access token); set both at login
            with :func:`~redis_jwt.starlette.set_session_cookie`.
        trusted_origins: as in :func:`~redis_jwt.fastapi.require_session`.
        tags: the OpenAPI tags of the routes.
    """
    if refresh_cookie is not None and cookie is None:
        raise ConfigurationError("refresh_cookie= needs cookie=, the cookie of the access token")
    current = require_session(auth, cookie=cookie, trusted_origins=trusted_origins)
    guard = Guard(auth, False, cookie, trusted_origins)
    bearer = BearerToken()
    in_cookie = CookieToken(cookie) if cookie is not None else None
    router = APIRouter(tags=list(tags))

    def clear(response: Response, connection: HTTPConnection) -> None:
        if cookie is not None:
            clear_session_cookie(response, cookie, connection)
        if refresh_cookie is not None:
            clear_session_cookie(response, refresh_cookie, connection)

    @router.get("/sessions", summary="List my sessions")
    async def list_sessions(
        connection: HTTPConnection, session: Annotated[Session, Depends(current)]
    ) -> list[SessionView]:
        infos = await _answered(connection, auth.sessions(session.user_id))
        return [SessionView.of(i, current=i.session_id == session.session_id) for i in infos]

    @router.delete(
        "/sessions/{session_id}",
        status_code=204,
        summary="End one of my sessions",
        responses={404: {"description": "No live session of the caller has this id"}},
    )
    async def revoke_session(
        connection: HTTPConnection,
        session_id: Annotated[str, Path(max_length=_SESSION_ID_MAX_CHARS)],
        session: Annotated[Session, Depends(current)],
    ) -> Response:
        # revoke() only ever touches the caller's own keys: another user's id is "not found".
        if not await _answered(connection, auth.revoke(session.user_id, session_id)):
            raise HTTPException(404, "Session not found")
        response = Response(status_code=204)
        if session_id == session.session_id:
            clear(response, connection)
        return response

    async def header_token(
        connection: HTTPConnection, token: Annotated[str | None, Security(bearer)]
    ) -> str | None:
        return token

    logout_token: Callable[..., Awaitable[str | None]] = header_token
    if in_cookie is not None:
        scheme = in_cookie

        async def header_or_cookie_token(
            connection: HTTPConnection,
            token: Annotated[str | None, Security(bearer)],
            cookie_token: Annotated[str | None, Security(scheme)],
        ) -> str | None:
            found = guard.credentials(connection, token, cookie_token)
            guard.check_csrf(connection, found)  # a forged logout is refused too
            return found.token

        logout_token = header_or_cookie_token

    @router.post("/logout", summary="End this session")
    async def logout(
        connection: HTTPConnection,
        response: Response,
        token: Annotated[str | None, Depends(logout_token)],
    ) -> LoggedOut:
        ended = False
        if token:
            try:
                ended = await auth.destroy(token)
            except AuthenticationError:
                pass  # not a token of ours, or no longer valid: nothing left to end
            except StoreError as exc:
                raise failure_for(connection, exc) from None
        clear(response, connection)
        return LoggedOut(ended=ended)

    @router.post("/logout-all", summary="End all my sessions")
    async def logout_all(
        connection: HTTPConnection,
        response: Response,
        session: Annotated[Session, Depends(current)],
    ) -> SessionsEnded:
        ended = await _answered(connection, auth.destroy_all(session.user_id))
        clear(response, connection)
        return SessionsEnded(ended=ended)

    @router.post("/logout-others", summary="End all my other sessions")
    async def logout_others(
        connection: HTTPConnection, session: Annotated[Session, Depends(current)]
    ) -> SessionsEnded:
        # One atomic script: a session signed meanwhile is ended or left, never half-way.
        ended = await _answered(
            connection, auth.destroy_all(session.user_id, keep=session.session_id)
        )
        return SessionsEnded(ended=ended)

    @router.post(
        "/refresh",
        summary="Exchange a refresh token for the next pair",
        responses={
            401: {"description": "Not a live refresh token (a reused one ends the session)"}
        },
    )
    async def refresh(
        connection: HTTPConnection,
        response: Response,
        body: Annotated[RefreshRequest | None, Body()] = None,
    ) -> RefreshedPair:
        token = body.refresh_token if body is not None else None
        from_cookie = False
        if not token and refresh_cookie is not None:
            token = connection.cookies.get(refresh_cookie.name)
            from_cookie = bool(token)
        if not token:
            raise failure_for(connection, MISSING)
        if from_cookie and cookie is not None and cookie.csrf:
            # The refresh cookie rides along with any request: a forged refresh is
            # refused like any cookie-authenticated unsafe request (bound to the
            # access token's cookie, as the page's CSRF value is).
            access = connection.cookies.get(cookie.name)
            if not access or not csrf_valid(access, connection.headers.get(cookie.csrf_header)):
                raise failure_for(connection, CSRF_FAILED)
        pair: TokenPair = await _answered(connection, auth.refresh(token))
        if from_cookie and cookie is not None and refresh_cookie is not None:
            set_session_cookie(response, pair.access_token, cookie, connection)
            set_session_cookie(response, pair.refresh_token, refresh_cookie, connection)
            return RefreshedPair(
                access_token=None,
                refresh_token=None,
                access_expires_at=pair.access_expires_at,
                refresh_expires_at=pair.refresh_expires_at,
            )
        return RefreshedPair(
            access_token=pair.access_token,
            refresh_token=pair.refresh_token,
            access_expires_at=pair.access_expires_at,
            refresh_expires_at=pair.refresh_expires_at,
        )

    return router
