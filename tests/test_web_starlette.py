"""RedisJWTMiddleware over HTTP, in-process, against real Redis: what goes over the wire."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from redis_jwt import RedisJWT
from redis_jwt.starlette import (
    RedisJWTMiddleware,
    SessionCookie,
    clear_session_cookie,
    set_session_cookie,
)
from redis_jwt.testing import RedisServer

from .conftest import SECRET
from .hostile import claims, forge, hostile_tokens
from .web_helpers import ASGIApp, bearer, call, client, hostile_headers

COOKIE = SessionCookie(name="sid", max_age_seconds=3600)


def make_app(auth: RedisJWT, **options: Any) -> Starlette:
    """A small app behind the middleware: /me shows ``request.state.user``."""

    async def me(request: Request) -> Response:
        user = request.state.user
        if user is None:
            return JSONResponse({"user": None})
        return JSONResponse({"user": user.user_id, "data": user.data_session})

    async def open_page(request: Request) -> Response:
        return JSONResponse({"has_user": hasattr(request.state, "user")})

    async def login(request: Request) -> Response:
        token = await auth.sign("alice", data_session={"ip": "203.0.113.7"})
        response = JSONResponse({"token": token})
        set_session_cookie(response, token, COOKIE)
        return response

    async def logout(request: Request) -> Response:
        await auth.revoke(request.state.user.user_id, request.state.user.session_id)
        response = JSONResponse({"ok": True})
        clear_session_cookie(response, COOKIE)
        return response

    routes = [
        Route("/me", me),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/health", open_page),
        Route("/health/deep", open_page),
        Route("/static/{path:path}", open_page),
    ]
    middleware = [Middleware(RedisJWTMiddleware, auth=auth, **options)]
    return Starlette(routes=routes, middleware=middleware)


def assert_401(status: int, headers: Any, body: Any, *, token_sent: bool) -> None:
    assert status == 401, (status, body)
    challenge = 'Bearer error="invalid_token"' if token_sent else "Bearer"
    assert headers["www-authenticate"] == challenge
    assert set(body) == {"detail"}
    assert 0 < len(body["detail"]) < 40


async def test_a_genuine_token_reaches_the_app_and_the_scheme_is_case_insensitive(
    auth: RedisJWT,
) -> None:
    app = make_app(auth)
    token = await auth.sign("alice")
    async with client(app) as http:
        for scheme in ("Bearer", "bearer", "BEARER", "bEaReR"):
            response = await http.get("/me", headers={"authorization": f"{scheme} {token}"})
            assert response.status_code == 200
            assert response.json() == {"user": "alice", "data": None}


async def test_no_token_is_a_401_with_a_bare_challenge(auth: RedisJWT) -> None:
    async with client(make_app(auth)) as http:
        response = await http.get("/me")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-length"] == str(len(response.content))
    assert response.json() == {"detail": "Not authenticated"}


async def test_each_failure_says_what_happened_in_a_short_fixed_phrase(auth: RedisJWT) -> None:
    token = await auth.sign("alice")
    now = int(time.time())
    expired_token = forge(claims("alice", iat=now - 100, exp=now - 10))
    async with client(make_app(auth)) as http:
        bad = await http.get("/me", headers=bearer("not-a-token"))
        expired = await http.get("/me", headers=bearer(expired_token))
        await auth.destroy(token)
        ended = await http.get("/me", headers=bearer(token))
    assert bad.json() == {"detail": "Invalid token"}
    assert expired.json() == {"detail": "Token expired"}
    assert ended.json() == {"detail": "Session ended"}
    for response in (bad, expired, ended):
        assert_401(response.status_code, response.headers, response.json(), token_sent=True)


async def test_the_hostile_token_corpus_is_all_401_never_5xx(auth: RedisJWT) -> None:
    genuine = await auth.sign("victim")
    corpus = hostile_tokens(genuine)
    assert len(corpus) >= 40
    wrong: dict[str, tuple[int, str]] = {}
    async with client(make_app(auth)) as http:
        for name, token in corpus.items():
            response = await http.get("/me", headers=bearer(token))
            if response.status_code != 401 or "detail" not in response.json():
                wrong[name] = (response.status_code, response.text[:80])
            elif response.headers["www-authenticate"] not in (
                "Bearer",
                'Bearer error="invalid_token"',
            ):
                wrong[name] = (response.status_code, response.headers["www-authenticate"])
        assert (await http.get("/me", headers=bearer(genuine))).status_code == 200
    assert wrong == {}


async def test_hostile_headers_are_all_401_never_5xx(auth: RedisJWT) -> None:
    genuine = await auth.sign("victim")
    app = make_app(auth)
    for name, headers in hostile_headers(genuine).items():
        status, sent, body = await call(app, "/me", headers)
        assert status == 401, name
        assert sent["www-authenticate"].startswith("Bearer"), name
        assert set(body) == {"detail"}, name
    # The same through an HTTP client, for the ones it can send.
    async with client(app) as http:
        for name in ("no header", "Bearer alone", "Basic", "double spaces", "non-latin1 bytes"):
            response = await http.get("/me", headers=hostile_headers(genuine)[name])
            assert response.status_code == 401, name


async def test_an_authorization_of_another_scheme_is_not_a_token(auth: RedisJWT) -> None:
    async with client(make_app(auth, optional=True)) as http:
        basic = await http.get("/me", headers={"authorization": "Basic dXNlcjpwYXNz"})
        empty = await http.get("/me", headers={"authorization": "Bearer"})
    # Basic is someone else's business: anonymous. An empty Bearer meant a token: refused.
    assert basic.status_code == 200
    assert basic.json() == {"user": None}
    assert_401(empty.status_code, empty.headers, empty.json(), token_sent=True)


async def test_excluded_paths_are_exact_unless_they_end_with_a_slash(auth: RedisJWT) -> None:
    app = make_app(auth, exclude=("/health", "/static/"))
    async with client(app) as http:
        assert (await http.get("/health")).json() == {"has_user": False}
        assert (await http.get("/static/app.js")).status_code == 200
        assert (await http.get("/static/a/b.css")).status_code == 200
        assert (await http.get("/health/deep")).status_code == 401
        assert (await http.get("/health/")).status_code == 401
        assert (await http.get("/me")).status_code == 401
    assert (await call(make_app(auth, exclude="/health"), "/health", []))[0] == 200


async def test_optional_mode_lets_anonymous_through_but_not_bad_tokens(auth: RedisJWT) -> None:
    token = await auth.sign("alice")
    async with client(make_app(auth, optional=True)) as http:
        assert (await http.get("/me")).json() == {"user": None}
        assert (await http.get("/me", headers=bearer(token))).json()["user"] == "alice"
        refused = await http.get("/me", headers=bearer(token + "x"))
        assert_401(refused.status_code, refused.headers, refused.json(), token_sent=True)


async def test_with_session_loads_the_private_data(auth: RedisJWT) -> None:
    token = await auth.sign("alice", data_session={"ip": "203.0.113.7"})
    async with client(make_app(auth, with_session=True)) as http:
        response = await http.get("/me", headers=bearer(token))
    assert response.json() == {"user": "alice", "data": {"ip": "203.0.113.7"}}


async def test_the_cookie_is_set_at_login_read_and_cleared_at_logout(auth: RedisJWT) -> None:
    app = make_app(auth, cookie=COOKIE, exclude=("/login",))
    async with client(app, base_url="https://testserver") as http:
        login = await http.post("/login")
        set_cookie = login.headers["set-cookie"]
        token = login.json()["token"]
        assert set_cookie.startswith(f"sid={token};")
        attributes = {part.strip().lower() for part in set_cookie.split(";")[1:]}
        assert {"httponly", "secure", "samesite=lax", "path=/", "max-age=3600"} <= attributes
        assert (await http.get("/me")).json()["user"] == "alice"  # the cookie, from the jar
        # A header wins over the cookie.
        other = await auth.sign("bob")
        assert (await http.get("/me", headers=bearer(other))).json()["user"] == "bob"
        # An unsafe request authenticated by the cookie carries the CSRF value.
        csrf = {"x-csrf-token": http.cookies["csrf_token"]}
        logout = await http.post("/logout", headers=csrf)
        assert logout.headers["set-cookie"].startswith('sid="";')
        assert "max-age=0" in logout.headers["set-cookie"].lower()
        assert (await http.get("/me")).status_code == 401
        # A stale cookie sent by hand: the session was destroyed server-side.
        stale = await http.get("/me", headers={"cookie": f"theme=dark; sid={token}"})
        assert_401(stale.status_code, stale.headers, stale.json(), token_sent=True)


async def test_cookie_headers_are_parsed_leniently_and_safely(auth: RedisJWT) -> None:
    token = await auth.sign("alice")
    app = make_app(auth, cookie=COOKIE)
    ok = [
        [(b"cookie", b"sid=" + token.encode())],
        [(b"cookie", b"a=1;sid=" + token.encode() + b"; b=2")],
        [(b"cookie", b"a=1"), (b"cookie", b"sid=" + token.encode())],
        [(b"cookie", b'sid="' + token.encode() + b'"')],
    ]
    for headers in ok:
        assert (await call(app, "/me", headers))[0] == 200, headers
    refused = [
        [(b"cookie", b"sid=")],
        [(b"cookie", b"xsid=" + token.encode())],
        [(b"cookie", b"sid=\xff\xfe" + token.encode())],
        [(b"cookie", b"sid=" + b"a" * 200_000)],
        [(b"cookie", b";" * 100_000)],
    ]
    for headers in refused:
        status, _, body = await call(app, "/me", headers)
        assert status == 401, headers[0][1][:20]
        assert "detail" in body


def test_a_bad_cookie_configuration_fails_early() -> None:
    from redis_jwt.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="secure"):
        SessionCookie(samesite="none", secure=False)
    with pytest.raises(ConfigurationError, match="cookie name"):
        SessionCookie(name="a b")
    with pytest.raises(ConfigurationError, match="samesite"):
        SessionCookie(samesite="sometimes")  # type: ignore[arg-type]


async def test_lifespan_and_unknown_scopes_pass_through_untouched(auth: RedisJWT) -> None:
    seen: list[tuple[str, object, object]] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope["type"], receive, send))

    app = RedisJWTMiddleware(inner, auth=auth)

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: Any) -> None:
        raise AssertionError("the middleware must not answer")

    for kind in ("lifespan", "something-new"):
        await app({"type": kind}, receive, send)
    assert seen == [("lifespan", receive, send), ("something-new", receive, send)]


async def test_each_request_gets_its_own_user_and_shared_state_is_never_written(
    auth: RedisJWT,
) -> None:
    tokens = {name: await auth.sign(name) for name in ("alice", "bob", "carol")}
    app = make_app(auth)
    async with client(app) as http:

        async def who(name: str) -> str:
            response = await http.get("/me", headers=bearer(tokens[name]))
            user: str = response.json()["user"]
            return user

        names = [name for _ in range(20) for name in tokens]
        assert await asyncio.gather(*(who(name) for name in names)) == names
    shared = {"from_lifespan": 1}
    status, _, _ = await call(
        app, "/me", [(b"authorization", b"Bearer " + tokens["bob"].encode())], shared
    )
    assert status == 200
    assert shared == {"from_lifespan": 1}


async def test_killed_redis_is_a_fast_503_a_bad_token_still_401_then_recovery(
    own_server: RedisServer,
) -> None:
    async with RedisJWT(secret=SECRET, redis_url=own_server.url) as auth:
        app: ASGIApp = make_app(auth)
        token = await auth.sign("alice")
        async with client(app) as http:
            assert (await http.get("/me", headers=bearer(token))).status_code == 200
            own_server.kill()
            started = time.perf_counter()
            down = await http.get("/me", headers=bearer(token))
            assert time.perf_counter() - started < 2.0
            assert down.status_code == 503
            assert down.headers["retry-after"] == "1"
            assert "www-authenticate" not in down.headers
            assert down.json() == {"detail": "Session store unavailable, retry later"}
            bad = await http.get("/me", headers=bearer("not-a-token"))
            assert_401(bad.status_code, bad.headers, bad.json(), token_sent=True)
            assert (await http.get("/me")).status_code == 401
            own_server.restart()
            fresh = await auth.sign("alice")
            assert (await http.get("/me", headers=bearer(fresh))).status_code == 200


async def test_an_outer_middleware_may_add_headers_to_a_401_without_corrupting_the_next(
    auth: RedisJWT,
) -> None:
    inner = make_app(auth)
    app = CORSMiddleware(inner, allow_origins=["https://app.example"])
    async with client(app) as http:
        for _ in range(3):
            response = await http.get("/me", headers={"origin": "https://app.example"})
            assert response.status_code == 401
            assert response.headers.get_list("access-control-allow-origin") == [
                "https://app.example"
            ]
            assert response.headers.get_list("www-authenticate") == ["Bearer"]
