"""The demo page in headless Chromium: two tabs, two sessions, one revoked.

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


def log_in(driver: WebDriver, base: str, user: str) -> str:
    """Open the page, log in as ``user``, return this tab's session id."""
    driver.get(base)
    field = driver.find_element(By.ID, "user")
    field.clear()
    field.send_keys(user)
    driver.find_element(By.ID, "login").click()
    wait(driver, "the session panel", lambda d: d.find_element(By.ID, "sid").text)
    # Events that happen before the tab listens are not replayed: wait for the stream.
    wait(
        driver,
        "the live event stream",
        lambda d: d.find_element(By.ID, "live").get_attribute("data-state") == "on",
    )
    return driver.find_element(By.ID, "sid").text


def test_two_tabs_two_sessions_revoke_one(browser: WebDriver, tmp_path: Path) -> None:
    with demo_process(tmp_path, None) as (base, _log):
        first = log_in(browser, base, "alice")
        tab_a = browser.current_window_handle
        wait(browser, "one session listed", lambda d: session_rows(d) == [first])

        browser.switch_to.new_window("tab")
        tab_b = browser.current_window_handle
        second = log_in(browser, base, "alice")
        assert second != first
        wait(browser, "two sessions in tab B", lambda d: set(session_rows(d)) == {first, second})

        browser.switch_to.window(tab_a)
        # Tab A learns of the new session live (server-sent events), without a reload.
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
            lambda d: "revoke" in d.find_element(By.ID, "notice").text,
        )
        click(browser, "refresh", "#refresh")
        wait(
            browser,
            "tab B's next API call refused",
            lambda d: d.find_element(By.ID, "status").get_attribute("data-status") == "401",
        )
        assert "Session ended" in browser.find_element(By.ID, "status").text
        assert browser.find_element(By.ID, "login-section").is_displayed()

        browser.switch_to.window(tab_a)
        click(browser, "refresh", "#refresh")
        wait(browser, "tab A still works", lambda d: session_rows(d) == [first])
        assert browser.find_element(By.ID, "status").get_attribute("data-status") == "200"


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
        first = log_in(browser, base, "alice")
        tab_a = browser.current_window_handle
        browser.switch_to.new_window("tab")
        tab_b = browser.current_window_handle
        second = log_in(browser, base, "alice")
        browser.switch_to.window(tab_a)
        wait(browser, "two sessions in tab A", lambda d: set(session_rows(d)) == {first, second})

        click(browser, "log out everywhere", "#logout-all")
        wait(
            browser,
            "the notice",
            lambda d: d.find_element(By.ID, "notice").text == "Logged out everywhere.",
        )
        # The stream ends after this tab's own "destroyed" event: every event of the
        # logout has been handled by then, so nothing can still turn the page red.
        wait(
            browser,
            "this tab's own destroyed event",
            lambda d: any("destroyed" in t and "this tab" in t for t in event_lines(d)),
        )
        wait(
            browser,
            "the stream to end",
            lambda d: d.find_element(By.ID, "live").get_attribute("data-state") == "off",
        )
        shoot(browser, tmp_path, "logged-out-everywhere-1280")
        assert browser.find_element(By.ID, "notice").text == "Logged out everywhere."
        status = browser.find_element(By.ID, "status")
        assert status.get_attribute("data-status") == "200", status.text
        assert status.get_attribute("class") != "error"
        assert "POST /api/logout-all" in status.text
        lines = event_lines(browser)
        assert any(second in line and "destroy_all" in line for line in lines), lines
        assert browser.find_element(By.ID, "login-section").is_displayed()

        browser.switch_to.window(tab_b)
        wait(
            browser,
            "tab B told its session ended",
            lambda d: "destroy_all" in d.find_element(By.ID, "notice").text,
        )


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
            lambda d: "spaces alone are not a name" in d.find_element(By.ID, "notice").text,
        )
        assert browser.find_element(By.ID, "notice").text == (
            "Cannot log in: enter a name: spaces alone are not a name"
        )
        assert browser.find_element(By.ID, "login-section").is_displayed()
        assert not browser.find_element(By.ID, "panel").is_displayed()


def test_another_users_login_starts_a_fresh_event_log(browser: WebDriver, tmp_path: Path) -> None:
    with demo_process(tmp_path, None) as (base, _log):
        log_in(browser, base, "alice")
        tab_a = browser.current_window_handle
        browser.switch_to.new_window("tab")
        other = log_in(browser, base, "alice")
        browser.switch_to.window(tab_a)
        wait(browser, "alice's created event", lambda d: any(other in t for t in event_lines(d)))

        click(browser, "log out this tab", "#logout")
        wait(browser, "logged out", lambda d: d.find_element(By.ID, "notice").text == "Logged out.")
        field = browser.find_element(By.ID, "user")
        field.clear()
        field.send_keys("bob")
        browser.find_element(By.ID, "login").click()
        wait(browser, "bob's panel", lambda d: d.find_element(By.ID, "who").text == "bob")
        wait(
            browser,
            "bob's stream",
            lambda d: d.find_element(By.ID, "live").get_attribute("data-state") == "on",
        )
        assert event_lines(browser) == []
        # Bob's own events are shown: a second session of bob's, from another tab.
        browser.switch_to.new_window("tab")
        bobs = log_in(browser, base, "bob")
        browser.switch_to.window(tab_a)
        wait(browser, "bob's created event", lambda d: any(bobs in t for t in event_lines(d)))
        assert not any(other in t for t in event_lines(browser))


@pytest.mark.parametrize("width", [1280, 420])
def test_the_page_fits_the_window(browser: WebDriver, tmp_path: Path, width: int) -> None:
    with demo_process(tmp_path, None) as (base, _log):
        browser.set_window_size(width, 900)
        first = log_in(browser, base, "alice")
        tab_a = browser.current_window_handle
        browser.switch_to.new_window("tab")
        browser.set_window_size(width, 900)
        second = log_in(browser, base, "alice")
        browser.switch_to.window(tab_a)
        wait(browser, "two sessions", lambda d: set(session_rows(d)) == {first, second})
        wait(browser, "the created event", lambda d: bool(event_lines(d)))
        viewport = browser.execute_script("return document.documentElement.clientWidth")
        assert viewport <= width
        page = browser.execute_script("return document.documentElement.scrollWidth")
        table = browser.execute_script(
            "return document.querySelector('table').getBoundingClientRect().right"
        )
        shoot(browser, tmp_path, f"sessions-{width}")
        assert page <= viewport, f"the page scrolls sideways: {page} > {viewport}"
        assert table <= viewport, f"the table overflows: {table} > {viewport}"
        # Every session id is shown whole, wrapped rather than cut.
        cells = browser.find_elements(By.CSS_SELECTOR, "#sessions td.sid")
        assert {c.text.split(" ")[0] for c in cells} == {first, second}
