"""The session cookie's ``Secure`` default: safe in production, working on http://localhost."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from redis_jwt import RedisJWT
from redis_jwt.errors import ConfigurationError
from redis_jwt.starlette import RedisJWTMiddleware, SessionCookie, set_session_cookie

from .web_helpers import client


def make_app(auth: RedisJWT, cookie: SessionCookie, *, pass_request: bool = True) -> Starlette:
    async def login(request: Request) -> Response:
        token = await auth.sign("alice")
        response = JSONResponse({"token": token})
        set_session_cookie(response, token, cookie, request if pass_request else None)
        return response

    async def me(request: Request) -> Response:
        return JSONResponse({"user": request.state.user.user_id})

    routes = [Route("/login", login, methods=["POST"]), Route("/me", me)]
    middleware = [Middleware(RedisJWTMiddleware, auth=auth, cookie=cookie, exclude=("/login",))]
    return Starlette(routes=routes, middleware=middleware)


def secure_flags(response: httpx.Response) -> dict[str, bool]:
    """Each cookie set by ``response``: whether it is ``Secure``."""
    flags = {}
    for cookie in response.headers.get_list("set-cookie"):
        attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
        flags[cookie.split("=", 1)[0]] = "secure" in attributes
    return flags


@pytest.mark.parametrize(
    ("base_url", "secure"),
    [
        ("https://testserver", True),
        ("https://example.com", True),
        ("http://testserver", False),  # the test clients' host
        ("http://localhost:8000", False),
        ("http://app.localhost", False),
        ("http://127.0.0.1:8000", False),
        ("http://[::1]:8000", False),
        ("http://example.com", True),  # a public name over http: a proxy not passing the scheme
        ("http://192.168.1.5:8000", True),
    ],
)
async def test_the_default_is_secure_except_plain_http_to_a_local_host(
    auth: RedisJWT, base_url: str, secure: bool
) -> None:
    async with client(make_app(auth, SessionCookie()), base_url=base_url) as http:
        response = await http.post("/login")
        assert secure_flags(response) == {"session": secure, "csrf_token": secure}
        if base_url.startswith(("http://testserver", "http://localhost", "http://127.")):
            # The point of the default: an http test client sends the cookie back.
            assert (await http.get("/me")).json() == {"user": "alice"}


async def test_an_explicit_choice_wins(auth: RedisJWT) -> None:
    cases = [
        (SessionCookie(secure=True), "http://testserver", True),
        (SessionCookie(secure=False), "https://example.com", False),
    ]
    for cookie, base_url, secure in cases:
        async with client(make_app(auth, cookie), base_url=base_url) as http:
            response = await http.post("/login")
        assert set(secure_flags(response).values()) == {secure}, (cookie, base_url)


async def test_without_the_request_the_middleware_supplies_it(auth: RedisJWT) -> None:
    # /login is excluded from authentication, yet the middleware still tells
    # set_session_cookie where the request went.
    app = make_app(auth, SessionCookie(), pass_request=False)
    for base_url, secure in (("http://testserver", False), ("https://example.com", True)):
        async with client(app, base_url=base_url) as http:
            response = await http.post("/login")
            assert set(secure_flags(response).values()) == {secure}, base_url
            if not secure:
                assert (await http.get("/me")).json() == {"user": "alice"}


async def test_without_the_request_nor_the_middleware_the_cookie_is_secure(
    auth: RedisJWT,
) -> None:
    async def login(request: Request) -> Response:
        response = JSONResponse({})
        set_session_cookie(response, await auth.sign("alice"), SessionCookie())
        return response

    app = Starlette(routes=[Route("/login", login, methods=["POST"])])
    async with client(app, base_url="http://testserver") as http:
        response = await http.post("/login")
    assert secure_flags(response) == {"session": True, "csrf_token": True}


async def test_an_empty_or_malformed_host_gets_secure(auth: RedisJWT) -> None:
    async with client(make_app(auth, SessionCookie()), base_url="http://testserver") as http:
        for host in ("", "[::1]x", "localhost:port"):
            response = await http.post("/login", headers={"host": host})
            assert set(secure_flags(response).values()) == {True}, host


def test_samesite_none_needs_an_explicit_secure() -> None:
    with pytest.raises(ConfigurationError, match="secure=True"):
        SessionCookie(samesite="none")
    assert SessionCookie(samesite="none", secure=True).secure is True
