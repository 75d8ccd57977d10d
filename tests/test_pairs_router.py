"""``POST /refresh`` of sessions_router: the JSON body, the cookies, CSRF, errors, OpenAPI."""

# No ``from __future__ import annotations``: FastAPI reads the routes' annotations.

import jwt
import pytest
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from redis_jwt import RedisJWT, errors
from redis_jwt._csrf import csrf_value
from redis_jwt.fastapi import sessions_router
from redis_jwt.starlette import SessionCookie, set_session_cookie
from redis_jwt.testing import RedisServer

from .conftest import SECRET
from .web_helpers import bearer, client

COOKIE = SessionCookie(name="sid")
REFRESH = SessionCookie(name="refresh_token", path="/auth/refresh", csrf=False)


def make_app(auth: RedisJWT, *, cookies: bool = False) -> FastAPI:
    app = FastAPI()
    router = (
        sessions_router(auth, cookie=COOKIE, refresh_cookie=REFRESH)
        if cookies
        else sessions_router(auth)
    )
    app.include_router(router, prefix="/auth")

    @app.post("/login")
    async def login(request: Request) -> Response:
        pair = await auth.sign_pair("alice", data_token={"role": "reader"})
        if not cookies:
            return JSONResponse(pair.model_dump(mode="json"))
        response = JSONResponse({"ok": True})
        set_session_cookie(response, pair.access_token, COOKIE, request)
        set_session_cookie(response, pair.refresh_token, REFRESH, request)
        return response

    return app


def gen(token: str) -> int:
    value: int = jwt.decode(token, SECRET, algorithms=["HS256"])["gen"]
    return value


async def test_refresh_by_the_json_body_answers_the_next_pair(redis_url: str) -> None:
    async with (
        RedisJWT(secret=SECRET, redis_url=redis_url, refresh_grace=0) as auth,
        client(make_app(auth)) as http,
    ):
        login = (await http.post("/login")).json()
        response = await http.post("/auth/refresh", json={"refresh_token": login["refresh_token"]})
        assert response.status_code == 200
        body = response.json()
        assert set(body) == {
            "access_token",
            "refresh_token",
            "token_type",
            "access_expires_at",
            "refresh_expires_at",
        }
        assert body["token_type"] == "bearer"
        assert gen(body["refresh_token"]) == 1
        session = await auth.verify(body["access_token"])
        assert session.data_token == {"role": "reader"}
        listed = await http.get("/auth/sessions", headers=bearer(body["access_token"]))
        assert [s["current"] for s in listed.json()] == [True]
        # The spent token again, past the (zero) grace: reuse ends the session.
        reused = await http.post("/auth/refresh", json={"refresh_token": login["refresh_token"]})
        assert reused.status_code == 401
        assert reused.headers["www-authenticate"].startswith("Bearer")
        gone = await http.get("/auth/sessions", headers=bearer(body["access_token"]))
        assert gone.status_code == 401
        assert await auth.count("alice") == 0


async def test_what_is_no_live_refresh_token_is_a_401_never_a_500(auth: RedisJWT) -> None:
    async with client(make_app(auth)) as http:
        login = (await http.post("/login")).json()
        for body in (
            {"refresh_token": login["access_token"]},  # an access token
            {"refresh_token": "x" * 100},
            {"refresh_token": ""},
            {},
            None,
        ):
            response = await http.post("/auth/refresh", json=body)
            assert response.status_code == 401, body
            assert isinstance(response.json()["detail"], str)
        for raw in (b"{not json", b'{"refresh_token": 5}', b"[]"):
            response = await http.post(
                "/auth/refresh", content=raw, headers={"content-type": "application/json"}
            )
            assert response.status_code == 422, raw
        # The refresh token itself is no session token.
        mine = await http.get("/auth/sessions", headers=bearer(login["refresh_token"]))
        assert mine.status_code == 401
        assert (await auth.verify(login["access_token"])).user_id == "alice"


async def test_refresh_by_the_cookie_needs_csrf_and_renews_every_cookie(redis_url: str) -> None:
    async with (
        RedisJWT(secret=SECRET, redis_url=redis_url, refresh_grace=0) as auth,
        client(make_app(auth, cookies=True)) as http,
    ):
        await http.post("/login")
        first_refresh = http.cookies["refresh_token"]
        forged = await http.post("/auth/refresh")
        assert (forged.status_code, forged.json()) == (403, {"detail": "CSRF check failed"})
        wrong = await http.post("/auth/refresh", headers={"x-csrf-token": "nope"})
        assert wrong.status_code == 403
        csrf = {"x-csrf-token": http.cookies["csrf_token"]}
        response = await http.post("/auth/refresh", headers=csrf)
        assert response.status_code == 200
        body = response.json()
        # Tokens ride in the (HttpOnly) cookies only, never in what scripts can read.
        assert body["access_token"] is None
        assert body["refresh_token"] is None
        set_names = sorted(c.split("=")[0] for c in response.headers.get_list("set-cookie"))
        assert set_names == ["csrf_token", "refresh_token", "sid"]
        access, refresh = http.cookies["sid"], http.cookies["refresh_token"]
        assert gen(refresh) == 1  # the forgeries spent nothing (no grace: they would be reuse)
        assert refresh != first_refresh
        assert http.cookies["csrf_token"] == csrf_value(access)
        assert (await auth.verify(access)).user_id == "alice"
        renewed = {"x-csrf-token": http.cookies["csrf_token"]}
        assert (await http.post("/auth/refresh", headers=renewed)).status_code == 200
        # Logging out clears the refresh cookie too. The CSRF value is the one of the
        # latest access token: the refresh above renewed it (unless it signed, within
        # the same second, the very same access token).
        latest = {"x-csrf-token": http.cookies["csrf_token"]}
        logout = await http.post("/auth/logout", headers=latest)
        cleared = sorted(c.split("=")[0] for c in logout.headers.get_list("set-cookie"))
        assert cleared == ["csrf_token", "refresh_token", "sid"]
        assert await auth.count("alice") == 0


async def test_redis_down_is_a_fast_503(own_server: RedisServer) -> None:
    async with RedisJWT(secret=SECRET, redis_url=own_server.url) as auth:
        pair = await auth.sign_pair("alice")
        async with client(make_app(auth)) as http:
            own_server.kill()
            response = await http.post("/auth/refresh", json={"refresh_token": pair.refresh_token})
            assert response.status_code == 503
            assert response.headers["retry-after"] == "1"


async def test_openapi_documents_refresh_and_the_router_checks_its_cookies(
    auth: RedisJWT,
) -> None:
    async with client(make_app(auth, cookies=True)) as http:
        spec = (await http.get("/openapi.json")).json()
    route = spec["paths"]["/auth/refresh"]["post"]
    answer = route["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer["$ref"].endswith("/RefreshedPair")
    assert "401" in route["responses"]
    schemas = spec["components"]["schemas"]
    assert "refresh_token" in schemas["RefreshRequest"]["properties"]
    assert set(schemas["RefreshedPair"]["required"]) >= {"access_expires_at", "refresh_expires_at"}
    with pytest.raises(errors.ConfigurationError):
        sessions_router(auth, refresh_cookie=REFRESH)
