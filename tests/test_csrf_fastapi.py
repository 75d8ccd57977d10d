"""CSRF through the FastAPI dependencies, the OpenAPI cookie scheme, install_error_handlers."""

# No ``from __future__ import annotations``: FastAPI reads the routes' annotations.

from typing import Annotated, Any

from fastapi import Depends, FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from redis_jwt import RedisJWT, Session
from redis_jwt.errors import CSRFError
from redis_jwt.fastapi import install_error_handlers, optional_session, require_session
from redis_jwt.starlette import SessionCookie, set_session_cookie

from .web_helpers import bearer, client

COOKIE = SessionCookie(name="sid")
FORBIDDEN = {"detail": "CSRF check failed"}


def make_app(auth: RedisJWT, cookie: SessionCookie = COOKIE) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    current = require_session(auth, cookie=cookie)
    maybe = optional_session(auth, cookie=cookie)

    @app.post("/login")
    async def login(request: Request) -> Response:
        token = await auth.sign("alice")
        response = JSONResponse({"token": token})
        set_session_cookie(response, token, cookie, request)
        return response

    @app.get("/me")
    @app.post("/me")
    @app.put("/me")
    @app.patch("/me")
    @app.delete("/me")
    async def me(session: Annotated[Session, Depends(current)]) -> dict[str, Any]:
        return {"user": session.user_id}

    @app.post("/maybe")
    async def maybe_me(session: Annotated[Session | None, Depends(maybe)]) -> dict[str, Any]:
        return {"user": session.user_id if session else None}

    @app.post("/raise")
    async def raises() -> None:
        raise CSRFError("the app's own check failed")

    return app


async def test_the_dependency_answers_the_403_itself(auth: RedisJWT) -> None:
    async with client(make_app(auth)) as http:
        await http.post("/login")
        csrf = http.cookies["csrf_token"]
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            refused = await http.request(method, "/me")
            assert (refused.status_code, refused.json()) == (403, FORBIDDEN), method
            wrong = await http.request(method, "/me", headers={"x-csrf-token": "x" * 43})
            assert wrong.status_code == 403, method
            ok = await http.request(method, "/me", headers={"x-csrf-token": csrf})
            assert ok.json() == {"user": "alice"}, method
        assert (await http.get("/me")).json() == {"user": "alice"}
        # optional_session judges a cookie token the same way.
        assert (await http.post("/maybe")).status_code == 403
        assert (await http.post("/maybe", headers={"x-csrf-token": csrf})).json() == {
            "user": "alice"
        }


async def test_the_header_is_exempt_and_anonymous_is_none(auth: RedisJWT) -> None:
    token = await auth.sign("bob")
    async with client(make_app(auth)) as http:
        assert (await http.post("/maybe")).json() == {"user": None}
        await http.post("/login")  # a cookie too: the header wins, no CSRF needed
        assert (await http.post("/me", headers=bearer(token))).json() == {"user": "bob"}


async def test_csrf_off_and_a_401_before_csrf_for_an_empty_cookie(auth: RedisJWT) -> None:
    async with client(make_app(auth, SessionCookie(name="sid", csrf=False))) as http:
        await http.post("/login")
        assert (await http.post("/me")).json() == {"user": "alice"}
    async with client(make_app(auth)) as http:
        empty = await http.post("/me", headers={"cookie": "sid="})
    assert empty.status_code == 401


async def test_install_error_handlers_answers_csrf_errors_with_403(auth: RedisJWT) -> None:
    async with client(make_app(auth)) as http:
        response = await http.post("/raise")
    assert (response.status_code, response.json()) == (403, FORBIDDEN)


async def test_openapi_shows_the_cookie_scheme_beside_the_bearer_one(auth: RedisJWT) -> None:
    async with client(make_app(auth)) as http:
        spec = (await http.get("/openapi.json")).json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["RedisJWT"]["scheme"] == "bearer"
    assert schemes["RedisJWTCookie"]["type"] == "apiKey"
    assert schemes["RedisJWTCookie"]["in"] == "cookie"
    assert schemes["RedisJWTCookie"]["name"] == "sid"
    assert "X-CSRF-Token" in schemes["RedisJWTCookie"]["description"]
    # Either scheme authenticates (OpenAPI: a list of alternatives).
    assert spec["paths"]["/me"]["post"]["security"] == [{"RedisJWT": []}, {"RedisJWTCookie": []}]
    assert "parameters" not in spec["paths"]["/me"]["post"]
