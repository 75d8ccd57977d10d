"""Helpers for the web tests: an in-process HTTP client, a WebSocket driver, hostile headers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from pathlib import Path
from typing import Any

import httpx

from redis_jwt.testing import free_port

Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [
        MutableMapping[str, Any],
        Callable[[], Awaitable[Message]],
        Callable[[Message], Awaitable[None]],
    ],
    Awaitable[None],
]


@contextlib.asynccontextmanager
async def client(
    app: ASGIApp, base_url: str = "http://testserver"
) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking to ``app`` in-process (no lifespan: open ``auth`` yourself)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=base_url) as http:
        yield http


def bearer(token: str) -> dict[bytes, bytes]:
    """Headers carrying ``token`` as sent by a client that does not validate it."""
    return {b"authorization": b"Bearer " + token.encode("utf-8", "surrogateescape")}


def hostile_headers(genuine: str) -> dict[str, list[tuple[bytes, bytes]]]:
    """Named Authorization/Cookie header sets that must all be refused with a 401."""
    tok = genuine.encode()
    return {
        "no header": [],
        "Bearer alone": [(b"authorization", b"Bearer")],
        "Bearer and a space": [(b"authorization", b"Bearer ")],
        "Basic": [(b"authorization", b"Basic dXNlcjpwYXNzd29yZA==")],
        "Basic with the token": [(b"authorization", b"Basic " + tok)],
        "token without a scheme": [(b"authorization", tok)],
        "double spaces": [(b"authorization", b"Bearer  " + tok)],
        "tab separator": [(b"authorization", b"Bearer\t" + tok)],
        "lowercase bearer, garbage": [(b"authorization", b"bearer garbage")],
        "uppercase BEARER, forged": [(b"authorization", b"BEARER " + tok[:-2] + b"xx")],
        "Bearerx": [(b"authorization", b"Bearerx " + tok)],
        "two tokens": [(b"authorization", b"Bearer " + tok + b", Bearer " + tok)],
        "CRLF injection": [(b"authorization", b"Bearer " + tok + b"\r\nX-Injected: 1")],
        "non-latin1 bytes": [(b"authorization", b"Bearer \xff\xfe\x80" + tok)],
        "UTF-8 token": [(b"authorization", "Bearer é".encode())],
        "NUL bytes": [(b"authorization", b"Bearer \x00\x00")],
        "200 kB": [(b"authorization", b"Bearer " + b"a" * 200_000)],
        "200 kB of spaces": [(b"authorization", b"Bearer" + b" " * 200_000)],
        "200 kB scheme": [(b"authorization", b"B" * 200_000 + b" " + tok)],
        "token in a cookie nobody reads": [(b"cookie", b"session=" + tok)],
    }


async def call(
    app: ASGIApp, path: str, headers: list[tuple[bytes, bytes]], state: dict[str, Any] | None = None
) -> tuple[int, dict[str, str], Any]:
    """One HTTP request straight through ASGI, for headers no HTTP client would send."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    if state is not None:
        scope["state"] = state
    sent: list[Message] = []
    received = False

    async def receive() -> Message:
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    async with asyncio.timeout(5):
        await app(scope, receive, send)
    start = sent[0]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    decoded = {k.decode("latin-1"): v.decode("latin-1") for k, v in start["headers"]}
    return start["status"], decoded, json.loads(body) if body else None


class WebSocketDriver:
    """Drives one WebSocket connection of an ASGI app in-process, as a server would.

    Use :meth:`connect` and then send and read messages; every wait is bounded.
    """

    def __init__(self, app: ASGIApp, path: str, headers: list[tuple[bytes, bytes]]) -> None:
        self.scope: dict[str, Any] = {
            "type": "websocket",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": "ws",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [(b"host", b"testserver"), *headers],
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
            "subprotocols": [],
        }
        self._to_app: asyncio.Queue[Message] = asyncio.Queue()
        self._from_app: asyncio.Queue[Message] = asyncio.Queue()
        self._app = app
        self.task: asyncio.Task[None] | None = None
        #: Whether the app sent ``websocket.close``.
        self.closed = False

    async def _receive(self) -> Message:
        return await self._to_app.get()

    async def _send(self, message: Message) -> None:
        if self.closed:
            raise OSError("the server already closed this socket")
        if message["type"] == "websocket.close":
            self.closed = True
        await self._from_app.put(message)

    async def connect(self) -> Message:
        """Start the app, send ``websocket.connect``, return the app's first message."""
        self.task = asyncio.ensure_future(self._app(self.scope, self._receive, self._send))
        await self._to_app.put({"type": "websocket.connect"})
        return await self.next()

    async def next(self, timeout_seconds: float = 3.0) -> Message:
        """The app's next message (``websocket.accept``, ``.send``, ``.close``)."""
        async with asyncio.timeout(timeout_seconds):
            return await self._from_app.get()

    async def send_text(self, text: str) -> None:
        """Send a text frame to the app."""
        await self._to_app.put({"type": "websocket.receive", "text": text})

    async def disconnect(self, code: int = 1000) -> None:
        """The client goes away."""
        await self._to_app.put({"type": "websocket.disconnect", "code": code})

    async def finished(self, timeout_seconds: float = 3.0) -> None:
        """Wait for the app to return (raising what it raised)."""
        assert self.task is not None
        async with asyncio.timeout(timeout_seconds):
            await self.task


@contextlib.contextmanager
def demo_process(tmp_path: Path, redis_url: str | None) -> Iterator[tuple[str, Path]]:
    """Run the demo on a free loopback port; yield its base URL and log; stop it by PID."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    if redis_url is not None:
        env["REDIS_URL"] = redis_url
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "redis_jwt", "demo", "--host", "127.0.0.1", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        # Starting is mostly imports, CPU-bound: on a busy machine it takes tens of
        # seconds. A crashed demo fails at once; the bound only catches a hung one.
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, log.read_text()
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, f"the demo did not start:\n{log.read_text()}"
            time.sleep(0.05)
        yield base, log
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
