"""The demo app in-process: every route, cookies with CSRF, refresh, theft, and its event stream."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, MutableMapping
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie
from typing import cast

import httpx
import pytest
from fastapi import FastAPI

from redis_jwt._demo.app import create_app
from redis_jwt.errors import ConfigurationError
from redis_jwt.testing import RedisServer, free_port

from .conftest import SECRET

CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


def _events(body: str) -> list[dict[str, str]]:
    return [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: ")]


def _set_cookies(response: httpx.Response) -> dict[str, str]:
    """Each Set-Cookie header of ``response``, by cookie name."""
    found: dict[str, str] = {}
    for header in response.headers.get_list("set-cookie"):
        found[next(iter(SimpleCookie(header)))] = header.lower()
    return found


@contextlib.asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[None]:
    async with app.router.lifespan_context(app):
        yield


def device(app: FastAPI, agent: str = CHROME, ip: str = "198.51.100.4") -> httpx.AsyncClient:
    """A browser: its own cookie jar, user agent and address."""
    transport = httpx.ASGITransport(app=app, client=(ip, 4242))
    return httpx.AsyncClient(
        transport=transport, base_url="http://demo", headers={"user-agent": agent}
    )


def csrf(http: httpx.AsyncClient) -> dict[str, str]:
    """The header the page sends on unsafe calls: the CSRF cookie's value."""
    return {"x-csrf-token": http.cookies["csrf_token"]}


async def listening(app: FastAPI) -> None:
    for _ in range(100):  # bounded: until the stream has subscribed
        if app.state.auth.events.has_listeners:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the event stream never subscribed")


async def open_stream(
    app: FastAPI, http: httpx.AsyncClient
) -> tuple[asyncio.Task[None], bytearray]:
    """GET /api/events as ``http``'s browser would, straight over ASGI; return once it listens.

    The server sends its first bytes once subscribed, so from then on nothing is missed.
    """
    body = bytearray()
    subscribed = asyncio.Event()
    done = asyncio.Event()

    requested = False

    async def receive() -> dict[str, object]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()  # the client never goes away by itself
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, object]) -> None:
        if message["type"] == "http.response.body":
            body.extend(cast(bytes, message.get("body", b"")))
            subscribed.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/api/events",
        "raw_path": b"/api/events",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"demo"),
            (b"cookie", f"session={http.cookies['session']}".encode()),
        ],
        "client": ("198.51.100.4", 4242),
        "server": ("demo", 80),
    }
    task = asyncio.create_task(app(scope, receive, send))
    async with asyncio.timeout(5):
        await subscribed.wait()
    task.add_done_callback(lambda _task: done.set())
    return task, body


async def test_the_demo_routes_with_bearer_tokens(redis_url: str) -> None:
    app = create_app(redis_url, secret=SECRET)
    async with running(app), device(app, "A/1") as http:
        assert "redis-jwt demo" in (await http.get("/")).text
        assert (await http.get("/health")).json() == {"ok": True}
        one = (await http.post("/api/login", json={"user": "alice", "transport": "bearer"})).json()
        login = await http.post(
            "/api/login",
            json={"user": "alice", "transport": "bearer"},
            headers={"user-agent": "B/2"},
        )
        two = login.json()
        # A script's login: the pair in the body, and no cookie at all.
        assert login.headers.get_list("set-cookie") == []
        assert {"access_token", "refresh_token", "access_expires_at", "session_id"} <= set(two)
        a = {"authorization": f"Bearer {one['access_token']}"}
        b = {"authorization": f"Bearer {two['access_token']}"}
        me = (await http.get("/api/me", headers=a)).json()
        assert (me["user"], me["session_id"]) == ("alice", one["session_id"])
        assert me["access_expires_at"] == one["access_expires_at"]
        rows = (await http.get("/api/sessions", headers=a)).json()
        assert [(r["user_agent"], r["ip"], r["current"]) for r in rows] == [
            ("B/2", "198.51.100.4", False),
            ("A/1", "198.51.100.4", True),
        ]
        for row in rows:  # activity tracking is on: signing in is the first activity
            assert row["issued_at"] <= row["last_seen_at"] < row["expires_at"]

        # B's event stream runs until B's session ends; ASGITransport returns it whole then.
        stream = asyncio.create_task(http.get("/api/events", headers=b))
        await listening(app)
        third = (
            await http.post("/api/login", json={"user": "alice", "transport": "bearer"})
        ).json()
        await http.post("/api/login", json={"user": "bob"})  # another user's: filtered out
        revoked = await http.delete(f"/api/sessions/{two['session_id']}", headers=a)
        assert revoked.status_code == 204
        async with asyncio.timeout(5):
            response = await stream
        assert response.headers["content-type"].startswith("text/event-stream")
        assert [(e["kind"], e["session_id"]) for e in _events(response.text)] == [
            ("created", third["session_id"]),
            ("destroyed", two["session_id"]),
        ]
        assert (await http.get("/api/me", headers=b)).status_code == 401
        gone = await http.delete(f"/api/sessions/{two['session_id']}", headers=a)
        assert gone.status_code == 404
        assert (await http.post("/api/logout", headers=a)).json() == {"ended": True}
        c = {"authorization": f"Bearer {third['access_token']}"}
        assert (await http.post("/api/logout-all", headers=c)).json() == {"ended": 1}
        assert (await http.post("/api/login", json={"user": "x" * 65})).status_code == 422
        refused = await http.post("/api/login", json={"user": "al", "transport": "pigeon"})
        assert refused.status_code == 422


async def test_login_sets_httponly_cookies_and_csrf_guards_unsafe_calls(redis_url: str) -> None:
    app = create_app(redis_url, secret=SECRET)
    async with running(app), device(app) as http:
        login = await http.post("/api/login", json={"user": "erin"})
        assert login.status_code == 200
        body = login.json()
        # The page never holds a token: they ride in cookies only.
        assert "access_token" not in body
        assert "refresh_token" not in body
        cookies = _set_cookies(login)
        assert set(cookies) == {"session", "csrf_token", "refresh_token"}
        assert "httponly" in cookies["session"]
        assert "httponly" in cookies["refresh_token"]
        assert "path=/api/refresh" in cookies["refresh_token"]
        assert "httponly" not in cookies["csrf_token"]  # the page reads it
        assert "samesite=lax" in cookies["session"]

        me = (await http.get("/api/me")).json()
        assert (me["user"], me["session_id"]) == ("erin", body["session_id"])
        # An unsafe call authenticated by the cookie needs the header: without it, 403.
        forged = await http.post("/api/extend")
        assert forged.status_code == 403
        assert forged.json() == {"detail": "CSRF check failed"}
        wrong = await http.post("/api/extend", headers={"x-csrf-token": "x" * 43})
        assert wrong.status_code == 403
        assert (await http.post("/api/logout-others")).status_code == 403
        assert (await http.post("/api/refresh")).status_code == 403
        assert (await http.post("/api/refresh/theft")).status_code == 403
        assert (await http.post("/api/extend", headers=csrf(http))).status_code == 200
        # The refused calls changed nothing: the session is still the one listed.
        rows = (await http.get("/api/sessions")).json()
        assert [r["session_id"] for r in rows] == [body["session_id"]]

        out = await http.post("/api/logout", headers=csrf(http))
        assert out.json() == {"ended": True}
        assert "session" not in http.cookies
        assert (await http.get("/api/me")).status_code == 401


async def test_refresh_by_cookie_rotates_the_access_token(redis_url: str) -> None:
    app = create_app(redis_url, secret=SECRET, access_ttl="1 minute")
    async with running(app), device(app) as http:
        body = (await http.post("/api/login", json={"user": "fay"})).json()
        issued = datetime.fromisoformat(body["access_expires_at"])
        assert issued <= datetime.now(UTC) + timedelta(seconds=61)
        first, first_csrf = http.cookies["session"], http.cookies["csrf_token"]
        first_refresh = http.cookies.get("refresh_token", path="/api/refresh")
        # The access token's exp is whole seconds: in the same second it would be the same token.
        for _ in range(100):  # bounded: until the next second
            if datetime.now(UTC) >= issued - timedelta(seconds=59):
                break
            await asyncio.sleep(0.05)
        refreshed = await http.post("/api/refresh", headers=csrf(http))
        assert refreshed.status_code == 200
        pair = refreshed.json()
        # From the cookie, the new tokens go back in cookies, never in the body.
        assert pair["access_token"] is None
        assert pair["refresh_token"] is None
        assert set(_set_cookies(refreshed)) == {"session", "csrf_token", "refresh_token"}
        assert http.cookies["session"] != first
        assert http.cookies["csrf_token"] != first_csrf
        assert http.cookies.get("refresh_token", path="/api/refresh") != first_refresh
        me = (await http.get("/api/me")).json()
        assert me["session_id"] == body["session_id"]  # one session through every refresh
        expires = datetime.fromisoformat(me["access_expires_at"])
        assert expires == datetime.fromisoformat(pair["access_expires_at"])
        # The CSRF value follows the token: the old one is refused now.
        stale = await http.post("/api/extend", headers={"x-csrf-token": first_csrf})
        assert stale.status_code == 403
        assert (await http.post("/api/extend", headers=csrf(http))).status_code == 200


async def test_a_replayed_refresh_token_ends_the_session_in_every_tab(redis_url: str) -> None:
    app = create_app(redis_url, secret=SECRET, refresh_grace="1 second")
    async with running(app), device(app) as http:
        body = (await http.post("/api/login", json={"user": "gus"})).json()
        # Two tabs of one browser: one cookie jar, one session, two event streams.
        tabs = [await open_stream(app, http) for _ in range(2)]
        before = http.cookies.get("refresh_token", path="/api/refresh")
        theft = await http.post("/api/refresh/theft", headers=csrf(http))
        assert theft.status_code == 200
        assert theft.json()["replay_in_seconds"] == 2.0
        # This browser refreshed first: its cookies hold the successor, the copy is spent.
        assert http.cookies.get("refresh_token", path="/api/refresh") != before
        async with asyncio.timeout(15):
            await asyncio.gather(*(task for task, _chunks in tabs))
        for _task, chunks in tabs:
            events = [(e["kind"], e["session_id"], e["reason"]) for e in _events(chunks.decode())]
            assert events == [("destroyed", body["session_id"], "refresh_reuse")]
        assert (await http.get("/api/me")).json() == {"detail": "Session ended"}
        refused = await http.post("/api/refresh", headers=csrf(http))
        assert refused.status_code == 401


async def test_the_theft_needs_a_refresh_cookie(redis_url: str) -> None:
    app = create_app(redis_url, secret=SECRET)
    async with running(app), device(app) as http:
        pair = (await http.post("/api/login", json={"user": "hal", "transport": "bearer"})).json()
        headers = {"authorization": f"Bearer {pair['access_token']}"}
        refused = await http.post("/api/refresh/theft", headers=headers)
        assert refused.status_code == 400
        assert "refresh cookie" in refused.json()["detail"]
        assert (await http.get("/api/me", headers=headers)).status_code == 200


async def test_the_device_list_and_sign_out_other_devices(redis_url: str) -> None:
    app = create_app(redis_url, secret=SECRET)
    async with (
        running(app),
        device(app, CHROME, "203.0.113.7") as laptop,
        device(app, "Phone/2.0", "198.51.100.9") as phone,
        device(app, "Tablet/3.0", "192.0.2.1") as tablet,
    ):
        ids = {}
        for name, http in (("tablet", tablet), ("phone", phone), ("laptop", laptop)):
            ids[name] = (await http.post("/api/login", json={"user": "ivy"})).json()["session_id"]
        rows = (await laptop.get("/api/sessions")).json()
        assert [(r["session_id"], r["ip"], r["user_agent"], r["current"]) for r in rows] == [
            (ids["laptop"], "203.0.113.7", CHROME, True),
            (ids["phone"], "198.51.100.9", "Phone/2.0", False),
            (ids["tablet"], "192.0.2.1", "Tablet/3.0", False),
        ]
        assert all(r["last_seen_at"] for r in rows)
        ended = await laptop.post("/api/logout-others", headers=csrf(laptop))
        assert ended.json() == {"ended": 2}
        assert (await phone.get("/api/me")).json() == {"detail": "Session ended"}
        assert (await tablet.get("/api/me")).status_code == 401
        rows = (await laptop.get("/api/sessions")).json()
        assert [(r["session_id"], r["current"]) for r in rows] == [(ids["laptop"], True)]


async def test_the_demo_health_is_503_when_redis_is_down(own_server: RedisServer) -> None:
    app = create_app(own_server.url)
    async with running(app), device(app) as http:
        own_server.kill()
        health = await http.get("/health")
        assert health.status_code == 503
        assert health.headers["retry-after"] == "1"
        assert (await http.post("/api/login", json={"user": "alice"})).status_code == 503


async def test_the_demo_refuses_blank_and_broken_names(redis_url: str) -> None:
    app = create_app(redis_url, secret=SECRET)
    async with running(app), device(app) as http:
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
    async with device(app) as http:
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
    async with running(app), device(app) as http:
        login = (await http.post("/api/login", json={"user": "carol"})).json()
        stream = asyncio.create_task(http.get("/api/events"))
        await listening(app)
        extended = await http.post("/api/extend", headers=csrf(http))
        assert extended.status_code == 200
        assert 0 < extended.json()["ttl"] <= 2
        # Nothing else touches the session: it expires, and the stream ends with it.
        async with asyncio.timeout(15):
            response = await stream
        kinds = [(e["kind"], e["session_id"]) for e in _events(response.text)]
        assert kinds == [("extended", login["session_id"]), ("expired", login["session_id"])]
        assert (await http.get("/api/me")).status_code == 401


async def test_log_out_everywhere_ends_every_session_and_the_stream(redis_url: str) -> None:
    app = create_app(redis_url, secret=SECRET)
    async with running(app), device(app) as http:
        bearer = {"user": "dave", "transport": "bearer"}
        # The page's session is the oldest: however Redis orders the burst, all of it is shown.
        mine = (await http.post("/api/login", json={"user": "dave"})).json()
        others = [(await http.post("/api/login", json=bearer)).json() for _ in range(2)]
        stream = asyncio.create_task(http.get("/api/events"))
        await listening(app)
        out = await http.post("/api/logout-all", headers=csrf(http))
        assert out.json() == {"ended": 3}
        # Logging out clears every cookie of the pair.
        assert not {"session", "csrf_token", "refresh_token"} & set(http.cookies.keys())
        async with asyncio.timeout(5):
            response = await stream
        events = _events(response.text)
        logins = [*others, mine]
        assert {e["session_id"] for e in events} == {login["session_id"] for login in logins}
        assert {(e["kind"], e["reason"]) for e in events} == {("destroyed", "destroy_all")}
        assert len(events) == 3


async def test_a_cross_site_form_cannot_log_a_browser_in(redis_url: str) -> None:
    # Forms and no-cors fetches can only send these types: login reads JSON alone.
    app = create_app(redis_url, secret=SECRET)
    async with running(app), device(app) as http:
        for kind in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
            forged = await http.post(
                "/api/login", content=b'{"user": "mallory"}', headers={"content-type": kind}
            )
            assert forged.status_code == 422, kind
            assert forged.headers.get_list("set-cookie") == []


def test_create_app_refuses_a_bad_lifetime(redis_url: str) -> None:
    for options in ({"access_ttl": "banana"}, {"refresh_grace": "soon"}):
        with pytest.raises(ConfigurationError):
            create_app(redis_url, secret=SECRET, **options)


@pytest.mark.parametrize("variable", ["REDIS_JWT_ACCESS_TTL", "REDIS_JWT_REFRESH_GRACE"])
def test_the_demo_command_says_a_bad_variable_in_one_line(redis_url: str, variable: str) -> None:
    env = {**os.environ, "REDIS_URL": redis_url, variable: "banana"}
    done = subprocess.run(
        [sys.executable, "-m", "redis_jwt", "demo", "--port", str(free_port())],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "banana" in lines[0]
    assert variable in lines[0]
    assert "open http" not in done.stdout  # nothing claimed to serve
