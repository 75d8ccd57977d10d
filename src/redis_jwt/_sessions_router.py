"""``sessions_router(auth)``: ready-made FastAPI routes for a user's own sessions.

    app.include_router(sessions_router(auth, cookie=COOKIE), prefix="/auth")

serves ``GET /sessions``, ``DELETE /sessions/{session_id}``, ``POST /logout``
and ``POST /logout-all``, authenticated like :func:`redis_jwt.fastapi.require_session`
(header or cookie, the CSRF rules on the unsafe routes). Logging in stays the
app's: its login route checks the password and calls ``sign``.
"""

# No ``from __future__ import annotations``: FastAPI reads the routes' annotations.
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Path, Security
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import HTTPConnection
from starlette.responses import Response

from ._core import RedisJWT
from ._fastapi_auth import BearerToken, CookieToken, Guard, failure_for, require_session
from ._web import SessionCookie
from .errors import AuthenticationError, StoreError
from .models import Session, SessionInfo
from .starlette import clear_session_cookie

__all__ = ["LoggedOut", "SessionView", "SessionsEnded", "sessions_router"]

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
    """The answer of ``POST /logout-all``: how many sessions were ended."""

    ended: int


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
    - ``POST /logout-all``: end every session of the caller and clear the cookies.

    Args:
        auth: the session manager.
        cookie: the session cookie, when the app uses one: it authenticates too,
            the CSRF rules apply to the unsafe routes, and logouts clear it.
        trusted_origins: as in :func:`~redis_jwt.fastapi.require_session`.
        tags: the OpenAPI tags of the routes.
    """
    current = require_session(auth, cookie=cookie, trusted_origins=trusted_origins)
    guard = Guard(auth, False, cookie, trusted_origins)
    bearer = BearerToken()
    in_cookie = CookieToken(cookie) if cookie is not None else None
    router = APIRouter(tags=list(tags))

    def clear(response: Response, connection: HTTPConnection) -> None:
        if cookie is not None:
            clear_session_cookie(response, cookie, connection)

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

    # POST /logout-others goes here: it needs RedisJWT.destroy_all(user_id,
    # keep=session.session_id) (one atomic script) and answers SessionsEnded.
    #
    # POST /refresh goes here: it needs RedisJWT.refresh(refresh_token) -> TokenPair,
    # the refresh token coming from the JSON body {"refresh_token": ...} or its
    # cookie; the new tokens go back in the body and, with a cookie, in the
    # cookies (set_session_cookie renews the CSRF value with the token).

    return router
