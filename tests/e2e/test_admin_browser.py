"""The admin page in headless Chromium: refused, then find a user, revoke one, revoke all.

Screenshots go to ``/tmp/admin-*.png`` (desktop and a 400 px wide phone).
Run with ``nox -s e2e`` (or ``pytest tests/e2e -m e2e``).
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Mount

from redis_jwt import RedisJWT
from redis_jwt.admin import create_admin_app
from redis_jwt.testing import RedisServer, free_port, wait_until

from .test_demo_browser import browser, click, wait  # noqa: F401 (fixture)

pytestmark = pytest.mark.e2e

ADMIN_COOKIE = secrets.token_urlsafe(16)
# The brief asks for /tmp/admin-*.png, for people to look at after a run.
SHOTS = Path("/tmp")  # noqa: S108
DEVICES = (
    ("203.0.113.7", "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 "
     "(KHTML, like Gecko) Version/17.5 Safari/605.1.15"),
    ("198.51.100.23", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
     "(KHTML, like Gecko) Chrome/126.0 Safari/537.36"),
    ("192.0.2.44", "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 "
     "(KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36"),
)  # fmt: skip


def _is_admin(request: Request) -> bool:
    return request.cookies.get("admin") == ADMIN_COOKIE


@pytest.fixture
def admin_site(redis_jwt_server: RedisServer) -> Iterator[tuple[str, str]]:
    """A uvicorn (in a thread) serving the admin page at /admin; yields (base URL, Redis URL)."""
    redis_jwt_server.command("FLUSHALL")
    url = redis_jwt_server.url
    auth = RedisJWT(secret=secrets.token_urlsafe(48), redis_url=url, listen=True)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with auth:
            yield

    app = Starlette(
        routes=[Mount("/admin", app=create_admin_app(auth, authorize=_is_admin))],
        lifespan=lifespan,
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                       timeout_graceful_shutdown=1)
    )  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: server.started or None, timeout_seconds=20, what="uvicorn to start")
        yield base, url
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def _sign(url: str, user: str, devices: int, plain: int = 0) -> list[str]:
    async def go() -> list[str]:
        async with RedisJWT(secret=secrets.token_urlsafe(48), redis_url=url) as auth:
            tokens = [
                await auth.sign(user, data_session={"ip": ip, "user_agent": agent})
                for ip, agent in DEVICES[:devices]
            ]
            tokens += [await auth.sign(user) for _ in range(plain)]
            return [(await auth.verify(t)).session_id for t in tokens]

    return asyncio.run(go())


def rows(driver: WebDriver) -> list[str]:
    return [
        str(row.get_attribute("data-session-id"))
        for row in driver.find_elements(By.CSS_SELECTOR, "#sessions tr")
    ]


def shot(driver: WebDriver, name: str) -> None:
    path = SHOTS / f"admin-{name}.png"
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 0


def test_admin_page_find_revoke_and_revoke_all(
    browser: WebDriver,  # noqa: F811 (fixture)
    admin_site: tuple[str, str],
) -> None:
    base, url = admin_site
    browser.set_window_size(1280, 900)
    browser.get(f"{base}/admin/")
    assert "Forbidden" in browser.page_source
    assert httpx.get(f"{base}/admin/static/admin.css").status_code == 403

    browser.add_cookie({"name": "admin", "value": ADMIN_COOKIE, "path": "/"})
    _sign(url, "carol@example.com", 1)
    browser.get(f"{base}/admin/")
    wait(browser, "the live stream", lambda d: d.find_element(By.ID, "live").get_attribute(
        "data-state") == "on")  # fmt: skip
    ids = _sign(url, "alice@example.com", 3, plain=1)
    wait(browser, "live created events", lambda d: len(
        d.find_elements(By.CSS_SELECTOR, "#events li .badge.created")) >= 4)  # fmt: skip
    wait(browser, "stats refreshed", lambda d: d.find_element(
        By.CSS_SELECTOR, '[data-stat="0"]').text == "5")  # fmt: skip
    shot(browser, "1-home")

    field = browser.find_element(By.ID, "user")
    field.send_keys("alice@example.com")
    browser.find_element(By.CSS_SELECTOR, "form.search button").click()
    wait(browser, "alice's sessions", lambda d: set(rows(d)) == set(ids))
    text = browser.find_element(By.ID, "sessions").text
    assert "Safari on macOS" in text
    assert "Chrome on Android" in text
    assert "Unknown device" in text
    shot(browser, "2-user")

    click(browser, "revoke one", f'#sessions tr[data-session-id="{ids[0]}"] button')
    wait(browser, "one session fewer", lambda d: set(rows(d)) == set(ids[1:]))
    assert "Session revoked" in browser.find_element(By.CSS_SELECTOR, ".flash").text

    click(browser, "sign out everywhere", "#revoke-all")
    wait(browser, "the confirmation", lambda d: d.find_element(By.ID, "confirm-revoke-all"))
    shot(browser, "3-confirm")
    click(browser, "confirm", "#confirm-revoke-all")
    wait(browser, "no sessions left", lambda d: "No live sessions" in d.page_source)
    assert "Ended 3 sessions" in browser.find_element(By.CSS_SELECTOR, ".flash").text
    shot(browser, "4-empty")

    hostile = '<img src=x onerror="alert(1)">'
    _sign(url, hostile, 1)
    browser.get(f"{base}/admin/?user=" + httpx.QueryParams({"u": hostile})["u"])
    browser.get(str(httpx.URL(f"{base}/admin/", params={"user": hostile})))
    wait(browser, "the hostile user's session", lambda d: len(rows(d)) == 1)
    assert hostile in browser.find_element(By.CSS_SELECTOR, ".user").text
    assert not browser.find_elements(By.CSS_SELECTOR, "img[src=x]")

    browser.set_window_size(400, 860)
    browser.get(str(httpx.URL(f"{base}/admin/", params={"user": "alice@example.com"})))
    _sign(url, "alice@example.com", 3)
    browser.refresh()
    wait(browser, "three sessions on a phone", lambda d: len(rows(d)) == 3)
    width = browser.execute_script("return document.documentElement.scrollWidth")
    assert width <= 400, f"the page scrolls sideways at 400 px ({width} px wide)"
    shot(browser, "5-phone")
