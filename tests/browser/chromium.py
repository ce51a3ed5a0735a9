"""Headless Chromium from Debian's packages (`chromium`, `chromium-driver`), driven by
Selenium through the system's chromedriver: no browser downloaded, nothing from the network.

Where they are missing the browser tests skip, saying what to install, unless
SHOP_REQUIRE_CHROMIUM=1 (CI, whose `.ci/run` installs them): then they fail.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
from collections.abc import Iterator

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = pathlib.Path("/usr/bin/chromium")
CHROMEDRIVER = pathlib.Path("/usr/bin/chromedriver")
REQUIRE_ENV = "SHOP_REQUIRE_CHROMIUM"
# Headless, in a container or a CI runner; nothing started in the background that would call
# out (updates, sync, field trials), so the browser only talks to the gateway.
ARGUMENTS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,1200",
)


def chromium_or_skip() -> None:
    """Skips the test (fails it, under SHOP_REQUIRE_CHROMIUM=1) where Debian's Chromium and
    its driver are not installed."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if not missing:
        return
    reason = (
        f"{' and '.join(missing)} missing: the browser tests need Debian's chromium and "
        "chromium-driver packages (apt-get install chromium chromium-driver)"
    )
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason}, and {REQUIRE_ENV}=1 requires them")
    pytest.skip(reason)


@contextlib.contextmanager
def headless_chromium(profile: pathlib.Path) -> Iterator[webdriver.Chrome]:
    """A fresh headless Chromium (its profile in `profile`), which records its console's
    messages (`driver.get_log("browser")`); quit on leaving."""
    chromium_or_skip()
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (*ARGUMENTS, f"--user-data-dir={profile}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=str(CHROMEDRIVER), log_output=os.devnull)
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()
