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


async def test_the_demo_refuses_blank_and_broken_names(redis_url: str) -> None:
    app = create_app(redis_url, secret=SECRET)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://demo") as http,
    ):
        for blank in ("   ", "\t \u00a0", ""):
            refused = await http.post("/api/login", json={"user": blank})
            assert refused.status_code == 422, blank
            messages = [error["msg"] for error in refused.json()["detail"]]
            assert any("name" in m or "at least 1" in m for m in messages), messages
        spaces = await http.post("/api/login", json={"user": "   "})
        assert "spaces alone are not a name" in spaces.json()["detail"][0]["msg"]
        surrogate = await http.post(
            "/api/login",
            content=b'{"user": "\\ud800"}',
            headers={"content-type": "application/json"},
        )
        assert surrogate.status_code == 422
        assert "valid string" in surrogate.json()["detail"][0]["msg"]
        padded = await http.post("/api/login", json={"user": "  alice  "})
        assert padded.json()["user"] == "alice"


async def test_the_demo_has_a_favicon(redis_url: str) -> None:
    app = create_app(redis_url, secret=SECRET)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://demo"
    ) as http:
        page = (await http.get("/")).text
        assert '<link rel="icon" href="/favicon.svg" type="image/svg+xml">' in page
        for path in ("/favicon.svg", "/favicon.ico"):
            icon = await http.get(path)
            assert icon.status_code == 200
            assert icon.headers["content-type"] == "image/svg+xml"
            assert icon.content.startswith(b"<svg")


async def test_the_demo_shows_extended_and_expired_events(redis_url: str) -> None:
    # A short ttl, so that the session expires during the test; the listener reports it.
    app = create_app(redis_url, secret=SECRET, ttl="2 seconds")
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://demo") as http,
    ):
        login = (await http.post("/api/login", json={"user": "carol"})).json()
        headers = {"authorization": f"Bearer {login['token']}"}
        stream = asyncio.create_task(http.get("/api/events", headers=headers))
        for _ in range(100):  # bounded: until the stream has subscribed
            if app.state.auth.events.has_listeners:
                break
            await asyncio.sleep(0.01)
        extended = await http.post("/api/extend", headers=headers)
        assert extended.status_code == 200
        assert 0 < extended.json()["ttl"] <= 2
        # Nothing else touches the session: it expires, and the stream ends with it.
        async with asyncio.timeout(15):
            response = await stream
        kinds = [(e["kind"], e["session_id"]) for e in _events(response.text)]
        assert kinds == [("extended", login["session_id"]), ("expired", login["session_id"])]
        assert (await http.get("/api/me", headers=headers)).status_code == 401


async def test_log_out_everywhere_ends_every_session_and_the_stream(redis_url: str) -> None:
    app = create_app(redis_url, secret=SECRET)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://demo") as http,
    ):
        logins = [(await http.post("/api/login", json={"user": "dave"})).json() for _ in range(3)]
        headers = {"authorization": f"Bearer {logins[0]['token']}"}
        stream = asyncio.create_task(http.get("/api/events", headers=headers))
        for _ in range(100):  # bounded: until the stream has subscribed
            if app.state.auth.events.has_listeners:
                break
            await asyncio.sleep(0.01)
        assert (await http.post("/api/logout-all", headers=headers)).json() == {"ended": 3}
        async with asyncio.timeout(5):
            response = await stream
        events = _events(response.text)
        assert {e["session_id"] for e in events} == {login["session_id"] for login in logins}
        assert {(e["kind"], e["reason"]) for e in events} == {("destroyed", "destroy_all")}
        # The page's own session comes last: the stream ends with it.
        assert events[-1]["session_id"] == logins[0]["session_id"]
