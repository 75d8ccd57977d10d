"""The Litestar plugin in-process: lifespan, HTTP, WebSockets, OpenAPI, exclude rules."""

from __future__ import annotations

import asyncio
import contextlib
import warnings
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, cast

import httpx
import pytest
from litestar import Litestar, Request, Router, WebSocket, get, post, websocket
from litestar.exceptions import WebSocketDisconnect
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.controller import OpenAPIController
from litestar.testing import TestClient

from redis_jwt import Event, RedisJWT, Session, errors
from redis_jwt.litestar import RedisJWTPlugin
from redis_jwt.testing import RedisServer

from .conftest import SECRET
from .web_helpers import ASGIApp, WebSocketDriver, call

closes: list[int] = []


@get("/me")
async def me(request: Request[Session, str, Any]) -> dict[str, Any]:
    return {"user": request.user.user_id, "token": request.auth, "data": request.user.data_session}


@get("/maybe")
async def maybe(request: Request[Session | None, str | None, Any]) -> dict[str, Any]:
    return {"user": request.user.user_id if request.user else None, "token": request.auth}


@post("/login", status_code=200)
async def login(request: Request[Any, Any, Any]) -> dict[str, str]:
    auth: RedisJWT = request.app.state.auth
    return {"token": await auth.sign("alice", data_session={"ip": "192.0.2.1"})}


@get("/public")
async def public_root(request: Request[Session, str, Any]) -> dict[str, str]:
    return {"user": request.user.user_id}


@get(["/open", "/public/page", "/login/x", "/login"])
async def open_page() -> dict[str, bool]:
    return {"open": True}


@websocket("/ws")
async def echo(socket: WebSocket[Session, str, Any]) -> None:
    await socket.accept()
    await socket.send_text(f"hello {socket.user.user_id} {socket.auth == socket.auth}")
    try:
        while True:
            await socket.send_text("echo:" + await socket.receive_text())
    except WebSocketDisconnect as exc:
        closes.append(exc.code)


def build(auth: RedisJWT, **options: Any) -> Litestar:
    """An app with every route above; ``app.state.auth`` is ``auth``."""
    options.setdefault("exclude", ["/login", "/open", "/public/"])
    handlers = [me, maybe, login, open_page, public_root, echo]
    app = Litestar(handlers, plugins=[RedisJWTPlugin(auth, **options)])
    app.state.auth = auth
    return app


@contextlib.asynccontextmanager
async def running(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and give an in-process client."""
    transport = httpx.ASGITransport(app=asgi(app))
    async with (
        app.lifespan(),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as http,
    ):
        yield http


def asgi(app: Litestar) -> ASGIApp:
    """The app as the plain ASGI callable the in-process drivers take."""
    return cast(ASGIApp, app)


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_the_lifespan_opens_and_closes_auth(redis_url: str) -> None:
    auth = RedisJWT(secret=SECRET, redis_url=redis_url)
    app = build(auth)
    async with running(app) as http:
        token = (await http.post("/login")).json()["token"]
        answer = await http.get("/me", headers=bearer(token))
        assert answer.status_code == 200
        assert answer.json() == {"user": "alice", "token": token, "data": None}
    with pytest.raises(errors.ConfigurationError):
        await auth.verify(token)


async def test_401_answers_like_the_middleware(redis_url: str) -> None:
    auth = RedisJWT(secret=SECRET, redis_url=redis_url)
    async with running(build(auth)) as http:
        token = (await http.post("/login")).json()["token"]
        missing = await http.get("/me")
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == "Bearer"
        assert missing.json() == {"detail": "Not authenticated"}
        for sent in ("garbage", token[:-3] + "abc", ""):
            bad = await http.get("/me", headers={"authorization": f"Bearer {sent}"})
            assert bad.status_code == 401, sent
            assert bad.headers["www-authenticate"] == 'Bearer error="invalid_token"'
            assert isinstance(bad.json()["detail"], str)
        await auth.destroy(token)
        ended = await http.get("/me", headers=bearer(token))
        assert ended.status_code == 401
        assert ended.json() == {"detail": "Session ended"}


async def test_exclude_matches_exactly_or_by_prefix(redis_url: str) -> None:
    auth = RedisJWT(secret=SECRET, redis_url=redis_url)
    async with running(build(auth)) as http:
        assert (await http.get("/open")).json() == {"open": True}
        assert (await http.get("/public/page")).json() == {"open": True}
        # "/login" is exact: a path under it is not open.
        assert (await http.get("/login/x")).status_code == 401
        # "/public/" is a prefix: "/public" itself is another handler, and stays protected,
        # however the client spells it (the rules see the path Litestar routes by).
        for spelling in ("/public", "/public/", "/public//"):
            assert (await http.get(spelling)).status_code == 401, spelling
        # Litestar routes "/login/" to the "/login" handler (it strips the slash before the
        # middleware runs): the rule follows the handler, so it is open too.
        assert (await http.get("/login/")).json() == {"open": True}
        assert (await http.post("/login")).status_code == 200


async def test_openapi_routes_need_no_token_and_show_the_bearer_scheme(redis_url: str) -> None:
    auth = RedisJWT(secret=SECRET, redis_url=redis_url)
    async with running(build(auth)) as http:
        spec = await http.get("/schema/openapi.json")
        assert spec.status_code == 200
        scheme = spec.json()["components"]["securitySchemes"]["RedisJWT"]
        assert scheme == {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": scheme["description"],
        }
        assert {"RedisJWT": []} in spec.json()["security"]
        assert (await http.get("/schema")).status_code == 200
        assert (await http.get("/schema/swagger")).status_code == 200


async def test_a_custom_openapi_path_is_excluded_too(redis_url: str) -> None:
    auth = RedisJWT(secret=SECRET, redis_url=redis_url)
    app = Litestar(
        [me],
        plugins=[RedisJWTPlugin(auth)],
        openapi_config=OpenAPIConfig(title="t", version="1", path="/docs"),
    )
    async with running(app) as http:
        assert (await http.get("/docs/openapi.json")).status_code == 200
        assert (await http.get("/docs")).status_code == 200
        assert (await http.get("/me")).status_code == 401
    # Without OpenAPI there is no schema route to open, and the plugin still works.
    off = Litestar(
        [me],
        plugins=[RedisJWTPlugin(RedisJWT(secret=SECRET, redis_url=redis_url))],
        openapi_config=None,
    )
    async with running(off) as http:
        assert (await http.get("/schema/openapi.json")).status_code == 404
        assert (await http.get("/me")).status_code == 401


async def test_optional_lets_anonymous_requests_through(redis_url: str) -> None:
    auth = RedisJWT(secret=SECRET, redis_url=redis_url)
    async with running(build(auth, optional=True, with_session=True)) as http:
        assert (await http.get("/maybe")).json() == {"user": None, "token": None}
        token = (await http.post("/login")).json()["token"]
        assert (await http.get("/maybe", headers=bearer(token))).json() == {
            "user": "alice",
            "token": token,
        }
        assert (await http.get("/me", headers=bearer(token))).json()["data"] == {"ip": "192.0.2.1"}
        bad = await http.get("/maybe", headers=bearer("garbage"))
        assert bad.status_code == 401


async def test_redis_down_is_a_503_with_retry_after(own_server: RedisServer) -> None:
    auth = RedisJWT(secret=SECRET, redis_url=own_server.url)
    app = build(auth)
    async with running(app) as http:
        token = (await http.post("/login")).json()["token"]
        own_server.kill()
        down = await http.get("/me", headers=bearer(token))
        assert down.status_code == 503
        assert down.headers["retry-after"] == "1"
        assert isinstance(down.json()["detail"], str)
        socket = WebSocketDriver(asgi(app), "/ws", [(b"authorization", f"Bearer {token}".encode())])
        refused = await socket.connect()
        assert refused["type"] == "websocket.close"
        assert refused["code"] == 1013


def ws_headers(token: str) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", f"Bearer {token}".encode())]


async def test_websocket_handshakes_are_refused_1008(redis_url: str) -> None:
    auth = RedisJWT(secret=SECRET, redis_url=redis_url)
    app = build(auth)
    async with running(app) as http:
        token = (await http.post("/login")).json()["token"]
        for headers in ([], ws_headers("garbage"), ws_headers(""), ws_headers(token + "x")):
            socket = WebSocketDriver(asgi(app), "/ws", headers)
            first = await socket.connect()
            assert first["type"] == "websocket.close", headers
            assert first["code"] == 1008
            await socket.finished()


async def test_an_open_websocket_closes_1008_when_its_session_ends(redis_url: str) -> None:
    auth = RedisJWT(secret=SECRET, redis_url=redis_url)
    app = build(auth)
    async with running(app) as http:
        token = (await http.post("/login")).json()["token"]
        other = (await http.post("/login")).json()["token"]
        socket = WebSocketDriver(asgi(app), "/ws", ws_headers(token))
        bystander = WebSocketDriver(asgi(app), "/ws", ws_headers(other))
        for driver in (socket, bystander):
            assert (await driver.connect())["type"] == "websocket.accept"
            assert (await driver.next())["text"] == "hello alice True"
        await socket.send_text("hi")
        assert (await socket.next())["text"] == "echo:hi"
        closes.clear()
        assert await auth.destroy(token)
        closed = await socket.next()
        assert closed == {"type": "websocket.close", "code": 1008, "reason": "session ended"}
        await socket.finished()
        assert closes == [1008]
        # The other session's socket stays open.
        await bystander.send_text("still")
        assert (await bystander.next())["text"] == "echo:still"
        await bystander.disconnect()
        await bystander.finished()


async def test_a_user_and_token_are_on_the_scope_of_plain_asgi_calls(redis_url: str) -> None:
    auth = RedisJWT(secret=SECRET, redis_url=redis_url)
    app = build(auth)
    async with running(app) as http:
        token = (await http.post("/login")).json()["token"]
        hostile = [(b"authorization", b"Bearer \xff\xfe" + token.encode())]
        status, headers, body = await call(asgi(app), "/me", hostile)
        assert status == 401
        assert headers["www-authenticate"] == 'Bearer error="invalid_token"'
        assert body == {"detail": "Invalid token"}


def test_litestars_own_test_client(redis_url: str) -> None:
    auth = RedisJWT(secret=SECRET, redis_url=redis_url)
    with TestClient(app=build(auth)) as client:
        token = client.post("/login").json()["token"]
        assert client.get("/me", headers=bearer(token)).json()["user"] == "alice"
        assert client.get("/me").status_code == 401
        with client.websocket_connect("/ws", headers=bearer(token)) as socket:
            assert socket.receive_text() == "hello alice True"
        with (
            pytest.raises(WebSocketDisconnect) as refused,
            client.websocket_connect("/ws") as socket,
        ):
            socket.receive_text()
        assert refused.value.code == 1008


def test_the_plugin_never_changes_another_apps_openapi_config(redis_url: str) -> None:
    first = build(RedisJWT(secret=SECRET, redis_url=redis_url))
    second = build(RedisJWT(secret=SECRET, redis_url=redis_url))
    plain = Litestar([open_page])
    assert first.openapi_config is not None
    assert plain.openapi_config is not None
    assert first.openapi_config is not second.openapi_config
    assert not plain.openapi_config.security


@websocket("/maybe-ws")
async def maybe_socket(socket: WebSocket[Session | None, str | None, Any]) -> None:
    await socket.accept()
    await socket.send_text(f"{socket.user.user_id if socket.user else '-'} {socket.auth}")
    await socket.close()


async def test_optional_websockets_and_clients_gone_before_the_handshake(redis_url: str) -> None:
    auth = RedisJWT(secret=SECRET, redis_url=redis_url)
    app = Litestar([maybe_socket, login], plugins=[RedisJWTPlugin(auth, optional=True)])
    app.state.auth = auth
    async with running(app) as http:
        anonymous = WebSocketDriver(asgi(app), "/maybe-ws", [])
        assert (await anonymous.connect())["type"] == "websocket.accept"
        assert (await anonymous.next())["text"] == "- None"
        await anonymous.finished()
        token = (await http.post("/login")).json()["token"]
        known = WebSocketDriver(asgi(app), "/maybe-ws", ws_headers(token))
        assert (await known.connect())["type"] == "websocket.accept"
        assert (await known.next())["text"] == f"alice {token}"
        await known.finished()
        # A client that leaves before its handshake is refused is sent nothing.
        gone = WebSocketDriver(asgi(app), "/maybe-ws", ws_headers("garbage"))
        gone.task = asyncio.ensure_future(asgi(app)(gone.scope, gone._receive, gone._send))
        await gone.disconnect()
        await gone.finished()
        assert gone.closed is False


async def test_a_session_ended_during_the_handshake_is_refused(redis_url: str) -> None:
    auth = RedisJWT(secret=SECRET, redis_url=redis_url)
    app = build(auth)
    async with running(app) as http:
        token = (await http.post("/login")).json()["token"]
        session_id = (await auth.verify(token)).session_id
        socket = WebSocketDriver(asgi(app), "/ws", ws_headers(token))

        async def end_it_meanwhile() -> None:
            # Runs while the handshake awaits its verify: an event from another instance.
            auth.events.emit(
                Event(
                    kind="destroyed", user_id="alice", session_id=session_id, at=datetime.now(UTC)
                )
            )

        connecting = asyncio.create_task(socket.connect())
        await asyncio.sleep(0)  # connect() has started the app: its handshake runs next
        racer = asyncio.create_task(end_it_meanwhile())
        message = await connecting
        await racer
        assert message == {"type": "websocket.close", "code": 1008, "reason": "Session ended"}
        await socket.finished()
        assert not auth.events.has_listeners


async def test_openapi_served_by_a_router_of_its_own_is_excluded(redis_url: str) -> None:
    auth = RedisJWT(secret=SECRET, redis_url=redis_url)
    config = OpenAPIConfig(
        title="t", version="1", openapi_router=Router("/api-docs", route_handlers=[])
    )
    app = Litestar([me], plugins=[RedisJWTPlugin(auth)], openapi_config=config)
    async with running(app) as http:
        assert (await http.get("/api-docs/openapi.json")).status_code == 200
        assert (await http.get("/me")).status_code == 401


async def test_the_deprecated_openapi_controller_path_is_excluded(redis_url: str) -> None:
    class Docs(OpenAPIController):
        path = "/old-docs"

    with pytest.warns(DeprecationWarning, match="openapi_controller"):
        config = OpenAPIConfig(title="t", version="1", openapi_controller=Docs)
    auth = RedisJWT(secret=SECRET, redis_url=redis_url)
    with warnings.catch_warnings():
        # Litestar warns again while it builds the deprecated controller's routes.
        warnings.simplefilter("ignore", DeprecationWarning)
        app = Litestar([me], plugins=[RedisJWTPlugin(auth)], openapi_config=config)
    async with running(app) as http:
        assert (await http.get("/old-docs/openapi.json")).status_code == 200
        assert (await http.get("/me")).status_code == 401


async def test_openapi_at_the_root_never_opens_the_whole_app(redis_url: str) -> None:
    auth = RedisJWT(secret=SECRET, redis_url=redis_url)
    config = OpenAPIConfig(title="t", version="1", path="/")
    app = Litestar([me], plugins=[RedisJWTPlugin(auth)], openapi_config=config)
    async with running(app) as http:
        assert (await http.get("/me")).status_code == 401
