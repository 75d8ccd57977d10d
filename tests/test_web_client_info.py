"""client_info(request): the device a request comes from, for sign(..., client=...)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from redis_jwt import ClientInfo
from redis_jwt import fastapi as rjwt_fastapi
from redis_jwt.starlette import client_info

from .web_helpers import WebSocketDriver, call, client


async def device(request: Request) -> Response:
    return JSONResponse(client_info(request).model_dump())


async def socket(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json(client_info(websocket).model_dump())
    await websocket.close()


APP = Starlette(routes=[Route("/device", device), WebSocketRoute("/ws", socket)])


async def test_the_address_and_user_agent_of_a_request() -> None:
    async with client(APP) as http:
        seen = await http.get("/device", headers={"user-agent": "Mozilla/5.0 (X11) Firefox/140"})
    assert seen.json() == {"ip": "127.0.0.1", "user_agent": "Mozilla/5.0 (X11) Firefox/140"}


async def test_long_or_missing_values_are_trimmed_or_none() -> None:
    status, _, body = await call(APP, "/device", [(b"user-agent", b"A" * 100_000)])
    assert status == 200
    assert body["user_agent"] == "A" * 512
    _, _, bare = await call(APP, "/device", [])
    assert bare == {"ip": "127.0.0.1", "user_agent": None}


async def test_no_client_address_and_a_websocket() -> None:
    driver = WebSocketDriver(APP, "/ws", [(b"user-agent", b"probe/1")])
    driver.scope["client"] = None  # a server that does not know the peer (unix socket)
    assert (await driver.connect())["type"] == "websocket.accept"
    sent = await driver.next()
    assert ClientInfo.model_validate_json(sent["text"]) == ClientInfo(user_agent="probe/1")


def test_the_fastapi_module_offers_the_same_function() -> None:
    assert rjwt_fastapi.client_info is client_info
