"""The demo app in-process: every route, and its event stream ending with its session."""

from __future__ import annotations

import asyncio
import json

import httpx

from redis_jwt._demo.app import create_app
from redis_jwt.testing import RedisServer

from .conftest import SECRET


def _events(body: str) -> list[dict[str, str]]:
    return [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: ")]


async def test_the_demo_routes(redis_url: str) -> None:
    app = create_app(redis_url, secret=SECRET)
    transport = httpx.ASGITransport(app=app, client=("198.51.100.4", 4242))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://demo") as http,
    ):
        assert "redis-jwt demo" in (await http.get("/")).text
        assert (await http.get("/health")).json() == {"ok": True}
        one = (
            await http.post("/api/login", json={"user": "alice"}, headers={"user-agent": "A/1"})
        ).json()
        two = (
            await http.post("/api/login", json={"user": "alice"}, headers={"user-agent": "B/2"})
        ).json()
        a = {"authorization": f"Bearer {one['token']}"}
        b = {"authorization": f"Bearer {two['token']}"}
        me = (await http.get("/api/me", headers=a)).json()
        assert me["user"] == "alice"
        assert me["session_id"] == one["session_id"]
        rows = (await http.get("/api/sessions", headers=a)).json()
        assert [(r["user_agent"], r["ip"], r["current"]) for r in rows] == [
            ("B/2", "198.51.100.4", False),
            ("A/1", "198.51.100.4", True),
        ]

        # B's event stream runs until B's session ends; ASGITransport returns it whole then.
        stream = asyncio.create_task(http.get("/api/events", headers=b))
        for _ in range(100):  # bounded: until the stream has subscribed
            if app.state.auth.events.has_listeners:
                break
            await asyncio.sleep(0.01)
        third = (await http.post("/api/login", json={"user": "alice"})).json()
        await http.post("/api/login", json={"user": "bob"})  # another user's: filtered out
        revoked = await http.delete(f"/api/sessions/{two['session_id']}", headers=a)
        assert revoked.json() == {"revoked": True}
        async with asyncio.timeout(5):
            response = await stream
        assert response.headers["content-type"].startswith("text/event-stream")
        assert [(e["kind"], e["session_id"]) for e in _events(response.text)] == [
            ("created", third["session_id"]),
            ("destroyed", two["session_id"]),
        ]
        assert (await http.get("/api/me", headers=b)).status_code == 401
        assert (
            await http.delete(f"/api/sessions/{two['session_id']}", headers=a)
        ).status_code == 404
        assert (await http.post("/api/logout", headers=a)).json() == {"ended": True}
        c = {"authorization": f"Bearer {third['token']}"}
        assert (await http.post("/api/logout-all", headers=c)).json() == {"ended": 1}
        assert (await http.post("/api/login", json={"user": "x" * 65})).status_code == 422


async def test_the_demo_health_is_503_when_redis_is_down(own_server: RedisServer) -> None:
    app = create_app(own_server.url)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://demo") as http,
    ):
        own_server.kill()
        health = await http.get("/health")
        assert health.status_code == 503
        assert health.headers["retry-after"] == "1"
        assert (await http.post("/api/login", json={"user": "alice"})).status_code == 503
