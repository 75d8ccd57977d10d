"""The demo app: a FastAPI service and one HTML page over a :class:`~redis_jwt.RedisJWT`.

Demo only: anyone can log in as any name, with no password. Each browser tab
keeps its own token (``sessionStorage``), so two tabs are two sessions (two
devices) of one user. The listener is on (``listen=True``), so the page sees
sessions expire, whichever instance or client ended them.
"""

# No ``from __future__ import annotations``: FastAPI reads the route signatures,
# which name local variables.
import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field, field_validator

from redis_jwt import Event, RedisJWT, Session, SessionInfo
from redis_jwt.fastapi import BearerToken, install_error_handlers, require_session
from redis_jwt.models import EventKind

__all__ = ["create_app"]

_HEARTBEAT_SECONDS = 15.0
# An events stream ends after this long; the page simply reconnects.
_STREAM_SECONDS = 3600.0


#: The session events the page shows (sliding verifies emit none: only the Extend button does).
SHOWN_EVENTS: tuple[EventKind, ...] = ("created", "extended", "destroyed", "expired")


class Login(BaseModel):
    """The login form: a name, nothing else (demo only)."""

    user: str = Field(min_length=1, max_length=64)

    @field_validator("user")
    @classmethod
    def _visible(cls, value: str) -> str:
        # Spaces around a name are a typo; a name of spaces only is no name at all.
        name = value.strip()
        if not name:
            raise ValueError("enter a name: spaces alone are not a name")
        # Text that is not valid UTF-8 (a lone surrogate) is refused before this, by pydantic.
        return name


def _info(info: SessionInfo, current: Session) -> dict[str, Any]:
    data = info.data_session
    return {
        "session_id": info.session_id,
        "created_at": info.issued_at.isoformat(),
        "last_seen_at": info.last_active_at.isoformat(),
        "expires_at": info.expires_at.isoformat(),
        "ttl": info.ttl,
        "user_agent": str(data.get("user_agent", "")),
        "ip": str(data.get("ip", "")),
        "current": info.session_id == current.session_id,
    }


def _event(event: Event) -> str:
    payload = {
        "kind": event.kind,
        "session_id": event.session_id,
        "reason": event.reason,
        "at": event.at.isoformat(),
    }
    return f"event: session\ndata: {json.dumps(payload)}\n\n"


def create_app(redis_url: str, *, secret: str | None = None, ttl: str = "30 minutes") -> FastAPI:
    """Build the demo app on the Redis at ``redis_url`` (keys under the ``demo`` prefix).

    Args:
        redis_url: where Redis is.
        secret: the signing secret; a random one (tokens die with the process) by default.
        ttl: how long a session lives without a request (every request extends it).
    """
    auth = RedisJWT(
        secret=secret or secrets.token_urlsafe(48),
        redis_url=redis_url,
        ttl=ttl,
        max_age="1 day",
        sliding=True,
        max_sessions=10,
        prefix="demo",
        # The listener reports expiries (within about a second) and other instances' changes.
        listen=True,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with auth:
            yield

    app = FastAPI(title="redis-jwt demo", lifespan=lifespan)
    app.state.auth = auth
    install_error_handlers(app)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own 422 echoes the input, and an input such as a lone surrogate
        # cannot be encoded as JSON: answer with the messages only.
        errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    current = require_session(auth)
    bearer = BearerToken()
    static = files("redis_jwt._demo").joinpath("static")
    page = static.joinpath("index.html").read_text(encoding="utf-8")
    icon = static.joinpath("favicon.svg").read_bytes()

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

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
    async def login(form: Login, request: Request) -> dict[str, str]:
        user_agent = request.headers.get("user-agent", "")[:300]
        ip = request.client.host if request.client else ""
        token = await auth.sign(form.user, data_session={"user_agent": user_agent, "ip": ip})
        session = await auth.verify(token)
        return {"token": token, "user": session.user_id, "session_id": session.session_id}

    @app.get("/api/me")
    async def me(session: Annotated[Session, Depends(current)]) -> dict[str, Any]:
        return {
            "user": session.user_id,
            "session_id": session.session_id,
            "expires_at": session.expires_at.isoformat(),
            "ttl": session.ttl,
        }

    @app.post("/api/extend")
    async def extend(
        session: Annotated[Session, Depends(current)],
        token: Annotated[str | None, Depends(bearer)],
    ) -> dict[str, Any]:
        extended = await auth.extend(token or "")
        return {"expires_at": extended.expires_at.isoformat(), "ttl": extended.ttl}

    @app.get("/api/sessions")
    async def sessions(session: Annotated[Session, Depends(current)]) -> list[dict[str, Any]]:
        return [_info(info, session) for info in await auth.sessions(session.user_id)]

    @app.delete("/api/sessions/{session_id}")
    async def revoke(
        session_id: str, session: Annotated[Session, Depends(current)]
    ) -> dict[str, bool]:
        if not await auth.revoke(session.user_id, session_id):
            raise HTTPException(404, "No such session")
        return {"revoked": True}

    @app.post("/api/logout")
    async def logout(
        session: Annotated[Session, Depends(current)],
        token: Annotated[str | None, Depends(bearer)],
    ) -> dict[str, bool]:
        return {"ended": await auth.destroy(token or "")}

    @app.post("/api/logout-all")
    async def logout_all(session: Annotated[Session, Depends(current)]) -> dict[str, int]:
        return {"ended": await auth.destroy_all(session.user_id)}

    @app.get("/api/events")
    async def events(session: Annotated[Session, Depends(current)]) -> StreamingResponse:
        """Server-sent events: this user's session events, until this session ends."""

        async def stream() -> AsyncIterator[str]:
            # Subscribed inside the generator, so that its `finally` always unsubscribes.
            subscription = auth.events.subscribe(*SHOWN_EVENTS)
            deadline = time.monotonic() + _STREAM_SECONDS
            try:
                yield ": connected\n\n"
                while time.monotonic() < deadline:
                    try:
                        async with asyncio.timeout(_HEARTBEAT_SECONDS):
                            event = await anext(subscription)
                    except TimeoutError:
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
                        return
            finally:
                await subscription.aclose()

        headers = {"cache-control": "no-store", "x-accel-buffering": "no"}
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)

    return app
