"""Debian's headless Chromium, driven by selenium, for the tests that look at a page as a user
would (/docs, /console): every request and console line is logged for them to check."""

from __future__ import annotations

import shutil
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",  # nothing of Chromium's own leaves the machine
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def chromium(page: str, width: int, height: int, *flags: str) -> Any:
    """A selenium driver of headless Chromium with a `width` × `height` window, logging network
    and console; skips the test (saying `page` was not checked) when Chromium is not installed."""
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.skip(
            "Debian's chromium and chromium-driver are not installed "
            f"(apt-get install chromium chromium-driver): {page} was NOT checked in a browser"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, *flags, f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
