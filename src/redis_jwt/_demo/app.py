"""The demo app: a FastAPI service and one HTML page over a :class:`~redis_jwt.RedisJWT`.

Demo only: anyone can log in as any name, with no password. Login signs a
refresh pair carried in cookies: the access token in an HttpOnly cookie with
its readable CSRF cookie, the refresh token in an HttpOnly cookie sent to
``/api/refresh`` only. Every tab of one browser shares them, so the tabs are one
session (one device); another browser, a private window or another host name
(``localhost`` beside ``127.0.0.1``) is another device. The listener is on
(``listen=True``), so the page sees sessions end, whichever instance or client
ended them.
"""

# No ``from __future__ import annotations``: FastAPI reads the route signatures,
# which name local variables.
import asyncio
import json
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from importlib.resources import files
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field, field_validator

from redis_jwt import Event, RedisJWT, Session
from redis_jwt._duration import parse_duration
from redis_jwt.errors import AuthenticationError, RefreshTokenReused, StoreError
from redis_jwt.fastapi import (
    BearerToken,
    client_info,
    install_error_handlers,
    require_session,
    sessions_router,
)
from redis_jwt.models import EventKind
from redis_jwt.starlette import SessionCookie, set_session_cookie

__all__ = ["ACCESS_COOKIE", "REFRESH_COOKIE", "create_app"]

_HEARTBEAT_SECONDS = 15.0
# An events stream ends after this long; the page simply reconnects.
_STREAM_SECONDS = 3600.0
# After this session's own end, the stream waits this long for the rest of the burst.
_LINGER_SECONDS = 0.5
# The thief of the simulation replays the copy this long after the grace has passed,
# so that Redis (whose clock judges the grace) surely sees it late.
_REPLAY_MARGIN_SECONDS = 1.0
_log = logging.getLogger("redis_jwt.demo")

#: The session events the page shows.
SHOWN_EVENTS: tuple[EventKind, ...] = ("created", "extended", "destroyed", "expired")
#: The access token's cookie (HttpOnly) and its readable CSRF cookie ``csrf_token``.
ACCESS_COOKIE = SessionCookie(name="session")
#: The refresh token's cookie: HttpOnly, sent to ``/api/refresh`` (and below) only.
REFRESH_COOKIE = SessionCookie(name="refresh_token", path="/api/refresh", csrf=False)


class Login(BaseModel):
    """The login form: a name (demo only: no password) and where the tokens go."""

    user: str = Field(min_length=1, max_length=64)
    #: ``cookie`` (the page): HttpOnly cookies, no token in the body. ``bearer``
    #: (scripts, mobile apps): the pair in the body, nothing in cookies.
    transport: Literal["cookie", "bearer"] = "cookie"

    @field_validator("user")
    @classmethod
    def _visible(cls, value: str) -> str:
        # Spaces around a name are a typo; a name of spaces only is no name at all.
        name = value.strip()
        if not name:
            raise ValueError("enter a name: spaces alone are not a name")
        # Text that is not valid UTF-8 (a lone surrogate) is refused before this, by pydantic.
        return name


def _access_expires_at(session: Session) -> str:
    # The access token's own end (its ``exp``), earlier than the session's idle end.
    return datetime.fromtimestamp(int(session.claims["exp"]), UTC).isoformat()


def _event(event: Event) -> str:
    payload = {
        "kind": event.kind,
        "session_id": event.session_id,
        "reason": event.reason,
        "at": event.at.isoformat(),
    }
    return f"event: session\ndata: {json.dumps(payload)}\n\n"


def create_app(
    redis_url: str,
    *,
    secret: str | None = None,
    ttl: str = "30 minutes",
    access_ttl: str | None = None,
    refresh_grace: str | None = None,
) -> FastAPI:
    """Build the demo app on the Redis at ``redis_url`` (keys under the ``demo`` prefix).

    Args:
        redis_url: where Redis is.
        secret: the signing secret; a random one (tokens die with the process) by default.
        ttl: how long a session lives without a refresh or an extend.
        access_ttl: the access token's lifetime; short, so that the page's
            refreshes show. Default: ``$REDIS_JWT_ACCESS_TTL``, else one minute.
        refresh_grace: how long a spent refresh token still continues its chain.
            Default: ``$REDIS_JWT_REFRESH_GRACE``, else 3 seconds.
    """
    grace = refresh_grace or os.environ.get("REDIS_JWT_REFRESH_GRACE") or "3 seconds"
    # The simulated thief must wait this long; the library reads the same text.
    grace_seconds = parse_duration(grace, name="refresh_grace")
    auth = RedisJWT(
        secret=secret or secrets.token_urlsafe(48),
        redis_url=redis_url,
        ttl=ttl,
        max_age="1 day",
        max_sessions=10,
        prefix="demo",
        access_ttl=access_ttl or os.environ.get("REDIS_JWT_ACCESS_TTL") or "1 minute",
        refresh_grace=grace,
        # Last seen, exact to 5 s: coarse enough to cost nothing, fine enough to watch.
        track_activity=True,
        activity_resolution="5 seconds",
        # The listener reports expiries (within about a second) and other instances' changes.
        listen=True,
    )
    # The simulated thief's replays, cancelled when the app stops.
    replays: set[asyncio.Task[None]] = set()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with auth:
            try:
                yield
            finally:
                for task in replays:
                    task.cancel()
                await asyncio.gather(*replays, return_exceptions=True)

    app = FastAPI(title="redis-jwt demo", lifespan=lifespan)
    app.state.auth = auth
    install_error_handlers(app)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own 422 echoes the input, and an input such as a lone surrogate
        # cannot be encoded as JSON: answer with the messages only.
        errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    current = require_session(auth, cookie=ACCESS_COOKIE)
    token_of = BearerToken(cookie=ACCESS_COOKIE)
    # GET /api/sessions, DELETE /api/sessions/{id}, POST /api/logout, /api/logout-others,
    # /api/logout-all and /api/refresh: the library's ready-made routes.
    app.include_router(
        sessions_router(auth, cookie=ACCESS_COOKIE, refresh_cookie=REFRESH_COOKIE), prefix="/api"
    )
    static = files("redis_jwt._demo").joinpath("static")
    page = static.joinpath("index.html").read_text(encoding="utf-8")
    icon = static.joinpath("favicon.svg").read_bytes()

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page, headers={"cache-control": "no-store"})

    # /favicon.ico too: some clients ask for it whatever the page's <link rel="icon"> says.
    @app.get("/favicon.svg", include_in_schema=False)
    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        headers = {"cache-control": "public, max-age=86400"}
        return Response(icon, media_type="image/svg+xml", headers=headers)

    @app.get("/health")
    async def health() -> dict[str, bool]:
        # info(), not ping(): a StoreError here is the demo's 503 with Retry-After.
        return {"ok": bool(await auth.info("server"))}

    @app.post("/api/login")
    async def login(form: Login, request: Request) -> JSONResponse:
        pair = await auth.sign_pair(form.user, client=client_info(request))
        session = await auth.verify(pair.access_token)
        answer: dict[str, Any] = {
            "user": session.user_id,
            "session_id": session.session_id,
            "access_expires_at": pair.access_expires_at.isoformat(),
            "refresh_expires_at": pair.refresh_expires_at.isoformat(),
        }
        if form.transport == "bearer":
            answer |= {"access_token": pair.access_token, "refresh_token": pair.refresh_token}
            return JSONResponse(answer)
        # Cookies only: the page's scripts never hold a token (an XSS cannot take one away).
        response = JSONResponse(answer)
        set_session_cookie(response, pair.access_token, ACCESS_COOKIE, request)
        set_session_cookie(response, pair.refresh_token, REFRESH_COOKIE, request)
        return response

    @app.get("/api/me")
    async def me(session: Annotated[Session, Depends(current)]) -> dict[str, Any]:
        return {
            "user": session.user_id,
            "session_id": session.session_id,
            "expires_at": session.expires_at.isoformat(),
            "access_expires_at": _access_expires_at(session),
            "ttl": session.ttl,
            "refresh_grace_seconds": grace_seconds,
        }

    @app.post("/api/extend")
    async def extend(
        session: Annotated[Session, Depends(current)],
        token: Annotated[str | None, Depends(token_of)],
    ) -> dict[str, Any]:
        extended = await auth.extend(token or "")
        return {"expires_at": extended.expires_at.isoformat(), "ttl": extended.ttl}

    async def replay(stolen: str, delay_seconds: float) -> None:
        await asyncio.sleep(delay_seconds)
        try:
            await auth.refresh(stolen)
        except RefreshTokenReused:
            return  # what the simulation shows: the session ended, every tab is told
        except (AuthenticationError, StoreError) as exc:
            _log.info("the simulated replay was refused: %s", exc)
            return
        _log.warning("the simulated replay was accepted: it came within the grace")

    @app.post("/api/refresh/theft")
    async def theft(
        request: Request, session: Annotated[Session, Depends(current)]
    ) -> JSONResponse:
        """Simulate a stolen refresh token: copy it, refresh as this browser, replay it late."""
        # The refresh cookie's path (/api/refresh) covers this route: the "thief"
        # copies it here. This route is CSRF-checked like every unsafe one.
        stolen = request.cookies.get(REFRESH_COOKIE.name)
        if not stolen:
            raise HTTPException(400, "No refresh cookie: log in from the page first")
        # This browser refreshes first (as it would on its timer): the copy is now spent.
        pair = await auth.refresh(stolen)
        delay = grace_seconds + _REPLAY_MARGIN_SECONDS
        task = asyncio.create_task(replay(stolen, delay))
        replays.add(task)
        task.add_done_callback(replays.discard)
        response = JSONResponse(
            {
                "access_expires_at": pair.access_expires_at.isoformat(),
                "replay_in_seconds": delay,
            }
        )
        set_session_cookie(response, pair.access_token, ACCESS_COOKIE, request)
        set_session_cookie(response, pair.refresh_token, REFRESH_COOKIE, request)
        return response

    @app.get("/api/events")
    async def events(session: Annotated[Session, Depends(current)]) -> StreamingResponse:
        """Server-sent events: this user's session events, until this session ends."""

        async def stream() -> AsyncIterator[str]:
            # Subscribed inside the generator, so that its `finally` always unsubscribes.
            subscription = auth.events.subscribe(*SHOWN_EVENTS)
            deadline = time.monotonic() + _STREAM_SECONDS
            ended = False
            try:
                yield ": connected\n\n"
                while time.monotonic() < deadline:
                    try:
                        # Once this session has ended, the rest of its burst (a logout
                        # everywhere ends every session at once, in any order) still goes out.
                        wait = _LINGER_SECONDS if ended else _HEARTBEAT_SECONDS
                        async with asyncio.timeout(wait):
                            event = await anext(subscription)
                    except TimeoutError:
                        if ended:
                            return
                        yield ": keep-alive\n\n"
                        continue
                    except StopAsyncIteration:  # the app is shutting down
                        return
                    if event.user_id != session.user_id:
                        continue
                    yield _event(event)
                    if event.session_id == session.session_id and event.kind in (
                        "destroyed",
                        "expired",
                    ):
                        ended = True
            finally:
                await subscription.aclose()

        headers = {"cache-control": "no-store", "x-accel-buffering": "no"}
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)

    return app
