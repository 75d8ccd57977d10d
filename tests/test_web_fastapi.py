"""The FastAPI dependencies, error handlers and OpenAPI, in-process against real Redis."""

# No ``from __future__ import annotations``: FastAPI reads the routes' annotations,
# which name local variables.

import inspect
import time
from typing import Annotated, Any

import jwt
from fastapi import Depends, FastAPI, WebSocket
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from redis_jwt import RedisJWT, Session
from redis_jwt.fastapi import (
    BearerToken,
    install_error_handlers,
    mount_jwks,
    optional_session,
    require_session,
)
from redis_jwt.keys import Key, KeyRing
from redis_jwt.starlette import SessionCookie
from redis_jwt.testing import RedisServer

from .conftest import SECRET
from .hostile import hostile_tokens
from .keyfactory import private_key, private_pem
from .web_helpers import WebSocketDriver, bearer, call, client, hostile_headers


def make_app(auth: RedisJWT, *, cookie: SessionCookie | None = None) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    current = require_session(auth, cookie=cookie)
    maybe = optional_session(auth)
    with_data = require_session(auth, with_session=True)

    @app.get("/me")
    async def me(session: Annotated[Session, Depends(current)]) -> dict[str, Any]:
        return {"user": session.user_id, "data": session.data_session}

    @app.get("/maybe")
    async def maybe_me(session: Annotated[Session | None, Depends(maybe)]) -> dict[str, Any]:
        return {"user": session.user_id if session else None}

    @app.get("/data")
    async def data(session: Annotated[Session, Depends(with_data)]) -> dict[str, Any]:
        return {"data": session.data_session}

    @app.post("/login")
    async def login() -> dict[str, str]:
        # A StoreError raised here is answered by install_error_handlers.
        return {"token": await auth.sign("alice")}

    @app.post("/logout")
    async def logout(token: Annotated[str | None, Depends(BearerToken())]) -> dict[str, bool]:
        # An InvalidToken raised here is answered by install_error_handlers.
        return {"ended": await auth.destroy(token or "")}

    @app.websocket("/ws")
    async def socket(websocket: WebSocket, session: Annotated[Session, Depends(current)]) -> None:
        await websocket.accept()
        await websocket.send_text(session.user_id)
        await websocket.close()

    return app


async def test_a_genuine_token_gives_the_session(auth: RedisJWT) -> None:
    token = await auth.sign("alice", data_session={"ip": "203.0.113.7"})
    async with client(make_app(auth)) as http:
        assert (await http.get("/me", headers=bearer(token))).json() == {
            "user": "alice",
            "data": None,
        }
        data = await http.get("/data", headers={"authorization": f"bearer {token}"})
        assert data.json() == {"data": {"ip": "203.0.113.7"}}
        assert (await http.get("/maybe", headers=bearer(token))).json() == {"user": "alice"}


async def test_missing_bad_and_ended_tokens_are_401_with_the_right_challenge(
    auth: RedisJWT,
) -> None:
    token = await auth.sign("alice")
    async with client(make_app(auth)) as http:
        missing = await http.get("/me")
        bad = await http.get("/me", headers=bearer("garbage"))
        await auth.destroy(token)
        ended = await http.get("/me", headers=bearer(token))
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert missing.json() == {"detail": "Not authenticated"}
    assert bad.json() == {"detail": "Invalid token"}
    assert ended.json() == {"detail": "Session ended"}
    for response in (bad, ended):
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


async def test_optional_session_is_none_without_a_token_but_401_with_a_bad_one(
    auth: RedisJWT,
) -> None:
    async with client(make_app(auth)) as http:
        assert (await http.get("/maybe")).json() == {"user": None}
        bad = await http.get("/maybe", headers=bearer("garbage"))
        empty = await http.get("/maybe", headers={"authorization": "Bearer"})
    assert bad.status_code == 401
    assert empty.status_code == 401
    assert empty.headers["www-authenticate"] == 'Bearer error="invalid_token"'


async def test_the_hostile_corpus_and_headers_are_all_401_through_the_dependency(
    auth: RedisJWT,
) -> None:
    genuine = await auth.sign("victim")
    app = make_app(auth)
    wrong: dict[str, int] = {}
    async with client(app) as http:
        for name, token in hostile_tokens(genuine).items():
            for path in ("/me", "/maybe"):
                response = await http.get(path, headers=bearer(token))
                if response.status_code != 401 or set(response.json()) != {"detail"}:
                    wrong[f"{path} {name}"] = response.status_code
    for name, headers in hostile_headers(genuine).items():
        status, sent, body = await call(app, "/me", headers)
        if (
            status != 401
            or not sent["www-authenticate"].startswith("Bearer")
            or "detail" not in body
        ):
            wrong[f"header {name}"] = status
    assert wrong == {}


async def test_the_cookie_is_read_after_the_header(auth: RedisJWT) -> None:
    cookie = SessionCookie(name="sid")
    token = await auth.sign("alice")
    other = await auth.sign("bob")
    app = make_app(auth, cookie=cookie)
    assert (await call(app, "/me", [(b"cookie", b"sid=" + token.encode())]))[2]["user"] == "alice"
    both = [(b"cookie", b"sid=" + token.encode()), (b"authorization", b"Bearer " + other.encode())]
    assert (await call(app, "/me", both))[2]["user"] == "bob"


async def test_killed_redis_is_a_fast_503_then_recovers(own_server: RedisServer) -> None:
    async with RedisJWT(secret=SECRET, redis_url=own_server.url) as auth:
        token = await auth.sign("alice")
        async with client(make_app(auth)) as http:
            own_server.kill()
            for method, path, headers in (
                ("GET", "/me", bearer(token)),
                ("POST", "/login", {}),  # auth.sign raising StoreError, via the handlers
            ):
                started = time.perf_counter()
                response = await http.request(method, path, headers=headers)
                assert time.perf_counter() - started < 2.0
                assert response.status_code == 503, path
                assert response.headers["retry-after"] == "1"
                assert response.json() == {"detail": "Session store unavailable, retry later"}
            assert (await http.get("/me", headers=bearer("garbage"))).status_code == 401
            assert (await http.post("/logout", headers=bearer("garbage"))).status_code == 401
            own_server.restart()
            fresh = (await http.post("/login")).json()["token"]
            assert (await http.get("/me", headers=bearer(fresh))).status_code == 200
            assert (await http.post("/logout", headers=bearer(fresh))).json() == {"ended": True}


async def test_openapi_declares_an_http_bearer_scheme(auth: RedisJWT) -> None:
    async with client(make_app(auth)) as http:
        spec = (await http.get("/openapi.json")).json()
    assert spec["components"]["securitySchemes"] == {
        "RedisJWT": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A session token from redis-jwt.",
        }
    }
    for path in ("/me", "/maybe", "/data"):
        assert spec["paths"][path]["get"]["security"] == [{"RedisJWT": []}]
        assert "parameters" not in spec["paths"][path]["get"]


def _calls(dependant: Dependant) -> list[Any]:
    found = [dependant.call] if dependant.call is not None else []
    for sub in dependant.dependencies:
        found.extend(_calls(sub))
    return found


async def test_every_dependency_is_async_so_nothing_runs_in_a_thread(auth: RedisJWT) -> None:
    app = make_app(auth)
    routes = [r for r in app.routes if isinstance(r, APIRoute) and r.path in ("/me", "/maybe")]
    for route in routes:
        for call_ in _calls(route.dependant)[1:]:  # the endpoint itself is the app's
            target = call_ if inspect.isfunction(call_) else call_.__call__
            # A coroutine or an async generator (the session dependencies, which
            # watch WebSockets until they end): never a function run in a thread.
            assert inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target), call_


async def test_a_websocket_route_is_closed_1008_by_the_dependency(auth: RedisJWT) -> None:
    app = make_app(auth)
    refused = WebSocketDriver(app, "/ws", [])
    # Accepted, then closed: the client sees the close code, not an HTTP 403.
    assert (await refused.connect())["type"] == "websocket.accept"
    message = await refused.next()
    assert message["type"] == "websocket.close"
    assert message["code"] == 1008
    token = await auth.sign("alice")
    accepted = WebSocketDriver(app, "/ws", [(b"authorization", b"Bearer " + token.encode())])
    assert (await accepted.connect())["type"] == "websocket.accept"
    assert (await accepted.next())["text"] == "alice"


async def test_mount_jwks_serves_the_public_keys_that_check_our_tokens(redis_url: str) -> None:
    ring = KeyRing([Key.from_pem("k1", private_pem(private_key("p256")))])
    async with RedisJWT(keys=ring, redis_url=redis_url) as auth:
        app = FastAPI()
        mount_jwks(app, auth)
        token = await auth.sign("alice")
        async with client(app) as http:
            response = await http.get("/.well-known/jwks.json")
            spec = (await http.get("/openapi.json")).json()
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=300"
    keys = response.json()["keys"]
    assert [(k["kid"], k["alg"]) for k in keys] == [("k1", "ES256")]
    assert "d" not in keys[0]  # never the private part
    # Anyone can now check our signatures with the published set.
    public = jwt.PyJWKSet.from_dict(response.json())["k1"]
    assert jwt.decode(token, public, algorithms=["ES256"])["sub"] == "alice"
    assert "/.well-known/jwks.json" not in spec["paths"]


async def test_an_hmac_only_jwks_is_empty(auth: RedisJWT) -> None:
    app = FastAPI()
    mount_jwks(app, auth, path="/keys")
    async with client(app) as http:
        assert (await http.get("/keys")).json() == {"keys": []}
