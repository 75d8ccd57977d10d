"""WebSockets behind RedisJWTMiddleware: the handshake is authenticated, ended sessions close."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from redis_jwt import Event, RedisJWT
from redis_jwt.starlette import RedisJWTMiddleware, SessionCookie
from redis_jwt.testing import RedisServer

from .conftest import SECRET
from .web_helpers import WebSocketDriver


def make_app(auth: RedisJWT, disconnects: list[int] | None = None, **options: Any) -> Starlette:
    """An echo socket that prefixes each message with the user id; records its disconnects."""

    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        user = websocket.state.user
        try:
            while True:
                text = await websocket.receive_text()
                await websocket.send_text(f"{user.user_id if user else '-'}:{text}")
        except WebSocketDisconnect as exc:
            if disconnects is not None:
                disconnects.append(exc.code)

    async def ticker(websocket: WebSocket) -> None:
        # Only sends: a session end must still close it.
        await websocket.accept()
        try:
            for n in range(500):
                await websocket.send_text(str(n))
                await asyncio.sleep(0.01)
        except WebSocketDisconnect as exc:  # what a send on a closed socket raises
            if disconnects is not None:
                disconnects.append(exc.code)

    routes = [WebSocketRoute("/ws", echo), WebSocketRoute("/ticker", ticker)]
    middleware = [Middleware(RedisJWTMiddleware, auth=auth, **options)]
    return Starlette(routes=routes, middleware=middleware)


def auth_header(token: str) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", b"Bearer " + token.encode())]


async def test_a_missing_or_bad_token_is_closed_1008_before_accepting(auth: RedisJWT) -> None:
    app = make_app(auth)
    token = await auth.sign("alice")
    for headers in (
        [],
        auth_header("garbage"),
        auth_header(token + "x"),
        [(b"authorization", b"Bearer")],
    ):
        socket = WebSocketDriver(app, "/ws", headers)
        message = await socket.connect()
        assert message["type"] == "websocket.close"
        assert message["code"] == 1008
        assert message["reason"] in ("Not authenticated", "Invalid token")
        await socket.finished()
    assert not auth.events.has_listeners


async def test_a_client_gone_before_the_handshake_is_left_alone(auth: RedisJWT) -> None:
    socket = WebSocketDriver(make_app(auth), "/ws", [])
    socket.task = asyncio.create_task(make_app(auth)(socket.scope, socket._receive, socket._send))
    await socket.disconnect()
    await socket.finished()
    assert socket._from_app.empty()


async def test_a_genuine_token_is_accepted_and_the_user_is_on_the_socket(auth: RedisJWT) -> None:
    token = await auth.sign("alice")
    socket = WebSocketDriver(make_app(auth), "/ws", auth_header(token))
    assert (await socket.connect())["type"] == "websocket.accept"
    await socket.send_text("hi")
    assert (await socket.next())["text"] == "alice:hi"
    await socket.disconnect()
    await socket.finished()
    assert not auth.events.has_listeners  # nothing leaked


async def test_destroying_the_session_closes_its_socket_1008(auth: RedisJWT) -> None:
    disconnects: list[int] = []
    app = make_app(auth, disconnects)
    token = await auth.sign("alice")
    other = await auth.sign("alice")
    socket = WebSocketDriver(app, "/ws", auth_header(token))
    bystander = WebSocketDriver(app, "/ws", auth_header(other))
    assert (await socket.connect())["type"] == "websocket.accept"
    assert (await bystander.connect())["type"] == "websocket.accept"
    assert auth.events.has_listeners
    await auth.destroy(token)
    closed = await socket.next()
    assert closed == {"type": "websocket.close", "code": 1008, "reason": "session ended"}
    await socket.finished()
    assert disconnects == [1008]  # the app saw the end as a disconnect
    # The other session's socket lives on.
    await bystander.send_text("still here")
    assert (await bystander.next())["text"] == "alice:still here"
    await auth.destroy_all("alice")
    assert (await bystander.next())["code"] == 1008
    await bystander.finished()
    assert not auth.events.has_listeners


async def test_revoke_and_expiry_events_close_the_socket(auth: RedisJWT) -> None:
    app = make_app(auth)
    for end in ("revoke", "expired"):
        token = await auth.sign("alice")
        session = await auth.verify(token)
        socket = WebSocketDriver(app, "/ws", auth_header(token))
        assert (await socket.connect())["type"] == "websocket.accept"
        if end == "revoke":
            assert await auth.revoke("alice", session.session_id)
        else:
            # What the expiry listener reports (from this or any instance) looks like this.
            auth.events.emit(
                Event(
                    kind="expired",
                    user_id="alice",
                    session_id=session.session_id,
                    at=datetime.now(UTC),
                )
            )
        assert (await socket.next())["code"] == 1008
        await socket.finished()
    assert not auth.events.has_listeners


async def test_a_socket_that_only_sends_is_closed_too(auth: RedisJWT) -> None:
    token = await auth.sign("alice")
    disconnects: list[int] = []
    socket = WebSocketDriver(make_app(auth, disconnects), "/ticker", auth_header(token))
    assert (await socket.connect())["type"] == "websocket.accept"
    assert (await socket.next())["text"] == "0"
    await auth.destroy(token)
    while (message := await socket.next())["type"] == "websocket.send":
        pass
    assert message["code"] == 1008
    # Its next send raised OSError, which Starlette turns into a disconnect: the app ended.
    await socket.finished()
    assert disconnects == [1006]
    assert not auth.events.has_listeners


async def test_redis_down_at_the_handshake_is_closed_1013(own_server: RedisServer) -> None:
    async with RedisJWT(secret=SECRET, redis_url=own_server.url) as auth:
        token = await auth.sign("alice")
        app = make_app(auth)
        own_server.kill()
        socket = WebSocketDriver(app, "/ws", auth_header(token))
        message = await socket.connect()
        assert message["type"] == "websocket.close"
        assert message["code"] == 1013
        await socket.finished()
        # A bad token is still a 1008: it is refused without Redis.
        bad = WebSocketDriver(app, "/ws", auth_header("garbage"))
        assert (await bad.connect())["code"] == 1008


async def test_optional_and_excluded_sockets_and_cookies(auth: RedisJWT) -> None:
    anonymous = WebSocketDriver(make_app(auth, optional=True), "/ws", [])
    assert (await anonymous.connect())["type"] == "websocket.accept"
    await anonymous.send_text("hi")
    assert (await anonymous.next())["text"] == "-:hi"
    await anonymous.disconnect()
    await anonymous.finished()

    token = await auth.sign("carol")
    cookie = SessionCookie(name="sid")
    via_cookie = WebSocketDriver(
        make_app(auth, cookie=cookie), "/ws", [(b"cookie", b"sid=" + token.encode())]
    )
    assert (await via_cookie.connect())["type"] == "websocket.accept"
    await via_cookie.send_text("hi")
    assert (await via_cookie.next())["text"] == "carol:hi"
    await via_cookie.disconnect()
    await via_cookie.finished()

    excluded = WebSocketDriver(make_app(auth, exclude=("/ticker",)), "/ticker", [])
    assert (await excluded.connect())["type"] == "websocket.accept"
    await excluded.disconnect()
    assert excluded.task is not None
    excluded.task.cancel()
    assert not auth.events.has_listeners


async def test_many_sockets_share_one_listener_and_release_it(auth: RedisJWT) -> None:
    app = make_app(auth)
    tokens = [await auth.sign(f"user-{n}") for n in range(20)]
    sockets = [WebSocketDriver(app, "/ws", auth_header(token)) for token in tokens]
    for socket in sockets:
        assert (await socket.connect())["type"] == "websocket.accept"
    destroyed = auth.events._handlers.get("destroyed", [])
    assert len(destroyed) == 1
    for n, socket in enumerate(sockets):
        if n % 2:
            await auth.destroy(tokens[n])
            assert (await socket.next())["code"] == 1008
        else:
            await socket.disconnect()
        await socket.finished()
    assert not auth.events.has_listeners


async def test_a_session_ended_during_the_handshake_is_refused(auth: RedisJWT) -> None:
    token = await auth.sign("alice")
    session_id = (await auth.verify(token)).session_id
    socket = WebSocketDriver(make_app(auth), "/ws", auth_header(token))

    async def end_it_meanwhile() -> None:
        # Runs while the handshake awaits its verify: an event from another instance.
        auth.events.emit(
            Event(kind="destroyed", user_id="alice", session_id=session_id, at=datetime.now(UTC))
        )

    connecting = asyncio.create_task(socket.connect())
    await asyncio.sleep(0)  # connect() has started the app: its handshake runs next
    racer = asyncio.create_task(end_it_meanwhile())
    message = await connecting
    await racer
    assert message == {"type": "websocket.close", "code": 1008, "reason": "Session ended"}
    await socket.finished()
    assert not auth.events.has_listeners


async def test_an_app_that_closes_first_gets_no_second_close(auth: RedisJWT) -> None:
    async def close_at_once(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.close(code=4000)

    app = Starlette(
        routes=[WebSocketRoute("/ws", close_at_once)],
        middleware=[Middleware(RedisJWTMiddleware, auth=auth)],
    )
    token = await auth.sign("alice")
    socket = WebSocketDriver(app, "/ws", auth_header(token))
    assert (await socket.connect())["type"] == "websocket.accept"
    assert (await socket.next())["code"] == 4000
    await socket.finished()
    await auth.destroy(token)
    await asyncio.sleep(0.05)
    assert socket._from_app.empty()
    assert not auth.events.has_listeners


async def test_a_cancelled_app_releases_its_socket(auth: RedisJWT) -> None:
    token = await auth.sign("alice")
    socket = WebSocketDriver(make_app(auth), "/ws", auth_header(token))
    assert (await socket.connect())["type"] == "websocket.accept"
    assert auth.events.has_listeners
    assert socket.task is not None
    socket.task.cancel()  # e.g. the server shutting down while the app waits in receive()
    with contextlib.suppress(asyncio.CancelledError):
        await socket.task
    assert not auth.events.has_listeners
