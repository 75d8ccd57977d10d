"""The admin page in-process: authorize on every path, CSRF, search, revoke, stats, events."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Mount
from starlette.types import Message

from redis_jwt import RedisJWT
from redis_jwt.admin import create_admin_app
from redis_jwt.testing import RedisServer

from .conftest import SECRET

ADMIN = {"x-admin": "yes"}


def is_admin(request: Request) -> bool:
    return request.headers.get("x-admin") == "yes"


async def is_admin_async(request: Request) -> bool:
    await asyncio.sleep(0)
    return is_admin(request)


def mounted(auth: RedisJWT, *, framework: str = "starlette", check: object = is_admin) -> object:
    admin = create_admin_app(auth, authorize=check)  # type: ignore[arg-type]
    if framework == "fastapi":
        app = FastAPI()
        app.mount("/admin", admin)
        return app
    return Starlette(routes=[Mount("/admin", app=admin)])


@pytest.fixture
async def http(auth: RedisJWT) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=mounted(auth))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def token_of(http: httpx.AsyncClient) -> str:
    """Load the page as an admin: the CSRF cookie is set and the token is in the page."""
    page = await http.get("/admin/", headers=ADMIN)
    assert page.status_code == 200
    match = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
    assert match is not None
    assert http.cookies.get("rjwt_admin_csrf") == match.group(1)
    return match.group(1)


@pytest.mark.parametrize("check", [is_admin, is_admin_async], ids=["sync", "async"])
async def test_every_path_is_refused_without_authorize(auth: RedisJWT, check: object) -> None:
    transport = httpx.ASGITransport(app=mounted(auth, check=check))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        for path in ("/admin/", "/admin/static/admin.css", "/admin/static/nope.js",
                     "/admin/nope", "/admin/events", "/admin/api/stats",
                     "/admin/api/sessions?user=a", "/admin/?user=a"):  # fmt: skip
            response = await http.get(path)
            assert response.status_code == 403, path
            assert "rjwt_admin_csrf" not in response.headers.get("set-cookie", "")
        for path in ("/admin/revoke", "/admin/revoke-all"):
            assert (await http.post(path, data={"user": "a"})).status_code == 403
        assert (await http.get("/admin/", headers={"x-admin": "no"})).status_code == 403
        assert (await http.get("/admin/", headers=ADMIN)).status_code == 200
        assert (await http.get("/admin/nope", headers=ADMIN)).status_code == 404


async def test_static_files_come_from_the_package(http: httpx.AsyncClient) -> None:
    page = await http.get("/admin/", headers=ADMIN)
    for asset in re.findall(r'(?:href|src)="(/admin/static/[^"]+)"', page.text):
        response = await http.get(asset, headers=ADMIN)
        assert response.status_code == 200, asset
    assert "http://" not in page.text
    assert "https://" not in page.text
    svg = await http.get("/admin/static/favicon.svg", headers=ADMIN)
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert "default-src 'self'" in page.headers["content-security-policy"]


async def test_search_lists_sessions_with_device_and_escapes_everything(
    auth: RedisJWT, http: httpx.AsyncClient
) -> None:
    hostile = '<script>alert("x")</script>&'
    token = await auth.sign(hostile, data_session={"ip": "203.0.113.9", "user_agent": "<b>ua"})
    plain = await auth.sign(hostile)
    ids = [(await auth.verify(t)).session_id for t in (token, plain)]
    page = await http.get("/admin/", params={"user": hostile}, headers=ADMIN)
    assert page.status_code == 200
    assert "<script>alert" not in page.text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;" in page.text
    assert "<b>ua" not in page.text
    assert "203.0.113.9" in page.text
    assert "Unknown device" in page.text
    for session_id in ids:
        assert f'data-session-id="{session_id}"' in page.text
    empty = await http.get("/admin/", params={"user": "nobody"}, headers=ADMIN)
    assert "No live sessions" in empty.text
    start = await http.get("/admin/", headers=ADMIN)
    assert "Find a user" in start.text


async def test_revoke_one_and_all_with_the_csrf_token(
    auth: RedisJWT, http: httpx.AsyncClient
) -> None:
    tokens = [await auth.sign("alice") for _ in range(3)]
    ids = [(await auth.verify(t)).session_id for t in tokens]
    csrf = await token_of(http)
    one = await http.post(
        "/admin/revoke",
        data={"user": "alice", "session_id": ids[0], "csrf_token": csrf},
        headers=ADMIN,
    )
    assert one.status_code == 303
    assert one.headers["location"] == "/admin/?user=alice&notice=revoked"
    assert await auth.count("alice") == 2
    confirm = await http.get("/admin/", params={"user": "alice", "confirm": "all"}, headers=ADMIN)
    assert 'id="confirm-revoke-all"' in confirm.text
    everything = await http.post(
        "/admin/revoke-all", data={"user": "alice", "csrf_token": csrf}, headers=ADMIN
    )
    assert everything.status_code == 303
    assert "revoked_all=2" in everything.headers["location"]
    assert await auth.count("alice") == 0
    done = await http.get(everything.headers["location"], headers=ADMIN)
    assert "Ended 2 sessions" in done.text
    gone = await http.post(
        "/admin/revoke",
        data={"user": "alice", "session_id": ids[1], "csrf_token": csrf},
        headers=ADMIN,
    )
    assert gone.headers["location"].endswith("notice=gone")


async def test_the_header_can_carry_the_token(auth: RedisJWT, http: httpx.AsyncClient) -> None:
    await auth.sign("bob")
    csrf = await token_of(http)
    response = await http.post(
        "/admin/revoke-all", data={"user": "bob"}, headers={**ADMIN, "X-CSRF-Token": csrf}
    )
    assert response.status_code == 303
    assert await auth.count("bob") == 0


async def test_unsafe_requests_without_a_matching_token_are_refused(
    auth: RedisJWT, http: httpx.AsyncClient
) -> None:
    await auth.sign("carol")
    csrf = await token_of(http)
    attempts = [
        ({"user": "carol"}, {}),  # no token at all
        ({"user": "carol", "csrf_token": "forged"}, {}),
        ({"user": "carol", "csrf_token": csrf + "x"}, {}),
        ({"user": "carol"}, {"X-CSRF-Token": "forged"}),
    ]
    for data, headers in attempts:
        response = await http.post("/admin/revoke-all", data=data, headers={**ADMIN, **headers})
        assert response.status_code == 403, (data, headers)
    http.cookies.clear()  # the field alone, without the cookie: another site's form
    alone = await http.post(
        "/admin/revoke-all", data={"user": "carol", "csrf_token": csrf}, headers=ADMIN
    )
    assert alone.status_code == 403
    assert await auth.count("carol") == 1
    # Another app instance has another token.
    other = httpx.ASGITransport(app=mounted(auth))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=other, base_url="http://test") as second:
        await token_of(second)
        refused = await second.post(
            "/admin/revoke-all", data={"user": "carol", "csrf_token": csrf}, headers=ADMIN
        )
        assert refused.status_code == 403


async def test_bad_input_is_400_never_500(http: httpx.AsyncClient) -> None:
    csrf = await token_of(http)
    long_id = "x" * 600
    assert (await http.get("/admin/", params={"user": long_id}, headers=ADMIN)).status_code == 400
    api = await http.get("/admin/api/sessions", params={"user": ""}, headers=ADMIN)
    assert api.status_code == 400
    assert api.json()["detail"]
    for body, content_type in (
        (json.dumps({"user": "a", "csrf_token": csrf}), "application/json"),
        (f"user=%FF&csrf_token={csrf}", "application/x-www-form-urlencoded"),
        ("x" * 20_000, "application/x-www-form-urlencoded"),
    ):
        response = await http.post(
            "/admin/revoke", content=body, headers={**ADMIN, "content-type": content_type}
        )
        assert response.status_code == 400, body[:40]
    for data in ({"csrf_token": csrf}, {"user": long_id, "csrf_token": csrf}):
        for path in ("/admin/revoke", "/admin/revoke-all"):
            assert (await http.post(path, data=data, headers=ADMIN)).status_code == 400
    odd = await http.post(
        "/admin/revoke",
        data={"user": "a", "session_id": "<not an id>", "csrf_token": csrf},
        headers=ADMIN,
    )
    assert odd.status_code == 303


async def test_stats_are_the_cli_counts(auth: RedisJWT, http: httpx.AsyncClient) -> None:
    for user, n in (("u1", 2), ("u2", 3)):
        for _ in range(n):
            await auth.sign(user)
    stats = await http.get("/admin/api/stats", headers=ADMIN)
    assert stats.status_code == 200
    document = stats.json()
    assert (document["sessions"], document["users"], document["complete"]) == (5, 2, True)
    page = await http.get("/admin/", headers=ADMIN)
    assert '<div class="stat-value" data-stat="0">5</div>' in page.text
    listing = await http.get("/admin/api/sessions", params={"user": "u2"}, headers=ADMIN)
    assert len(listing.json()) == 3


async def test_fastapi_mount_builds_links_under_its_path(auth: RedisJWT) -> None:
    transport = httpx.ASGITransport(app=mounted(auth, framework="fastapi"))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        await auth.sign("dora")
        page = await http.get("/admin/", params={"user": "dora"}, headers=ADMIN)
        assert page.status_code == 200
        assert 'action="/admin/revoke"' in page.text
        assert 'href="/admin/static/admin.css"' in page.text
        assert (await http.get("/admin/static/admin.css")).status_code == 403


async def _first_events(app: object, wanted: int, act: object) -> list[dict[str, object]]:
    """Drive the SSE route as a raw ASGI call until ``wanted`` data lines came."""
    received: asyncio.Queue[Message] = asyncio.Queue()
    disconnect = asyncio.Event()

    async def receive() -> Message:
        await disconnect.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        await received.put(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": "/admin/events", "raw_path": b"/admin/events",
        "root_path": "", "query_string": b"", "headers": [(b"x-admin", b"yes")],
        "client": ("127.0.0.1", 1), "server": ("test", 80),
    }  # fmt: skip
    task = asyncio.ensure_future(app(scope, receive, send))  # type: ignore[operator]
    events: list[dict[str, object]] = []
    try:
        start = await asyncio.wait_for(received.get(), 10)
        assert start["status"] == 200
        await act()  # type: ignore[operator]
        buffer = ""
        while len(events) < wanted:
            message = await asyncio.wait_for(received.get(), 10)
            buffer += message.get("body", b"").decode()
            while "\n\n" in buffer:
                block, buffer = buffer.split("\n\n", 1)
                if block.startswith("data: "):
                    events.append(json.loads(block[6:]))
    finally:
        disconnect.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return events


async def test_live_events_stream(redis_url: str) -> None:
    async with RedisJWT(secret=SECRET, redis_url=redis_url, listen=True) as auth:
        app = mounted(auth)

        async def act() -> None:
            await auth.destroy(await auth.sign("eve"))

        events = await _first_events(app, 2, act)
    assert [e["kind"] for e in events] == ["created", "destroyed"]
    assert {e["user_id"] for e in events} == {"eve"}


async def test_redis_down_is_a_503_page(own_server: RedisServer) -> None:
    async with RedisJWT(secret=SECRET, redis_url=own_server.url) as auth:
        transport = httpx.ASGITransport(app=mounted(auth))  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            csrf = await token_of(http)
            own_server.kill()
            page = await http.get("/admin/", params={"user": "x"}, headers=ADMIN)
            assert page.status_code == 503
            assert page.headers["retry-after"] == "1"
            assert "Redis is unavailable" in page.text
            home = await http.get("/admin/", headers=ADMIN)
            assert home.status_code == 200  # the stats say Redis is away; the page still loads
            assert "Redis is unavailable" in home.text
            post = await http.post(
                "/admin/revoke-all", data={"user": "x", "csrf_token": csrf}, headers=ADMIN
            )
            assert post.status_code == 503
