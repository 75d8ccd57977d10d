"""A FastAPI service with login sessions: log in, who am I, log out (here or everywhere),
list my sessions and revoke one.

    python examples/fastapi_app.py            # serve on http://127.0.0.1:8000 (docs at /docs)
    python examples/fastapi_app.py --check    # drive itself in-process; exit 1 on a failure

It uses ``REDIS_URL`` when set, else starts a throwaway redis-server.
"""

# No ``from __future__ import annotations``: FastAPI reads the route annotations,
# and they name variables local to create_app().
import argparse
import asyncio
import contextlib
import hmac
import os
import secrets
import sys
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import uvicorn
from fastapi import Depends, FastAPI, HTTPException
from pydantic import BaseModel

from redis_jwt import RedisJWT, Session
from redis_jwt.fastapi import BearerToken, install_error_handlers, require_session
from redis_jwt.testing import RedisServer

# A stand-in for your user store (never keep plain passwords in a real one).
USERS = {"alice": "wonderland", "bob": "builder"}


class Credentials(BaseModel):
    """What /login takes."""

    username: str
    password: str


def password_ok(username: str, password: str) -> bool:
    """Compare in constant time; any text a client sends is just a wrong password."""
    expected = USERS.get(username)
    # surrogatepass: JSON can carry a lone surrogate ("\ud800"), which strict UTF-8 refuses.
    sent = password.encode("utf-8", "surrogatepass")
    return expected is not None and hmac.compare_digest(expected.encode(), sent)


def create_app(redis_url: str) -> FastAPI:
    """Build the app; the RedisJWT opens and closes with the app's lifespan."""
    auth = RedisJWT(
        secret=os.environ.get("REDIS_JWT_SECRET") or secrets.token_urlsafe(48),
        redis_url=redis_url,
        ttl="15 minutes",
        max_sessions=5,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with auth:
            yield

    app = FastAPI(title="redis-jwt FastAPI example", lifespan=lifespan)
    # A StoreError from auth.sign() & co. becomes a 503 with Retry-After, not a 500.
    install_error_handlers(app)
    current = require_session(auth)  # once, so FastAPI verifies once per request
    raw_token = BearerToken()

    @app.post("/login")
    async def login(credentials: Credentials) -> dict[str, str]:
        if not password_ok(credentials.username, credentials.password):
            raise HTTPException(401, "Wrong username or password")
        token = await auth.sign(credentials.username, data_token={"name": credentials.username})
        return {"access_token": token, "token_type": "bearer"}

    @app.get("/me")
    async def me(session: Annotated[Session, Depends(current)]) -> dict[str, Any]:
        return {"user": session.user_id, "session_id": session.session_id, "ttl": session.ttl}

    @app.post("/logout")
    async def logout(
        session: Annotated[Session, Depends(current)],
        token: Annotated[str | None, Depends(raw_token)],
    ) -> dict[str, bool]:
        return {"ended": await auth.destroy(token or "")}

    @app.post("/logout/everywhere")
    async def logout_everywhere(session: Annotated[Session, Depends(current)]) -> dict[str, int]:
        return {"ended": await auth.destroy_all(session.user_id)}

    @app.get("/sessions")
    async def my_sessions(session: Annotated[Session, Depends(current)]) -> list[dict[str, Any]]:
        return [
            {
                "session_id": info.session_id,
                "created_at": info.issued_at.isoformat(),
                "last_seen_at": info.last_active_at.isoformat(),
                "current": info.session_id == session.session_id,
            }
            for info in await auth.sessions(session.user_id)
        ]

    @app.delete("/sessions/{session_id}", status_code=204)
    async def revoke(session_id: str, session: Annotated[Session, Depends(current)]) -> None:
        if not await auth.revoke(session.user_id, session_id):
            raise HTTPException(404, "No such session")

    return app


def expect(condition: bool, what: str) -> None:
    """Fail the self-check loudly."""
    if not condition:
        raise SystemExit(f"fastapi_app --check FAILED: {what}")


# The JSON escape of a lone surrogate, sent as bytes: no client library will encode it.
LONE_SURROGATE = b'{"username": "alice", "password": "\\ud800"}'
JSON = {"content-type": "application/json"}


async def check(app: FastAPI) -> None:
    """Drive the app in-process (httpx.ASGITransport) through every route."""
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as http,
    ):

        async def log_in() -> dict[str, str]:
            response = await http.post(
                "/login", json={"username": "alice", "password": "wonderland"}
            )
            expect(response.status_code == 200, f"login: {response.status_code}")
            return {"authorization": f"Bearer {response.json()['access_token']}"}

        wrong = await http.post("/login", json={"username": "alice", "password": "nope"})
        expect(wrong.status_code == 401, "a wrong password is refused")
        odd = await http.post("/login", content=LONE_SURROGATE, headers=JSON)
        expect(odd.status_code in (401, 422), f"a lone surrogate is refused: {odd.status_code}")
        anonymous = await http.get("/me")
        expect(anonymous.status_code == 401, "no token is a 401")
        expect(anonymous.headers.get("www-authenticate") == "Bearer", "with a Bearer challenge")

        laptop, phone, tablet = await log_in(), await log_in(), await log_in()
        me = (await http.get("/me", headers=laptop)).json()
        expect(me["user"] == "alice", "/me names the user")
        listed = (await http.get("/sessions", headers=laptop)).json()
        expect(len(listed) == 3, f"three sessions listed, got {len(listed)}")
        print(f"alice has {len(listed)} sessions")

        phone_id = (await http.get("/me", headers=phone)).json()["session_id"]
        revoked = await http.delete(f"/sessions/{phone_id}", headers=laptop)
        expect(revoked.status_code == 204, "the laptop revokes the phone")
        refused = await http.get("/me", headers=phone)
        expect(refused.status_code == 401, "the phone's token is refused now")
        expect('error="invalid_token"' in refused.headers["www-authenticate"], "invalid_token")
        print("revoked the phone: its token now gets 401")

        expect((await http.post("/logout", headers=tablet)).json() == {"ended": True}, "logout")
        expect((await http.get("/me", headers=tablet)).status_code == 401, "logged out")
        everywhere = await http.post("/logout/everywhere", headers=laptop)
        expect(everywhere.json() == {"ended": 1}, "logout everywhere ends the last one")
        expect((await http.get("/me", headers=laptop)).status_code == 401, "all gone")
        spec = (await http.get("/openapi.json")).json()
        expect("RedisJWT" in spec["components"]["securitySchemes"], "OpenAPI shows the scheme")
    print("fastapi_app: all checks passed")


def main() -> int:
    """Serve the app, or self-check it with --check."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
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
