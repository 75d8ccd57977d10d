"""The admin ASGI app: routes over a :class:`~redis_jwt.RedisJWT`, behind ``authorize`` and CSRF."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .. import RedisJWT
from .._cli.events import event_json
from .._cli.stats import Stats, collect_stats
from ..errors import ConfigurationError, StoreError
from ._guard import CSRF_COOKIE, CSRF_FIELD, Authorize, Csrf, Guarded, read_form
from ._pages import Page

__all__ = ["Authorize", "create_admin_app"]

_STATIC = Path(__file__).parent / "static"
#: The page shows stats counted within this long; the rest is "partial".
STATS_SECONDS = 3.0
_HEARTBEAT_SECONDS = 15.0
# An event stream ends after this long; the page reconnects by itself.
_STREAM_SECONDS = 3600.0
_NOTICES = {"revoked": "Session revoked.", "gone": "That session had already ended."}
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def _user(value: str | None) -> str:
    return (value or "").strip()


def create_admin_app(
    auth: RedisJWT, *, authorize: Authorize, title: str = "Sessions admin"
) -> Guarded:
    """Build the admin ASGI app to mount (e.g. at ``/admin``) in a Starlette or FastAPI app.

    The app does not open or close ``auth``: open it in your app's lifespan.

    Args:
        auth: the RedisJWT whose sessions are shown.
        authorize: ``authorize(request) -> bool`` (sync or async, a Starlette
            ``Request``); every request it does not approve with ``True`` gets 403.
        title: the page title.

    Returns:
        An ASGI app.
    """
    csrf = Csrf()

    def page(request: Request) -> Page:
        return Page(_root(request), csrf.token, title)

    def html(request: Request, content: str, status: int = 200) -> HTMLResponse:
        response = HTMLResponse(content, status_code=status, headers=_SECURITY_HEADERS)
        response.set_cookie(
            CSRF_COOKIE, csrf.token, httponly=True, samesite="strict",
            path=_root(request) or "/", secure=request.url.scheme == "https",
        )  # fmt: skip
        return response

    async def stats_or_none() -> Stats | None:
        try:
            return await collect_stats(auth, max_seconds=STATS_SECONDS)
        except StoreError:
            return None

    async def index(request: Request) -> Response:
        user = _user(request.query_params.get("user"))
        sessions = None
        if user:
            try:
                sessions = await auth.sessions(user)
            except ConfigurationError:
                text = "A user id is 1 to 512 bytes of text."
                return html(request, page(request).message(400, "Not a user id", text), 400)
        notice = _NOTICES.get(request.query_params.get("notice", ""), "")
        revoked = request.query_params.get("revoked_all")
        if revoked is not None and revoked.isdigit():
            notice = f"Ended {revoked} session{'s' if revoked != '1' else ''}."
        content = page(request).render(
            stats=await stats_or_none(),
            user=user,
            sessions=sessions,
            notice=notice,
            confirm_all=request.query_params.get("confirm") == "all",
        )
        return html(request, content)

    async def unsafe_form(request: Request) -> dict[str, str]:
        form = await read_form(request)
        if form is None:
            raise HTTPException(400, "send a form (application/x-www-form-urlencoded)")
        if not csrf.valid(request, form.get(CSRF_FIELD)):
            raise HTTPException(403, "CSRF check failed: reload the admin page and try again")
        return form

    def back(request: Request, user: str, **query: str) -> RedirectResponse:
        tail = "".join(f"&{k}={quote(v, safe='')}" for k, v in query.items())
        return RedirectResponse(f"{_root(request)}/?user={quote(user, safe='')}{tail}", 303)

    async def revoke(request: Request) -> Response:
        form = await unsafe_form(request)
        user, session_id = _user(form.get("user")), form.get("session_id", "")
        try:
            ended = await auth.revoke(user, session_id)
        except ConfigurationError:
            raise HTTPException(400, "not a user id") from None
        return back(request, user, notice="revoked" if ended else "gone")

    async def revoke_all(request: Request) -> Response:
        form = await unsafe_form(request)
        user = _user(form.get("user"))
        try:
            ended = await auth.destroy_all(user)
        except ConfigurationError:
            raise HTTPException(400, "not a user id") from None
        return back(request, user, revoked_all=str(ended))

    async def api_stats(request: Request) -> Response:
        stats = await collect_stats(auth, max_seconds=STATS_SECONDS)
        return JSONResponse(stats.as_json(), headers={"Cache-Control": "no-store"})

    async def api_sessions(request: Request) -> Response:
        user = _user(request.query_params.get("user"))
        try:
            infos = await auth.sessions(user)
        except ConfigurationError:
            return JSONResponse({"detail": "user must be 1 to 512 bytes of text"}, 400)
        return JSONResponse([info.model_dump(mode="json") for info in infos])

    async def events(request: Request) -> Response:
        subscription = auth.events.subscribe()

        async def stream() -> AsyncIterator[str]:
            loop = asyncio.get_running_loop()
            ends = loop.time() + _STREAM_SECONDS
            try:
                yield "retry: 2000\n\n"
                while loop.time() < ends:
                    try:
                        event = await asyncio.wait_for(anext(subscription), _HEARTBEAT_SECONDS)
                    except TimeoutError:
                        yield ": heartbeat\n\n"
                        continue
                    except StopAsyncIteration:
                        return
                    yield f"data: {json.dumps(event_json(event))}\n\n"
            finally:
                await subscription.aclose()

        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, HTTPException):  # only registered for HTTPException
            raise exc
        if request.headers.get("accept", "").startswith("application/json"):
            return JSONResponse({"detail": exc.detail}, exc.status_code)
        heading = {400: "Bad request", 403: "Forbidden", 404: "Not found"}.get(
            exc.status_code, "Error"
        )
        return html(request, page(request).message(exc.status_code, heading, exc.detail),
                    exc.status_code)  # fmt: skip

    async def on_store_error(request: Request, exc: Exception) -> Response:
        text = "Redis is unavailable right now; try again in a moment."
        response = html(request, page(request).message(503, "Redis is unavailable", text), 503)
        response.headers["Retry-After"] = "1"
        return response

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/revoke", revoke, methods=["POST"]),
            Route("/revoke-all", revoke_all, methods=["POST"]),
            Route("/api/stats", api_stats),
            Route("/api/sessions", api_sessions),
            Route("/events", events),
            Mount("/static", app=StaticFiles(directory=_STATIC), name="static"),
        ],
        exception_handlers={HTTPException: on_http_error, StoreError: on_store_error},
    )
    return Guarded(app, authorize)
