"""The operator page in a real headless Chromium, against real API, worker and SMSC processes.

Sign in, see the bind up and a running campaign move, pause it through the confirmation page,
see it paused; then the API goes away and the page turns stale by itself. Screenshots are kept
in the test's tmp directory (their paths are printed). Skipped only where Chromium is missing
and this is not CI; in CI (`CI` set, as .ci/run does) a missing Chromium fails.
"""

import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from campaigns.models import Role
from campaigns.people import create_user
from dispatcher import demo as flow
from dispatcher.db import make_engine, session_scope
from dispatcher.stack import Stack, StackConfig

pytestmark = pytest.mark.timeout(240)
CHROMIUM = shutil.which("chromium")
DRIVER = shutil.which("chromedriver")
if not (CHROMIUM and DRIVER):
    if os.environ.get("CI"):
        raise RuntimeError("CI needs Debian's chromium and chromium-driver for the page tests")
    pytest.skip("chromium and chromium-driver are not installed", allow_module_level=True)

from selenium import webdriver  # noqa: E402 (only once Chromium is known to be there)
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
]


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    """A fresh headless Chromium with a profile of its own."""
    options = webdriver.ChromeOptions()
    assert CHROMIUM is not None and DRIVER is not None
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def eventually(check: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    """Poll `check` until it returns something true (a moving page may go stale meanwhile)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if result := check():
                return result
        except (StaleElementReferenceException, WebDriverException):
            pass
        assert time.monotonic() < deadline, f"{what} not seen within {timeout:.0f} s"
        time.sleep(0.1)


def delivered(driver: webdriver.Chrome, campaign_id: int) -> int:
    text = driver.find_element(By.CSS_SELECTOR, f"#campaign-{campaign_id} .counts").text
    found = re.search(r"([\d,]+) delivered", text)
    return int(found.group(1).replace(",", "")) if found else -1


def test_an_operator_watches_a_campaign_and_pauses_it(
    tmp_path: Path, database_url: str, redis_url: str, browser: webdriver.Chrome
) -> None:
    config = StackConfig(
        var_dir=tmp_path / "stack",
        database_url=database_url,
        redis_url=redis_url,
        queue_name=f"test-{uuid.uuid4().hex[:8]}",
        rate=40,  # slow enough to watch: about 50 s for the campaign
    )
    with Stack(config) as stack:
        seeded = flow.seed(database_url, 2000)
        engine = make_engine(database_url)
        with session_scope(engine) as session:
            _, token = create_user(
                session=session,
                username="van.le",
                name="Lê Thị Vân",
                role=Role.OPERATOR,
                authority=None,
            )
        engine.dispose()
        with httpx.Client(base_url=stack.api_url, timeout=30) as api:
            campaign_id = flow.run_campaign(api, seeded)

            browser.get(f"{stack.api_url}/ops")
            browser.find_element(By.ID, "token").send_keys(token)
            browser.find_element(By.ID, "sign-in").click()
            eventually(
                lambda: (
                    "up" in browser.find_element(By.CSS_SELECTOR, 'tr[data-bind="smsc1#0"]').text
                ),
                what="the bind up",
            )
            row = f"#campaign-{campaign_id}"
            eventually(
                lambda: (
                    browser.find_element(By.CSS_SELECTOR, row).get_attribute("data-status")
                    == "sending"
                ),
                what="the campaign sending",
            )
            # The page moves by itself: updates arrive and the delivered count grows.
            first = eventually(
                lambda: delivered(browser, campaign_id) > 0 and delivered(browser, campaign_id)
            )
            eventually(lambda: delivered(browser, campaign_id) > first, what="progress")
            assert browser.execute_script("return window.opsUpdates.length") >= 1
            assert "Lê Thị Vân" in browser.find_element(By.CSS_SELECTOR, "header").text
            running = tmp_path / "ops-running.png"
            browser.save_screenshot(str(running))

            eventually(lambda: _click(browser, f"{row} button.pause"), what="the pause button")
            eventually(lambda: browser.find_element(By.ID, "confirm"), what="the confirmation")
            assert "Pause campaign" in browser.find_element(By.TAG_NAME, "h2").text
            browser.find_element(By.ID, "confirm").click()
            eventually(
                lambda: (
                    f"Campaign {campaign_id} paused." in browser.find_element(By.ID, "note").text
                ),
                what="the note",
            )
            eventually(
                lambda: (
                    browser.find_element(By.CSS_SELECTOR, row).get_attribute("data-status")
                    == "paused"
                ),
                what="the campaign paused",
            )
            paused = tmp_path / "ops-paused.png"
            browser.save_screenshot(str(paused))
            print(f"\nscreenshots: {running} {paused}")
            assert flow.report(api, seeded.approver_token, campaign_id)["status"] == "paused"

        # The API goes away: within a few seconds the page says its figures are stale.
        stack.stop("api")
        eventually(
            lambda: (
                "stale" in (browser.find_element(By.TAG_NAME, "body").get_attribute("class") or "")
            ),
            timeout=10,
            what="the stale page",
        )
        assert "STALE" in browser.find_element(By.ID, "age").text
        stale = tmp_path / "ops-stale.png"
        browser.save_screenshot(str(stale))
        print(f"stale page: {stale}")


def _click(driver: webdriver.Chrome, selector: str) -> bool:
    driver.find_element(By.CSS_SELECTOR, selector).click()
    return True
