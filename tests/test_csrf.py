"""CSRF for the cookie transport, through RedisJWTMiddleware, against real Redis."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from redis_jwt import RedisJWT
from redis_jwt.errors import ConfigurationError
from redis_jwt.starlette import (
    RedisJWTMiddleware,
    SessionCookie,
    clear_session_cookie,
    set_session_cookie,
)
from redis_jwt.testing import RedisServer

from .conftest import SECRET
from .web_helpers import WebSocketDriver, bearer, client

COOKIE = SessionCookie(name="sid")
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")
FORBIDDEN = {"detail": "CSRF check failed"}


def documented_csrf(token: str) -> str:
    """The construction docs/security.md documents, computed independently."""
    digest = hmac.new(b"redis-jwt/csrf/v1", token.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def make_app(auth: RedisJWT, cookie: SessionCookie = COOKIE, **options: Any) -> Starlette:
    async def login(request: Request) -> Response:
        token = await auth.sign("alice")
        response = JSONResponse({"token": token})
        set_session_cookie(response, token, cookie, request)
        return response

    async def logout(request: Request) -> Response:
        response = JSONResponse({"ok": True})
        clear_session_cookie(response, cookie, request)
        return response

    async def echo(request: Request) -> Response:
        user = request.state.user
        return JSONResponse({"user": None if user is None else user.user_id})

    async def socket(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(websocket.state.user.user_id)
        await websocket.close()

    routes = [
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/echo", echo, methods=["GET", "HEAD", "OPTIONS", *UNSAFE]),
        WebSocketRoute("/ws", socket),
    ]
    middleware = [
        Middleware(RedisJWTMiddleware, auth=auth, cookie=cookie, exclude=("/login",), **options)
    ]
    return Starlette(routes=routes, middleware=middleware)


async def login(http: httpx.AsyncClient) -> tuple[str, str]:
    """Log in through the app; return the token and the CSRF cookie's value."""
    response = await http.post("/login")
    assert response.status_code == 200
    return response.json()["token"], http.cookies["csrf_token"]


async def test_login_sets_a_readable_csrf_cookie_bound_to_the_token(auth: RedisJWT) -> None:
    async with client(make_app(auth)) as http:
        response = await http.post("/login")
        token = response.json()["token"]
        cookies = {c.split("=", 1)[0]: c for c in response.headers.get_list("set-cookie")}
        again = (await http.post("/login")).json()["token"]
        second = http.cookies["csrf_token"]
    assert set(cookies) == {"sid", "csrf_token"}
    assert "httponly" in cookies["sid"].lower()
    assert "httponly" not in cookies["csrf_token"].lower()  # the page must read it
    assert cookies["csrf_token"].startswith(f"csrf_token={documented_csrf(token)};")
    assert "samesite=lax" in cookies["csrf_token"].lower()
    # A new token, a new CSRF value: nothing stored, nothing shared between sessions.
    assert second == documented_csrf(again) != documented_csrf(token)


async def test_unsafe_cookie_requests_need_the_csrf_header(auth: RedisJWT) -> None:
    async with client(make_app(auth)) as http:
        _token, csrf = await login(http)
        for method in UNSAFE:
            refused = await http.request(method, "/echo")
            # Another last character, whatever the real one is.
            forged = csrf[:-1] + ("B" if csrf.endswith("A") else "A")
            wrong = await http.request(method, "/echo", headers={"x-csrf-token": forged})
            empty = await http.request(method, "/echo", headers={"x-csrf-token": ""})
            for response in (refused, wrong, empty):
                assert response.status_code == 403, method
                assert response.json() == FORBIDDEN
                assert "www-authenticate" not in response.headers
            ok = await http.request(method, "/echo", headers={"X-CSRF-Token": csrf})
            assert (ok.status_code, ok.json()) == (200, {"user": "alice"}), method
        for method in ("GET", "HEAD", "OPTIONS"):
            assert (await http.request(method, "/echo")).status_code == 200, method


async def test_header_authenticated_requests_are_exempt(auth: RedisJWT) -> None:
    token = await auth.sign("bob")
    async with client(make_app(auth)) as http:
        await login(http)  # the cookie is there too, but the header wins
        for method in UNSAFE:
            response = await http.request(method, "/echo", headers=bearer(token))
            assert response.json() == {"user": "bob"}, method


async def test_a_planted_csrf_cookie_proves_nothing(auth: RedisJWT) -> None:
    # A sibling subdomain can set cookies for the victim, but not read the session
    # cookie: a CSRF cookie and header of its choosing must not pass.
    async with client(make_app(auth)) as http:
        token, _csrf = await login(http)
        other = documented_csrf(await auth.sign("mallory"))
        headers = {"cookie": f"sid={token}; csrf_token={other}", "x-csrf-token": other}
        assert (await http.post("/echo", headers=headers)).status_code == 403


async def test_a_forgery_is_refused_before_redis_is_asked(own_server: RedisServer) -> None:
    auth = RedisJWT(secret=SECRET, redis_url=own_server.url)
    async with auth, client(make_app(auth)) as http:
        _token, csrf = await login(http)
        own_server.kill()
        # The CSRF check comes first: a forgery is a 403 even with Redis down.
        assert (await http.post("/echo")).status_code == 403
        assert (await http.post("/echo", headers={"x-csrf-token": csrf})).status_code == 503
        assert (await http.post("/echo", headers=bearer("garbage"))).status_code == 401


async def test_a_forgery_never_slides_the_session(redis_url: str) -> None:
    auth = RedisJWT(secret=SECRET, redis_url=redis_url, sliding=True, ttl="1 hour")
    async with auth, client(make_app(auth)) as http:
        token, csrf = await login(http)
        session = await auth.verify(token)
        # Found by a scan (tests only), so as not to depend on the layout's internals.
        found = [k async for k in auth.redis.scan_iter(match=f"*{session.session_id}*")]
        keys = [k for k in found if await auth.redis.pttl(k) > 3_000_000]
        assert len(keys) == 1
        await auth.redis.pexpire(keys[0], 50_000)
        assert (await http.post("/echo")).status_code == 403
        assert 0 < await auth.redis.pttl(keys[0]) <= 50_000  # untouched by the forgery
        assert (await http.post("/echo", headers={"x-csrf-token": csrf})).status_code == 200
        assert await auth.redis.pttl(keys[0]) > 3_000_000  # the genuine request slid it


async def test_optional_mode_still_checks_a_cookie_token(auth: RedisJWT) -> None:
    async with client(make_app(auth, optional=True)) as http:
        assert (await http.post("/echo")).json() == {"user": None}  # anonymous
        _token, csrf = await login(http)
        assert (await http.post("/echo")).status_code == 403
        assert (await http.post("/echo", headers={"x-csrf-token": csrf})).status_code == 200


async def test_csrf_off_lets_cookie_posts_through(auth: RedisJWT) -> None:
    plain = SessionCookie(name="sid", csrf=False)
    async with client(make_app(auth, plain)) as http:
        response = await http.post("/login")
        assert [c.split("=")[0] for c in response.headers.get_list("set-cookie")] == ["sid"]
        assert (await http.post("/echo")).json() == {"user": "alice"}


async def test_a_bad_or_ended_cookie_with_the_right_csrf_is_still_a_401(auth: RedisJWT) -> None:
    async with client(make_app(auth)) as http:
        token, csrf = await login(http)
        await auth.destroy(token)
        ended = await http.post("/echo", headers={"x-csrf-token": csrf})
        empty = await http.post("/echo", headers={"cookie": "sid="})
    assert (ended.status_code, ended.json()) == (401, {"detail": "Session ended"})
    assert empty.status_code == 401  # an empty cookie is no credential to protect


async def test_logout_clears_both_cookies(auth: RedisJWT) -> None:
    async with client(make_app(auth)) as http:
        _token, csrf = await login(http)
        response = await http.post("/logout", headers={"x-csrf-token": csrf})
        cleared = response.headers.get_list("set-cookie")
        assert sorted(c.split("=")[0] for c in cleared) == ["csrf_token", "sid"]
        assert all("max-age=0" in c.lower() for c in cleared)
        assert not http.cookies.get("sid")
        assert not http.cookies.get("csrf_token")
        assert (await http.get("/echo")).status_code == 401


async def test_a_custom_csrf_cookie_and_header(auth: RedisJWT) -> None:
    custom = SessionCookie(name="sid", csrf_name="xsrf", csrf_header="X-XSRF-Token")
    async with client(make_app(auth, custom)) as http:
        await http.post("/login")
        value = http.cookies["xsrf"]
        assert (await http.post("/echo", headers={"x-csrf-token": value})).status_code == 403
        assert (await http.post("/echo", headers={"x-xsrf-token": value})).status_code == 200


def test_bad_csrf_settings_fail_early() -> None:
    with pytest.raises(ConfigurationError, match="csrf_name"):
        SessionCookie(name="same", csrf_name="same")
    with pytest.raises(ConfigurationError, match="CSRF cookie name"):
        SessionCookie(csrf_name="a;b")
    with pytest.raises(ConfigurationError, match="csrf_header"):
        SessionCookie(csrf_header="X CSRF")
    auth = RedisJWT(secret=SECRET)
    for origin in ("app.com", "https://app.com/path", "ftp://app.com", "https://app.com:x"):
        with pytest.raises(ConfigurationError, match="trusted origin"):
            RedisJWTMiddleware(make_app(auth), auth=auth, trusted_origins=[origin])


def cookie_socket(token: str, *extra: tuple[bytes, bytes]) -> list[tuple[bytes, bytes]]:
    return [(b"cookie", b"sid=" + token.encode()), *extra]


async def handshake(app: Starlette, headers: list[tuple[bytes, bytes]], host: bytes | None) -> Any:
    driver = WebSocketDriver(app, "/ws", headers)
    driver.scope["headers"] = headers if host is None else [(b"host", host), *headers]
    first = await driver.connect()
    if first["type"] == "websocket.accept":
        assert (await driver.next())["text"] == "alice"
    await driver.finished()
    return first


async def test_cookie_websockets_need_a_trusted_origin(auth: RedisJWT) -> None:
    app = make_app(auth, trusted_origins="https://app.example.com")  # one origin, as a str
    token = await auth.sign("alice")

    def origin(value: bytes) -> tuple[bytes, bytes]:
        return (b"origin", value)

    accepted = {
        "no Origin: not a browser": ([], b"api.example.com"),
        "same host": ([origin(b"https://api.example.com")], b"api.example.com"),
        "same host, default port": ([origin(b"https://api.example.com")], b"api.example.com:443"),
        "same host and port": ([origin(b"http://localhost:8000")], b"localhost:8000"),
        "case-insensitive": ([origin(b"https://API.example.com")], b"api.EXAMPLE.com"),
        "IPv6": ([origin(b"http://[::1]:8000")], b"[::1]:8000"),
        "trusted": ([origin(b"https://app.example.com")], b"api.example.com"),
    }
    refused: dict[str, tuple[list[tuple[bytes, bytes]], bytes | None]] = {
        "foreign": ([origin(b"https://evil.example")], b"api.example.com"),
        "other port": ([origin(b"http://localhost:9000")], b"localhost:8000"),
        "suffix trick": ([origin(b"https://api.example.com.evil.example")], b"api.example.com"),
        "null": ([origin(b"null")], b"api.example.com"),
        "garbage": ([origin(b"\xff\xfe:://")], b"api.example.com"),
        "bad port": ([origin(b"https://api.example.com:99999")], b"api.example.com"),
        "trusted, other port": ([origin(b"https://app.example.com:8443")], b"api.example.com"),
        "no Host to compare with": ([origin(b"https://api.example.com")], None),
        "empty Host": ([origin(b"https://api.example.com")], b""),
        "garbage after an IPv6 Host": ([origin(b"http://[::1]:80")], b"[::1]x"),
        "Host with a bad port": ([origin(b"http://localhost:8000")], b"localhost:80a"),
    }
    for name, (headers, host) in accepted.items():
        first = await handshake(app, cookie_socket(token, *headers), host)
        assert first["type"] == "websocket.accept", name
    for name, (headers, maybe_host) in refused.items():
        first = await handshake(app, cookie_socket(token, *headers), maybe_host)
        assert (first["type"], first["code"]) == ("websocket.close", 1008), name
        assert first["reason"] == "CSRF check failed"
    # The Authorization header is exempt: a page of another origin cannot send it.
    foreign = [(b"authorization", b"Bearer " + token.encode()), origin(b"https://evil.example")]
    assert (await handshake(app, foreign, b"api.example.com"))["type"] == "websocket.accept"
