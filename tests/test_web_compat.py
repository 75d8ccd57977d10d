"""The web adapters' reach-ins into framework internals, checked against the installed version."""

from __future__ import annotations

import inspect
from typing import Any

import starlette
from starlette.websockets import WebSocket

from redis_jwt._web_compat import socket_channels


class Recorder:
    def __init__(self, receive: Any, send: Any) -> None:
        self.inner = (receive, send)
        self.sent: list[Any] = []

    async def receive(self) -> Any:
        return {"type": "websocket.connect"}

    async def send(self, message: Any) -> None:
        self.sent.append(message)


async def test_socket_channels_reroutes_a_starlette_websocket() -> None:
    # Written for Starlette 0.40 to 1.10: WebSocket keeps its ASGI callables in
    # _receive/_send and routes every receive/send through them.
    async def receive() -> Any:
        raise AssertionError("the original receive must not be called")

    async def send(message: Any) -> None:
        raise AssertionError("the original send must not be called")

    scope = {"type": "websocket", "path": "/", "headers": [], "query_string": b""}
    socket = WebSocket(scope, receive, send)
    wrapper = socket_channels(socket, Recorder)
    assert wrapper.inner == (receive, send)
    await socket.accept()  # receives websocket.connect, sends websocket.accept
    await socket.send_text("hi")
    assert [m["type"] for m in wrapper.sent] == ["websocket.accept", "websocket.send"]
    assert "_receive" in inspect.getsource(WebSocket.__init__), starlette.__version__
