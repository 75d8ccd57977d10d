"""sessions_router: POST /logout-others and the device fields of GET /sessions, over real Redis."""

# No ``from __future__ import annotations``: FastAPI reads the routes' annotations.

import time
from datetime import datetime

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from redis_jwt import RedisJWT
from redis_jwt.fastapi import client_info, install_error_handlers, sessions_router
from redis_jwt.starlette import SessionCookie, set_session_cookie
from redis_jwt.testing import RedisServer

from .conftest import SECRET
from .web_helpers import bearer, client

COOKIE = SessionCookie(name="sid")


def make_app(auth: RedisJWT, cookie: SessionCookie | None = None) -> FastAPI:
    app = FastAPI()
    app.include_router(sessions_router(auth, cookie=cookie), prefix="/auth")

    @app.post("/login")
    async def login(request: Request) -> Response:
        token = await auth.sign("alice", client=client_info(request))
        response = JSONResponse({"token": token})
        if cookie is not None:
            set_session_cookie(response, token, cookie, request)
        return response

    return app


async def test_logout_others_ends_every_other_session_of_the_caller(auth: RedisJWT) -> None:
    tokens = [await auth.sign("alice") for _ in range(3)]
    bobs = await auth.sign("bob")
    async with client(make_app(auth)) as http:
        response = await http.post("/auth/logout-others", headers=bearer(tokens[1]))
        assert (response.status_code, response.json()) == (200, {"ended": 2})
        assert "set-cookie" not in response.headers  # this session stays signed in
        statuses = [
            (await http.get("/auth/sessions", headers=bearer(t))).status_code for t in tokens
        ]
        assert statuses == [401, 200, 401]
        again = await http.post("/auth/logout-others", headers=bearer(tokens[1]))
        assert again.json() == {"ended": 0}
        refused = await http.post("/auth/logout-others", headers=bearer(tokens[0]))
        assert refused.status_code == 401
    assert await auth.count("alice") == 1
    assert (await auth.verify(bobs)).user_id == "bob"


async def test_with_cookies_logout_others_needs_the_csrf_token(auth: RedisJWT) -> None:
    async with client(make_app(auth, COOKIE)) as http:
        await http.post("/login")
        await auth.sign("alice")
        forged = await http.post("/auth/logout-others")
        assert (forged.status_code, forged.json()) == (403, {"detail": "CSRF check failed"})
        assert await auth.count("alice") == 2
        csrf = {"x-csrf-token": http.cookies["csrf_token"]}
        response = await http.post("/auth/logout-others", headers=csrf)
        assert response.json() == {"ended": 1}
        assert "sid" in http.cookies
        assert (await http.get("/auth/sessions")).status_code == 200
    assert await auth.count("alice") == 1


async def test_the_list_shows_each_device_and_when_it_was_last_seen(redis_url: str) -> None:
    auth = RedisJWT(secret=SECRET, redis_url=redis_url, track_activity=True, activity_resolution=1)
    async with auth, client(make_app(auth)) as http:
        phone = await http.post("/login", headers={"user-agent": "Phone/1.0"})
        laptop = (await http.post("/login", headers={"user-agent": "Laptop/2.0"})).json()["token"]
        before = datetime.fromtimestamp(time.time() - 0.05).astimezone()
        listed = (await http.get("/auth/sessions", headers=bearer(laptop))).json()
    by_agent = {s["user_agent"]: s for s in listed}
    assert set(by_agent) == {"Phone/1.0", "Laptop/2.0"}
    assert by_agent["Laptop/2.0"]["current"] is True
    assert by_agent["Phone/1.0"]["current"] is False
    assert {s["ip"] for s in listed} == {"127.0.0.1"}  # httpx's in-process client address
    # The listing request itself was a verify of the laptop's session.
    assert datetime.fromisoformat(by_agent["Laptop/2.0"]["last_seen_at"]) >= before
    assert phone.status_code == 200
    assert by_agent["Phone/1.0"]["last_seen_at"] is None  # never used since it signed in


async def test_openapi_documents_logout_others(auth: RedisJWT) -> None:
    async with client(make_app(auth, COOKIE)) as http:
        spec = (await http.get("/openapi.json")).json()
    route = spec["paths"]["/auth/logout-others"]["post"]
    schema = route["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema["$ref"].endswith("/SessionsEnded")
    assert route["security"] == [{"RedisJWT": []}, {"RedisJWTCookie": []}]
    view = spec["components"]["schemas"]["SessionView"]["properties"]
    assert {"ip", "user_agent", "last_seen_at"} <= set(view)


async def test_redis_down_is_a_fast_503_on_logout_others(own_server: RedisServer) -> None:
    async with RedisJWT(secret=SECRET, redis_url=own_server.url) as auth:
        token = await auth.sign("alice")
        app = make_app(auth)
        install_error_handlers(app)
        async with client(app) as http:
            own_server.kill()
            response = await http.post("/auth/logout-others", headers=bearer(token))
            assert response.status_code == 503
            assert response.headers["retry-after"] == "1"


async def test_redis_failing_inside_logout_others_is_a_503(own_server: RedisServer) -> None:
    # Writes paused: the verify (a read) passes, the route's own script times out.
    async with RedisJWT(secret=SECRET, redis_url=own_server.url) as auth:
        token = await auth.sign("alice")
        await auth.sign("alice")
        async with client(make_app(auth)) as http:
            await auth.redis.execute_command("CLIENT", "PAUSE", 3000, "WRITE")
            try:
                response = await http.post("/auth/logout-others", headers=bearer(token))
            finally:
                await auth.redis.execute_command("CLIENT", "UNPAUSE")
            assert response.status_code == 503
        assert await auth.count("alice") == 2  # told it failed: it never applies later
