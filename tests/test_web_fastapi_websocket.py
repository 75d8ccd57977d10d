"""FastAPI WebSocket routes behind require_session: close codes the client sees, ended sessions."""

# No ``from __future__ import annotations``: FastAPI reads the routes' annotations.

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated

import uvicorn
from fastapi import Depends, FastAPI, WebSocket, WebSocketDisconnect
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    RejectConnection,
    Request,
    TextMessage,
)

from redis_jwt import Event, RedisJWT, Session
from redis_jwt.fastapi import optional_session, require_session
from redis_jwt.starlette import SessionCookie
from redis_jwt.testing import RedisServer, free_port

from .conftest import SECRET
from .web_helpers import WebSocketDriver

COOKIE = SessionCookie(name="sid")


def make_app(auth: RedisJWT, disconnects: list[int] | None = None) -> FastAPI:
    app = FastAPI()
    current = require_session(auth, cookie=COOKIE, trusted_origins=["https://app.example.com"])
    maybe = optional_session(auth)

    @app.websocket("/ws")
    async def echo(websocket: WebSocket, session: Annotated[Session, Depends(current)]) -> None:
        await websocket.accept()
        try:
            while True:
                text = await websocket.receive_text()
                await websocket.send_text(f"{session.user_id}:{text}")
        except WebSocketDisconnect as exc:
            if disconnects is not None:
                disconnects.append(exc.code)

    @app.websocket("/ticker")
    async def ticker(websocket: WebSocket, session: Annotated[Session, Depends(current)]) -> None:
        await websocket.accept()
        try:
            for n in range(500):  # only sends: a session end must still close it
                await websocket.send_text(str(n))
                await asyncio.sleep(0.01)
        except WebSocketDisconnect as exc:
            if disconnects is not None:
                disconnects.append(exc.code)

    @app.websocket("/maybe")
    async def anonymous(
        websocket: WebSocket, session: Annotated[Session | None, Depends(maybe)]
    ) -> None:
        await websocket.accept()
        await websocket.send_text(session.user_id if session else "-")
        await websocket.close()

    return app


def bearer(token: str) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", b"Bearer " + token.encode())]


async def refused_with(app: FastAPI, headers: list[tuple[bytes, bytes]]) -> int:
    """Connect; the socket must be accepted and then closed; return the close code."""
    driver = WebSocketDriver(app, "/ws", headers)
    assert (await driver.connect())["type"] == "websocket.accept"
    closed = await driver.next()
    assert closed["type"] == "websocket.close"
    await driver.finished()
    return int(closed["code"])


async def test_a_missing_or_bad_token_is_accepted_then_closed_1008(auth: RedisJWT) -> None:
    token = await auth.sign("alice")
    await auth.destroy(token)
    for headers in ([], bearer("garbage"), [(b"authorization", b"Bearer")], bearer(token)):
        assert await refused_with(make_app(auth), headers) == 1008
    assert not auth.events.has_listeners


async def test_redis_down_at_the_handshake_is_closed_1013(own_server: RedisServer) -> None:
    async with RedisJWT(secret=SECRET, redis_url=own_server.url) as auth:
        token = await auth.sign("alice")
        own_server.kill()
        assert await refused_with(make_app(auth), bearer(token)) == 1013


async def test_ending_the_session_closes_the_open_socket_1008(auth: RedisJWT) -> None:
    disconnects: list[int] = []
    app = make_app(auth, disconnects)
    token = await auth.sign("alice")
    other = await auth.sign("alice")
    socket = WebSocketDriver(app, "/ws", bearer(token))
    bystander = WebSocketDriver(app, "/ws", bearer(other))
    for driver in (socket, bystander):
        assert (await driver.connect())["type"] == "websocket.accept"
    await socket.send_text("hi")
    assert (await socket.next())["text"] == "alice:hi"
    assert await auth.destroy(token)
    closed = await socket.next()
    assert (closed["type"], closed["code"]) == ("websocket.close", 1008)
    await socket.finished()
    assert disconnects == [1008]  # the endpoint learned it too
    # The other session's socket is untouched and still served.
    await bystander.send_text("still here")
    assert (await bystander.next())["text"] == "alice:still here"
    await bystander.disconnect()
    await bystander.finished()
    assert not auth.events.has_listeners  # nothing left behind


async def test_a_socket_that_only_sends_is_closed_by_a_revoke(auth: RedisJWT) -> None:
    disconnects: list[int] = []
    token = await auth.sign("alice")
    session = await auth.verify(token)
    socket = WebSocketDriver(make_app(auth, disconnects), "/ticker", bearer(token))
    assert (await socket.connect())["type"] == "websocket.accept"
    assert (await socket.next())["text"] == "0"
    assert await auth.revoke("alice", session.session_id)
    for _ in range(600):  # drain the ticks already sent, up to the close
        message = await socket.next()
        if message["type"] == "websocket.close":
            break
    assert message == {"type": "websocket.close", "code": 1008, "reason": "session ended"}
    await socket.finished()
    assert disconnects == [1006]  # Starlette's word for a send on a closed socket
    assert not auth.events.has_listeners


async def test_a_session_ended_during_the_handshake_is_refused(auth: RedisJWT) -> None:
    token = await auth.sign("alice")
    session_id = (await auth.verify(token)).session_id
    socket = WebSocketDriver(make_app(auth), "/ws", bearer(token))

    async def end_it_meanwhile() -> None:
        auth.events.emit(
            Event(kind="destroyed", user_id="alice", session_id=session_id, at=datetime.now(UTC))
        )

    connecting = asyncio.create_task(socket.connect())
    await asyncio.sleep(0)  # the app has started: its dependency verifies next
    racer = asyncio.create_task(end_it_meanwhile())
    assert (await connecting)["type"] == "websocket.accept"
    await racer
    assert (await socket.next())["code"] == 1008
    await socket.finished()
    assert not auth.events.has_listeners


async def test_cookie_handshakes_need_a_trusted_origin(auth: RedisJWT) -> None:
    token = await auth.sign("alice")
    cookie = (b"cookie", b"sid=" + token.encode())
    foreign = [cookie, (b"origin", b"https://evil.example")]
    assert await refused_with(make_app(auth), foreign) == 1008
    for origin in (b"http://testserver", b"https://app.example.com", None):
        headers = [cookie] if origin is None else [cookie, (b"origin", origin)]
        driver = WebSocketDriver(make_app(auth), "/ws", headers)
        assert (await driver.connect())["type"] == "websocket.accept", origin
        await driver.disconnect()
        await driver.finished()
    # The header is exempt from the origin rule.
    exempt = WebSocketDriver(make_app(auth), "/ws", [*bearer(token), foreign[1]])
    assert (await exempt.connect())["type"] == "websocket.accept"
    await exempt.disconnect()
    await exempt.finished()


async def test_optional_sockets_without_a_token_are_anonymous(auth: RedisJWT) -> None:
    driver = WebSocketDriver(make_app(auth), "/maybe", [])
    assert (await driver.connect())["type"] == "websocket.accept"
    assert (await driver.next())["text"] == "-"
    await driver.finished()
    assert not auth.events.has_listeners


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[int]:
    """Serve ``app`` with a real uvicorn (its wsproto WebSockets) on a free loopback port."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, ws="wsproto", lifespan="off", log_level="warning"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(20):
            while not server.started:
                assert not task.done(), "uvicorn stopped"
                await asyncio.sleep(0.02)
        yield port
    finally:
        server.should_exit = True
        async with asyncio.timeout(20):
            await task


async def ws_client(port: int, path: str, headers: list[tuple[bytes, bytes]]) -> list[object]:
    """A WebSocket client over a real socket: what it saw, up to the close or the refusal."""
    seen: list[object] = []
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    connection = WSConnection(ConnectionType.CLIENT)
    writer.write(connection.send(Request(host="testserver", target=path, extra_headers=headers)))
    try:
        async with asyncio.timeout(10):
            while True:
                data = await reader.read(65536)
                connection.receive_data(data or None)
                for event in connection.events():
                    if isinstance(event, AcceptConnection):
                        seen.append("accepted")
                    elif isinstance(event, RejectConnection):
                        seen.append(("rejected", event.status_code))
                        return seen
                    elif isinstance(event, TextMessage):
                        seen.append(event.data)
                    elif isinstance(event, CloseConnection):
                        seen.append(("closed", event.code))
                        writer.write(connection.send(event.response()))
                        return seen
                if not data:
                    return seen
    finally:
        writer.close()


async def test_under_uvicorn_the_client_sees_the_close_codes(auth: RedisJWT) -> None:
    app = FastAPI()
    current = require_session(auth)
    opened = asyncio.Event()

    @app.websocket("/ws")
    async def hello(websocket: WebSocket, session: Annotated[Session, Depends(current)]) -> None:
        await websocket.accept()
        await websocket.send_text(session.user_id)
        opened.set()
        with contextlib.suppress(WebSocketDisconnect):
            await websocket.receive_text()

    token = await auth.sign("alice")
    async with serving(app) as port:
        refused = await ws_client(port, "/ws", [])
        assert refused == ["accepted", ("closed", 1008)]  # not an HTTP 403
        client = asyncio.create_task(ws_client(port, "/ws", bearer(token)))
        async with asyncio.timeout(10):  # the socket is open and its session watched
            await opened.wait()
        assert await auth.destroy(token)
        assert await client == ["accepted", "alice", ("closed", 1008)]
