"""A Litestar service with login sessions: log in, who am I, log out, and a WebSocket that
the server closes when its session ends.

    python examples/litestar_app.py            # serve on http://127.0.0.1:8000 (OpenAPI at /schema)
    python examples/litestar_app.py --check    # drive itself in-process; exit 1 on a failure

It uses ``REDIS_URL`` when set, else starts a throwaway redis-server. Serving
WebSockets needs ``pip install "uvicorn[standard]"`` (plain uvicorn has no
WebSocket library).
"""

from __future__ import annotations

import argparse
import contextlib
import hmac
import os
import secrets
import sys
from dataclasses import dataclass
from typing import Annotated, Any

import uvicorn
from litestar import Litestar, Request, WebSocket, get, post, websocket
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotAuthorizedException, WebSocketDisconnect
from litestar.params import Body
from litestar.testing import TestClient

from redis_jwt import RedisJWT, Session
from redis_jwt.litestar import RedisJWTPlugin
from redis_jwt.testing import RedisServer

# A stand-in for your user store (never keep plain passwords in a real one).
USERS = {"alice": "wonderland", "bob": "builder"}


@dataclass
class Credentials:
    """What /login takes."""

    username: str
    password: str


def password_ok(username: str, password: str) -> bool:
    """Compare in constant time; any text a client sends is just a wrong password."""
    expected = USERS.get(username)
    # surrogatepass: JSON can carry a lone surrogate ("\ud800"), which strict UTF-8 refuses.
    sent = password.encode("utf-8", "surrogatepass")
    return expected is not None and hmac.compare_digest(expected.encode(), sent)


def create_app(redis_url: str) -> Litestar:
    """Build the app; the plugin opens and closes the RedisJWT with the app's lifespan."""
    auth = RedisJWT(
        secret=os.environ.get("REDIS_JWT_SECRET") or secrets.token_urlsafe(48),
        redis_url=redis_url,
        ttl="15 minutes",
        max_sessions=5,
    )

    @post("/login", status_code=200)
    async def login(
        data: Annotated[Credentials, Body(media_type=RequestEncodingType.JSON)],
    ) -> dict[str, str]:
        if not password_ok(data.username, data.password):
            raise NotAuthorizedException("Wrong username or password")
        token = await auth.sign(data.username, data_token={"name": data.username})
        return {"access_token": token, "token_type": "bearer"}

    @get("/me")
    async def me(request: Request[Session, str, Any]) -> dict[str, Any]:
        session = request.user
        return {"user": session.user_id, "session_id": session.session_id, "ttl": session.ttl}

    @post("/logout", status_code=200)
    async def logout(request: Request[Session, str, Any]) -> dict[str, bool]:
        return {"ended": await auth.destroy(request.auth)}

    @get("/health")
    async def health() -> dict[str, bool]:
        return {"ok": True}

    @websocket("/ws")
    async def notifications(socket: WebSocket[Session, str, Any]) -> None:
        await socket.accept()
        await socket.send_text(f"hello {socket.user.user_id}")
        # The client left, or the session ended (code 1008): either way we are done.
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                await socket.send_text(f"echo: {await socket.receive_text()}")

    return Litestar(
        [login, me, logout, health, notifications],
        plugins=[RedisJWTPlugin(auth, exclude=["/login", "/health"])],
    )


def expect(condition: bool, what: str) -> None:
    """Fail the self-check loudly."""
    if not condition:
        raise SystemExit(f"litestar_app --check FAILED: {what}")


# The JSON escape of a lone surrogate, sent as bytes: no client library will encode it.
LONE_SURROGATE = b'{"username": "alice", "password": "\\ud800"}'
JSON = {"content-type": "application/json"}


def check(app: Litestar) -> None:
    """Drive the app in-process with Litestar's test client: HTTP, then a WebSocket."""
    with TestClient(app=app) as client:
        expect(client.get("/health").status_code == 200, "/health is open")
        anonymous = client.get("/me")
        expect(anonymous.status_code == 401, "no token is a 401")
        expect(anonymous.headers.get("www-authenticate") == "Bearer", "with a Bearer challenge")
        wrong = client.post("/login", json={"username": "alice", "password": "nope"})
        expect(wrong.status_code == 401, "a wrong password is refused")
        odd = client.post("/login", content=LONE_SURROGATE, headers=JSON)
        expect(odd.status_code in (400, 401), f"a lone surrogate is refused: {odd.status_code}")

        login = client.post("/login", json={"username": "alice", "password": "wonderland"})
        expect(login.status_code == 200, f"login: {login.status_code}")
        headers = {"authorization": f"Bearer {login.json()['access_token']}"}
        expect(client.get("/me", headers=headers).json()["user"] == "alice", "/me names the user")
        print("logged in as alice")

        with client.websocket_connect("/ws", headers=headers) as socket:
            expect(socket.receive_text() == "hello alice", "the socket knows the user")
            socket.send_text("hi")
            expect(socket.receive_text() == "echo: hi", "the socket echoes")
            expect(client.post("/logout", headers=headers).json() == {"ended": True}, "logout")
            try:
                socket.receive_text()
            except WebSocketDisconnect as exc:
                expect(exc.code == 1008, f"the logout closes the socket with 1008: {exc.code}")
            else:
                expect(False, "the logout closes the socket")
        print("logging out closed the open WebSocket with code 1008")

        refused = client.get("/me", headers=headers)
        expect(refused.status_code == 401, "logged out")
        expect('error="invalid_token"' in refused.headers["www-authenticate"], "invalid_token")
        spec = client.get("/schema/openapi.json").json()
        expect("RedisJWT" in spec["components"]["securitySchemes"], "OpenAPI shows the scheme")
    print("litestar_app: all checks passed")


def main() -> int:
    """Serve the app, or self-check it with --check."""
    parser = argparse.ArgumentParser(description="redis-jwt Litestar example")
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
            check(app)
        else:
            uvicorn.run(app, host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
