"""A Starlette app behind RedisJWTMiddleware: a session cookie, and a WebSocket that the
server closes when the session is logged out.

    python examples/starlette_app.py            # serve on http://127.0.0.1:8000
    python examples/starlette_app.py --check    # drive itself in-process; exit 1 on a failure

It uses ``REDIS_URL`` when set, else starts a throwaway redis-server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import sys
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from redis_jwt import RedisJWT
from redis_jwt.starlette import (
    RedisJWTMiddleware,
    SessionCookie,
    clear_session_cookie,
    set_session_cookie,
)
from redis_jwt.testing import RedisServer

# HttpOnly + SameSite=Lax, Secure except over plain http to localhost, and a CSRF
# cookie whose value unsafe requests must send back in X-CSRF-Token (docs/security.md).
COOKIE = SessionCookie(name="session", max_age_seconds=3600)


def valid_name(name: str) -> bool:
    """A non-blank name that is valid UTF-8 (JSON can carry a lone surrogate such as "\\ud800")."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return 0 < len(name) <= 64 and not name.isspace()


def create_app(redis_url: str) -> Starlette:
    """Build the app; the RedisJWT opens and closes with the app's lifespan."""
    auth = RedisJWT(
        secret=os.environ.get("REDIS_JWT_SECRET") or secrets.token_urlsafe(48),
        redis_url=redis_url,
        ttl="1 hour",
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with auth:
            yield

    async def login(request: Request) -> Response:
        try:
            form = await request.json()
        except ValueError:  # not JSON, or not UTF-8
            return JSONResponse({"detail": "send a JSON object"}, 400)
        user = form.get("username") if isinstance(form, dict) else None
        if not isinstance(user, str) or not valid_name(user):
            return JSONResponse({"detail": "username must be 1 to 64 characters of text"}, 400)
        token = await auth.sign(user)
        response = JSONResponse({"user": user})
        set_session_cookie(response, token, COOKIE, request)
        return response

    async def me(request: Request) -> Response:
        session = request.state.user  # set by the middleware
        return JSONResponse({"user": session.user_id, "ttl": session.ttl})

    async def logout(request: Request) -> Response:
        session = request.state.user
        await auth.revoke(session.user_id, session.session_id)
        response = JSONResponse({"ended": True})
        clear_session_cookie(response, COOKIE, request)
        return response

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def notifications(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(f"hello {websocket.state.user.user_id}")
        try:
            while True:
                await websocket.send_text(f"echo: {await websocket.receive_text()}")
        except WebSocketDisconnect:
            pass  # the client left, or the session ended (code 1008)

    return Starlette(
        routes=[
            Route("/login", login, methods=["POST"]),
            Route("/me", me),
            Route("/logout", logout, methods=["POST"]),
            Route("/health", health),
            WebSocketRoute("/ws", notifications),
        ],
        middleware=[
            Middleware(RedisJWTMiddleware, auth=auth, exclude=("/login", "/health"), cookie=COOKIE)
        ],
        lifespan=lifespan,
    )


def expect(condition: bool, what: str) -> None:
    """Fail the self-check loudly."""
    if not condition:
        raise SystemExit(f"starlette_app --check FAILED: {what}")


class SocketDriver:
    """Just enough of an ASGI server to drive one WebSocket of the app in-process."""

    def __init__(self, app: Starlette, path: str, cookie: str) -> None:
        self.to_app: asyncio.Queue[MutableMapping[str, Any]] = asyncio.Queue()
        self.from_app: asyncio.Queue[MutableMapping[str, Any]] = asyncio.Queue()
        scope = {
            "type": "websocket",
            "asgi": {"version": "3.0"},
            "scheme": "wss",
            "path": path,
            "root_path": "",
            "query_string": b"",
            "headers": [(b"host", b"app"), (b"cookie", cookie.encode())],
            "client": ("127.0.0.1", 50000),
            "server": ("app", 443),
            "subprotocols": [],
        }
        self.task = asyncio.create_task(app(scope, self.to_app.get, self.from_app.put))
        self.to_app.put_nowait({"type": "websocket.connect"})

    async def next(self) -> MutableMapping[str, Any]:
        async with asyncio.timeout(5):
            return await self.from_app.get()


async def check(app: Starlette) -> None:
    """Drive the app in-process: HTTP through httpx.ASGITransport, then a WebSocket."""
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="https://app") as http,
    ):
        expect((await http.get("/health")).status_code == 200, "/health is open")
        expect((await http.get("/me")).status_code == 401, "/me needs a session")
        odd = await http.post("/login", content=b'{"username": "\\ud800"}')
        expect(odd.status_code == 400, f"a lone surrogate is refused: {odd.status_code}")
        expect((await http.post("/login", json=["alice"])).status_code == 400, "not an object")
        expect((await http.post("/login", content=b"\xff{")).status_code == 400, "not JSON")
        login = await http.post("/login", json={"username": "alice"})
        cookie = login.headers.get("set-cookie", "")
        expect("HttpOnly" in cookie and "Secure" in cookie, f"a hardened cookie: {cookie}")
        expect((await http.get("/me")).json()["user"] == "alice", "the cookie authenticates")
        print("logged in with a cookie")

        socket = SocketDriver(app, "/ws", f"session={http.cookies['session']}")
        expect((await socket.next())["type"] == "websocket.accept", "the socket is accepted")
        expect((await socket.next()).get("text") == "hello alice", "the socket knows the user")
        # The page sends the readable CSRF cookie back in a header on unsafe requests.
        logout = await http.post("/logout", headers={"x-csrf-token": http.cookies["csrf_token"]})
        expect("session=" in logout.headers.get("set-cookie", ""), "logout clears the cookie")
        closed = await socket.next()
        expect(
            closed == {"type": "websocket.close", "code": 1008, "reason": "session ended"},
            f"the logout closes the socket with 1008: {closed}",
        )
        async with asyncio.timeout(5):
            await socket.task
        print("logging out closed the open WebSocket with code 1008")
        expect((await http.get("/me")).status_code == 401, "logged out")
        refused = SocketDriver(app, "/ws", "")
        expect((await refused.next()).get("code") == 1008, "a socket without a session is refused")
    print("starlette_app: all checks passed")


def main() -> int:
    """Serve the app, or self-check it with --check."""
    parser = argparse.ArgumentParser(description="redis-jwt Starlette example")
    parser.add_argument("--check", action="store_true", help="drive the app in-process and exit")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        url = os.environ.get("REDIS_URL")
        if not url:
            url = stack.enter_context(RedisServer()).url
            print(f"started a throwaway redis-server at {url}")
        app = create_app(url)
        if args.check:
            asyncio.run(check(app))
        else:
            uvicorn.run(app, host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
