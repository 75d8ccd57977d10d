"""The demo page in headless Chromium: two tabs, two sessions, one revoked.

Run with ``nox -s e2e`` (or ``pytest tests/e2e -m e2e``). It needs Debian's
``chromium`` and ``chromium-driver`` packages; Selenium is pointed at the
system chromedriver and never downloads anything. Without them the test
fails and says what to install: a skipped browser test must not pass for one.
"""

from __future__ import annotations

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
