"""sessions_router(auth): the caller's session list, revocation and logouts, against real Redis."""

# No ``from __future__ import annotations``: FastAPI reads the routes' annotations.

import time

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from redis_jwt import RedisJWT
from redis_jwt.fastapi import install_error_handlers, sessions_router
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
        token = await auth.sign("alice")
        response = JSONResponse({"token": token})
        if cookie is not None:
            set_session_cookie(response, token, cookie, request)
        return response

    return app


async def test_the_list_marks_the_current_session_and_hides_private_data(auth: RedisJWT) -> None:
    tokens = [await auth.sign("alice", data_session={"secret": n}) for n in range(3)]
    await auth.sign("bob")
    current = await auth.verify(tokens[1])
    async with client(make_app(auth)) as http:
        response = await http.get("/auth/sessions", headers=bearer(tokens[1]))
    assert response.status_code == 200
    listed = response.json()
    assert len(listed) == 3  # alice's only
    assert [s["current"] for s in listed].count(True) == 1
    mine = next(s for s in listed if s["current"])
    assert mine["session_id"] == current.session_id
    assert set(mine) == {
        "session_id",
        "current",
        "issued_at",
        "expires_at",
        "ip",
        "user_agent",
        "last_seen_at",
    }
    assert "secret" not in response.text


async def test_revoking_one_of_my_sessions(auth: RedisJWT) -> None:
    mine = await auth.sign("alice")
    phone = await auth.sign("alice")
    phone_id = (await auth.verify(phone)).session_id
    async with client(make_app(auth)) as http:
        response = await http.delete(f"/auth/sessions/{phone_id}", headers=bearer(mine))
        assert response.status_code == 204
        assert (await http.get("/auth/sessions", headers=bearer(phone))).status_code == 401
        again = await http.delete(f"/auth/sessions/{phone_id}", headers=bearer(mine))
        assert (again.status_code, again.json()) == (404, {"detail": "Session not found"})
    assert await auth.count("alice") == 1


async def test_another_users_or_an_unknown_session_is_404_and_touches_nothing(
    auth: RedisJWT,
) -> None:
    mine = await auth.sign("alice")
    bobs = await auth.sign("bob")
    bob_id = (await auth.verify(bobs)).session_id
    async with client(make_app(auth)) as http:
        for session_id in (bob_id, "unknown", "x" * 128, "%2A", "..%2F..%2Fetc"):
            response = await http.delete(f"/auth/sessions/{session_id}", headers=bearer(mine))
            assert response.status_code == 404, session_id
        too_long = await http.delete(f"/auth/sessions/{'x' * 129}", headers=bearer(mine))
        assert too_long.status_code == 422
    assert (await auth.verify(bobs)).user_id == "bob"
    assert await auth.count("alice") == 1


async def test_logout_twice_is_not_an_error(auth: RedisJWT) -> None:
    token = await auth.sign("alice")
    async with client(make_app(auth)) as http:
        first = await http.post("/auth/logout", headers=bearer(token))
        second = await http.post("/auth/logout", headers=bearer(token))
        anonymous = await http.post("/auth/logout")
        garbage = await http.post("/auth/logout", headers=bearer("garbage"))
    assert (first.status_code, first.json()) == (200, {"ended": True})
    for response in (second, anonymous, garbage):
        assert (response.status_code, response.json()) == (200, {"ended": False})
    assert await auth.count("alice") == 0


async def test_logout_all_ends_every_session_of_the_caller_only(auth: RedisJWT) -> None:
    tokens = [await auth.sign("alice") for _ in range(3)]
    bobs = await auth.sign("bob")
    async with client(make_app(auth)) as http:
        response = await http.post("/auth/logout-all", headers=bearer(tokens[0]))
        assert (response.status_code, response.json()) == (200, {"ended": 3})
        assert (await http.post("/auth/logout-all", headers=bearer(tokens[0]))).status_code == 401
    assert await auth.count("alice") == 0
    assert (await auth.verify(bobs)).user_id == "bob"


async def test_with_cookies_csrf_guards_the_unsafe_routes_and_logouts_clear_them(
    auth: RedisJWT,
) -> None:
    async with client(make_app(auth, COOKIE)) as http:
        token = (await http.post("/login")).json()["token"]
        csrf = {"x-csrf-token": http.cookies["csrf_token"]}
        other_id = (await auth.verify(await auth.sign("alice"))).session_id
        assert len((await http.get("/auth/sessions")).json()) == 2  # GET: no CSRF needed
        for method, path in (
            ("DELETE", f"/auth/sessions/{other_id}"),
            ("POST", "/auth/logout"),
            ("POST", "/auth/logout-all"),
        ):
            refused = await http.request(method, path)
            assert (refused.status_code, refused.json()) == (403, {"detail": "CSRF check failed"})
        assert await auth.count("alice") == 2  # the forgeries ended nothing
        assert (await http.delete(f"/auth/sessions/{other_id}", headers=csrf)).status_code == 204
        logout = await http.post("/auth/logout", headers=csrf)
        assert logout.json() == {"ended": True}
        cleared = sorted(c.split("=")[0] for c in logout.headers.get_list("set-cookie"))
        assert cleared == ["csrf_token", "sid"]
        assert "sid" not in http.cookies
        # A second logout, by the stale cookie sent again: still fine, still clears.
        headers = {"cookie": f"sid={token}", "x-csrf-token": csrf["x-csrf-token"]}
        assert (await http.post("/auth/logout", headers=headers)).json() == {"ended": False}


async def test_revoking_the_current_session_clears_the_cookies(auth: RedisJWT) -> None:
    async with client(make_app(auth, COOKIE)) as http:
        token = (await http.post("/login")).json()["token"]
        session_id = (await auth.verify(token)).session_id
        csrf = {"x-csrf-token": http.cookies["csrf_token"]}
        response = await http.delete(f"/auth/sessions/{session_id}", headers=csrf)
        assert response.status_code == 204
        assert "sid" not in http.cookies


async def test_redis_down_is_a_fast_503_on_every_route(own_server: RedisServer) -> None:
    async with RedisJWT(secret=SECRET, redis_url=own_server.url) as auth:
        token = await auth.sign("alice")
        app = make_app(auth)
        install_error_handlers(app)
        async with client(app) as http:
            own_server.kill()
            for method, path in (
                ("GET", "/auth/sessions"),
                ("DELETE", "/auth/sessions/abc"),
                ("POST", "/auth/logout"),
                ("POST", "/auth/logout-all"),
            ):
                started = time.perf_counter()
                response = await http.request(method, path, headers=bearer(token))
                assert time.perf_counter() - started < 2.0
                assert response.status_code == 503, path
                assert response.headers["retry-after"] == "1"


async def test_openapi_documents_the_routes_and_their_models(auth: RedisJWT) -> None:
    async with client(make_app(auth, COOKIE)) as http:
        spec = (await http.get("/openapi.json")).json()
    paths = spec["paths"]
    assert set(paths) >= {"/auth/sessions", "/auth/sessions/{session_id}", "/auth/logout"}
    listing = paths["/auth/sessions"]["get"]["responses"]["200"]["content"]["application/json"]
    assert listing["schema"]["items"]["$ref"].endswith("/SessionView")
    assert "404" in paths["/auth/sessions/{session_id}"]["delete"]["responses"]
    assert spec["components"]["schemas"]["LoggedOut"]["properties"]["ended"]["type"] == "boolean"
    logout_all = paths["/auth/logout-all"]["post"]
    assert logout_all["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/SessionsEnded"
    )
    for path, method in (("/auth/logout", "post"), ("/auth/sessions", "get")):
        assert paths[path][method]["security"] == [{"RedisJWT": []}, {"RedisJWTCookie": []}]


async def test_redis_failing_inside_a_route_is_a_503(own_server: RedisServer) -> None:
    # Writes paused: the verify (a read) passes, the route's own write times out.
    async with RedisJWT(secret=SECRET, redis_url=own_server.url) as auth:
        token = await auth.sign("alice")
        other = (await auth.verify(await auth.sign("alice"))).session_id
        async with client(make_app(auth)) as http:
            await auth.redis.execute_command("CLIENT", "PAUSE", 3000, "WRITE")
            try:
                for method, path in (
                    ("DELETE", f"/auth/sessions/{other}"),
                    ("POST", "/auth/logout-all"),
                ):
                    response = await http.request(method, path, headers=bearer(token))
                    assert response.status_code == 503, path
                    assert response.json() == {"detail": "Session store unavailable, retry later"}
            finally:
                await auth.redis.execute_command("CLIENT", "UNPAUSE")
