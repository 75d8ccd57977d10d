"""The demo page in headless Chromium: devices, refresh, reuse detection, CSRF refusal.

Run with ``nox -s e2e`` (or ``pytest tests/e2e -m e2e``). It needs Debian's
``chromium`` and ``chromium-driver`` packages; Selenium is pointed at the
system chromedriver and never downloads anything. Without them the test
fails and says what to install: a skipped browser test must not pass for one.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from ..web_helpers import demo_process

pytestmark = pytest.mark.e2e

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1200,900",
)
WAIT_SECONDS = 15


def _find(*candidates: str) -> str | None:
    for candidate in candidates:
        found = shutil.which(candidate)
        if found:
            return found
    return None


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WebDriver]:
    """Headless Chromium through the system chromedriver, with a fresh profile."""
    chromium = _find("chromium", "chromium-browser")
    chromedriver = _find("/usr/bin/chromedriver", "chromedriver")
    if chromium is None or chromedriver is None:
        pytest.fail(
            "no chromium/chromedriver on this machine "
            "(as root: apt-get install -y chromium chromium-driver)",
            pytrace=False,
        )
    # Selenium Manager must never fetch a driver or a browser.
    monkeypatch.setenv("SE_OFFLINE", "true")
    monkeypatch.setenv("SE_AVOID_STATS", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'profile'}")
    service = Service(executable_path=chromedriver, log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver: WebDriver, what: str, check: object) -> None:
    """Wait (bounded) until ``check(driver)`` is truthy."""
    # The page re-renders its table on every event: an element may go stale mid-check.
    waiter = WebDriverWait(
        driver, WAIT_SECONDS, ignored_exceptions=(StaleElementReferenceException,)
    )
    waiter.until(check, message=f"timed out waiting for {what}")  # type: ignore[arg-type]


def click(driver: WebDriver, what: str, selector: str) -> None:
    """Click the element at ``selector``, retrying if a re-render replaced it."""

    def clicked(d: WebDriver) -> bool:
        d.find_element(By.CSS_SELECTOR, selector).click()
        return True

    wait(driver, what, clicked)


def session_rows(driver: WebDriver) -> list[str]:
    rows = driver.find_elements(By.CSS_SELECTOR, "#sessions tr")
    return [str(row.get_attribute("data-session-id")) for row in rows]


def device_url(base: str, device: int) -> str:
    """The demo under another host name: cookies are per host, so another device.

    Device 0 is ``127.0.0.1``; the others are names under ``localhost``, which
    Chromium resolves to the loopback address by itself.
    """
    if device == 0:
        return base
    name = "localhost" if device == 1 else f"device{device}.localhost"
    return base.replace("127.0.0.1", name)


def log_in(driver: WebDriver, url: str, user: str) -> str:
    """Open the page at ``url``, log in as ``user``, return this device's session id."""
    driver.get(url)
    field = driver.find_element(By.ID, "user")
    field.clear()
    field.send_keys(user)
    driver.find_element(By.ID, "login").click()
    return signed_in(driver)


def signed_in(driver: WebDriver) -> str:
    """Wait until the page shows a session and listens to its events; return its id."""
    wait(driver, "the session panel", lambda d: d.find_element(By.ID, "sid").text)
    # Events that happen before the tab listens are not replayed: wait for the stream.
    wait(
        driver,
        "the live event stream",
        lambda d: d.find_element(By.ID, "live").get_attribute("data-state") == "on",
    )
    return driver.find_element(By.ID, "sid").text


def text(driver: WebDriver, element_id: str) -> str:
    return driver.find_element(By.ID, element_id).text


def status(driver: WebDriver) -> str | None:
    return driver.find_element(By.ID, "status").get_attribute("data-status")


def test_two_devices_two_sessions_revoke_one(browser: WebDriver, tmp_path: Path) -> None:
    with demo_process(tmp_path, None) as (base, _log):
        first = log_in(browser, device_url(base, 0), "alice")
        tab_a = browser.current_window_handle
        wait(browser, "one session listed", lambda d: session_rows(d) == [first])

        browser.switch_to.new_window("tab")
        tab_b = browser.current_window_handle
        second = log_in(browser, device_url(base, 1), "alice")
        assert second != first
        wait(browser, "two sessions in tab B", lambda d: set(session_rows(d)) == {first, second})

        browser.switch_to.window(tab_a)
        # Device A learns of the new session live (server-sent events), without a reload.
        wait(browser, "two sessions in tab A", lambda d: set(session_rows(d)) == {first, second})
        wait(
            browser,
            "the created event in tab A",
            lambda d: any(
                "created" in li.text for li in d.find_elements(By.CSS_SELECTOR, "#events li")
            ),
        )
        click(browser, "revoke", f'#sessions tr[data-session-id="{second}"] button.revoke')
        wait(browser, "the revoked session to disappear", lambda d: session_rows(d) == [first])

        browser.switch_to.window(tab_b)
        wait(
            browser,
            "tab B told live that its session ended",
            lambda d: "revoke" in text(d, "notice"),
        )
        assert browser.find_element(By.ID, "login-section").is_displayed()
        # Its cookies still hold the ended session: the server refuses them.
        browser.refresh()
        wait(browser, "the login form", lambda d: d.find_element(By.ID, "login").is_displayed())
        assert not browser.find_element(By.ID, "panel").is_displayed()

        browser.switch_to.window(tab_a)
        click(browser, "reload the list", "#refresh")
        wait(browser, "tab A still works", lambda d: session_rows(d) == [first])
        assert status(browser) == "200"


def shoot(driver: WebDriver, tmp_path: Path, name: str) -> Path:
    """Save a screenshot (into $REDIS_JWT_SCREENSHOTS when set, to look at; else tmp_path)."""
    folder = Path(os.environ.get("REDIS_JWT_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    assert driver.save_screenshot(str(path)), path
    return path


def event_lines(driver: WebDriver) -> list[str]:
    return [li.text for li in driver.find_elements(By.CSS_SELECTOR, "#events li")]


def test_log_out_everywhere_with_two_sessions_says_so(browser: WebDriver, tmp_path: Path) -> None:
    with demo_process(tmp_path, None) as (base, _log):
        browser.set_window_size(1280, 900)
        first = log_in(browser, device_url(base, 0), "alice")
        tab_a = browser.current_window_handle
        browser.switch_to.new_window("tab")
        tab_b = browser.current_window_handle
        second = log_in(browser, device_url(base, 1), "alice")
        browser.switch_to.window(tab_a)
        wait(browser, "two sessions in tab A", lambda d: set(session_rows(d)) == {first, second})

        click(browser, "log out everywhere", "#logout-all")
        wait(browser, "the notice", lambda d: text(d, "notice") == "Logged out everywhere.")
        # The stream ends after this device's own "destroyed" event: every event of the
        # logout has been handled by then, so nothing can still turn the page red.
        wait(
            browser,
            "this device's own destroyed event",
            lambda d: any("destroyed" in t and "this device" in t for t in event_lines(d)),
        )
        wait(
            browser,
            "the stream to end",
            lambda d: d.find_element(By.ID, "live").get_attribute("data-state") == "off",
        )
        shoot(browser, tmp_path, "demo-logged-out-everywhere-1280")
        assert text(browser, "notice") == "Logged out everywhere."
        assert status(browser) == "200", text(browser, "status")
        assert browser.find_element(By.ID, "status").get_attribute("class") != "error"
        assert "POST /api/logout-all" in text(browser, "status")
        lines = event_lines(browser)
        assert any(second in line and "destroy_all" in line for line in lines), lines
        assert browser.find_element(By.ID, "login-section").is_displayed()

        browser.switch_to.window(tab_b)
        wait(browser, "tab B told its session ended", lambda d: "destroy_all" in text(d, "notice"))


def test_a_blank_name_is_refused_with_a_clear_message(browser: WebDriver, tmp_path: Path) -> None:
    with demo_process(tmp_path, None) as (base, _log):
        browser.get(base)
        field = browser.find_element(By.ID, "user")
        field.clear()
        field.send_keys("   ")
        browser.find_element(By.ID, "login").click()
        wait(
            browser,
            "the refusal",
            lambda d: "spaces alone are not a name" in text(d, "notice"),
        )
        assert text(browser, "notice") == (
            "Cannot log in: enter a name: spaces alone are not a name"
        )
        assert browser.find_element(By.ID, "login-section").is_displayed()
        assert not browser.find_element(By.ID, "panel").is_displayed()


def test_another_users_login_starts_a_fresh_event_log(browser: WebDriver, tmp_path: Path) -> None:
    with demo_process(tmp_path, None) as (base, _log):
        log_in(browser, device_url(base, 0), "alice")
        tab_a = browser.current_window_handle
        browser.switch_to.new_window("tab")
        other = log_in(browser, device_url(base, 1), "alice")
        browser.switch_to.window(tab_a)
        wait(browser, "alice's created event", lambda d: any(other in t for t in event_lines(d)))

        click(browser, "log out", "#logout")
        wait(browser, "logged out", lambda d: text(d, "notice") == "Logged out.")
        field = browser.find_element(By.ID, "user")
        field.clear()
        field.send_keys("bob")
        browser.find_element(By.ID, "login").click()
        wait(browser, "bob's panel", lambda d: text(d, "who") == "bob")
        wait(
            browser,
            "bob's stream",
            lambda d: d.find_element(By.ID, "live").get_attribute("data-state") == "on",
        )
        assert event_lines(browser) == []
        # Bob's own events are shown: a second session of bob's, from another device.
        browser.switch_to.new_window("tab")
        bobs = log_in(browser, device_url(base, 2), "bob")
        browser.switch_to.window(tab_a)
        wait(browser, "bob's created event", lambda d: any(bobs in t for t in event_lines(d)))
        assert not any(other in t for t in event_lines(browser))


@pytest.mark.parametrize("width", [1280, 420])
def test_the_device_list_fits_the_window(browser: WebDriver, tmp_path: Path, width: int) -> None:
    with demo_process(tmp_path, None) as (base, _log):
        browser.set_window_size(width, 1000)
        first = log_in(browser, device_url(base, 0), "alice")
        tab_a = browser.current_window_handle
        browser.switch_to.new_window("tab")
        second = log_in(browser, device_url(base, 1), "alice")
        browser.switch_to.window(tab_a)
        wait(browser, "two sessions", lambda d: set(session_rows(d)) == {first, second})
        wait(browser, "the created event", lambda d: bool(event_lines(d)))
        viewport = browser.execute_script("return document.documentElement.clientWidth")
        assert viewport <= width
        page = browser.execute_script("return document.documentElement.scrollWidth")
        table = browser.execute_script(
            "return document.querySelector('table').getBoundingClientRect().right"
        )
        shoot(browser, tmp_path, f"demo-devices-{width}")
        assert page <= viewport, f"the page scrolls sideways: {page} > {viewport}"
        assert table <= viewport, f"the table overflows: {table} > {viewport}"
        # Every session id is shown whole, wrapped rather than cut.
        cells = browser.find_elements(By.CSS_SELECTOR, "#sessions td.sid")
        assert {c.text.split(" ")[0] for c in cells} == {first, second}
        # The device in words, its address and its last activity; this one marked.
        devices = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#sessions td.device")]
        assert all(d.startswith("Headless Chrome on Linux") for d in devices), devices
        assert sum("This device" in d for d in devices) == 1
        current = browser.find_element(By.CSS_SELECTOR, "#sessions tr.current")
        assert current.get_attribute("data-session-id") == first
        ips = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#sessions td.ip")]
        assert all("127.0.0.1" in ip for ip in ips), ips
        seen = browser.find_elements(By.CSS_SELECTOR, "#sessions td.seen")
        assert all(cell.get_attribute("title") for cell in seen)

        click(browser, "sign out other devices", "#logout-others")
        wait(browser, "one device left", lambda d: session_rows(d) == [first])
        assert text(browser, "notice") == "Signed out 1 other device."
        browser.switch_to.window(browser.window_handles[1])
        wait(browser, "the other device told", lambda d: "destroy_all" in text(d, "notice"))


def test_the_page_renews_the_access_token_and_keeps_working(
    browser: WebDriver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A short access token, so that the page renews it within the test.
    monkeypatch.setenv("REDIS_JWT_ACCESS_TTL", "4 seconds")
    with demo_process(tmp_path, None) as (base, _log):
        sid = log_in(browser, base, "alice")
        cookie = browser.get_cookie("session")
        assert cookie is not None
        assert cookie["httpOnly"] is True
        first = cookie["value"]
        # The page cannot read it (HttpOnly), but it can read the CSRF value.
        assert "session=" not in browser.execute_script("return document.cookie")
        assert "csrf_token=" in browser.execute_script("return document.cookie")

        def renewed(times: int) -> object:
            def check(d: WebDriver) -> bool:
                count = d.find_element(By.ID, "access").get_attribute("data-renewals")
                return int(count or 0) >= times

            return check

        wait(browser, "a first renewal", renewed(1))
        wait(browser, "a second renewal", renewed(2))
        value = browser.get_cookie("session")
        assert value is not None
        assert value["value"] != first
        assert text(browser, "sid") == sid
        # The page keeps working on the renewed token: a read and a CSRF-checked write.
        click(browser, "reload the list", "#refresh")
        wait(browser, "the list", lambda d: status(d) == "200" and session_rows(d) == [sid])
        click(browser, "extend", "#extend")
        wait(browser, "the extend", lambda d: "POST /api/extend → 200" in text(d, "status"))
        assert "Renewed" in text(browser, "access")


def test_a_replayed_refresh_token_ends_the_session_in_every_tab(
    browser: WebDriver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_JWT_REFRESH_GRACE", "1 second")
    with demo_process(tmp_path, None) as (base, _log):
        browser.set_window_size(1280, 1000)
        sid = log_in(browser, base, "alice")
        tab_a = browser.current_window_handle
        # A second tab of the same browser: the same cookies, the same session.
        browser.switch_to.new_window("tab")
        tab_b = browser.current_window_handle
        browser.get(base)
        assert signed_in(browser) == sid
        # And another device of alice's, which outlives the theft.
        browser.switch_to.new_window("tab")
        tab_c = browser.current_window_handle
        other = log_in(browser, device_url(base, 1), "alice")

        browser.switch_to.window(tab_a)
        wait(browser, "the other device listed", lambda d: set(session_rows(d)) == {sid, other})
        click(browser, "simulate a stolen refresh token", "#theft")
        wait(browser, "the countdown", lambda d: "the thief replays it" in text(d, "notice"))
        for tab in (tab_a, tab_b):
            browser.switch_to.window(tab)
            wait(
                browser,
                "the session ended as stolen",
                lambda d: "stolen refresh token" in text(d, "notice"),
            )
            assert "refresh_reuse" in text(browser, "notice")
            assert browser.find_element(By.ID, "login-section").is_displayed()
            assert any(sid in t and "refresh_reuse" in t for t in event_lines(browser))
        browser.switch_to.window(tab_a)
        shoot(browser, tmp_path, "demo-reuse-1280")
        browser.set_window_size(420, 1000)
        shoot(browser, tmp_path, "demo-reuse-420")

        browser.switch_to.window(tab_c)
        wait(
            browser,
            "the other device sees the reuse",
            lambda d: any(sid in t and "refresh_reuse" in t for t in event_lines(d)),
        )
        wait(browser, "only itself listed", lambda d: session_rows(d) == [other])
        assert browser.find_element(By.ID, "panel").is_displayed()
        browser.set_window_size(1280, 1000)
        shoot(browser, tmp_path, "demo-reuse-seen-by-another-device-1280")


def test_a_post_without_the_csrf_header_is_refused_and_the_page_says_so(
    browser: WebDriver, tmp_path: Path
) -> None:
    with demo_process(tmp_path, None) as (base, _log):
        sid = log_in(browser, base, "alice")
        click(browser, "send a POST without the CSRF header", "#no-csrf")
        wait(browser, "the refusal", lambda d: status(d) == "403")
        assert "CSRF check failed" in text(browser, "status")
        assert text(browser, "notice").startswith("Refused with 403")
        # Still signed in, and the page's own calls (with the header) go through.
        assert text(browser, "sid") == sid
        click(browser, "extend", "#extend")
        wait(browser, "the extend", lambda d: status(d) == "200")
