"""/docs in a real headless Chromium (Debian's, driven by selenium): the page renders every
operation with its summary and, opened, its description; the console stays clean; and every
request the browser made went to the gateway on 127.0.0.1. Skips loudly without Chromium."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests import browser

from .conftest import Suite

DEADLINE_S = 20


def _browser() -> Any:
    return browser.chromium("/docs", 1280, 2000)


def _browse(url: str, operations: dict[str, str]) -> dict[str, Any]:
    """Open /docs, wait for every summary, open each operation; runs in a thread."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = _browser()
    try:
        driver.get(url)
        wait = WebDriverWait(driver, DEADLINE_S)

        def summaries(d: Any) -> list[str]:
            found = d.find_elements(By.CSS_SELECTOR, ".opblock-summary-description")
            return [e.text for e in found]

        wait.until(lambda d: len(summaries(d)) >= len(operations))
        shown_summaries = summaries(driver)
        descriptions: dict[str, str] = {}
        for block in driver.find_elements(By.CSS_SELECTOR, ".opblock"):
            block.find_element(By.CSS_SELECTOR, ".opblock-summary").click()
            wait.until(lambda _d, b=block: b.find_elements(By.CSS_SELECTOR, ".opblock-description"))
            summary = block.find_element(By.CSS_SELECTOR, ".opblock-summary-description").text
            descriptions[summary] = block.find_element(By.CSS_SELECTOR, ".opblock-description").text
        requests = [
            json.loads(entry["message"])["message"] for entry in driver.get_log("performance")
        ]
        urls = [
            m["params"]["request"]["url"]
            for m in requests
            if m["method"] == "Network.requestWillBeSent"
        ]
        console = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        return {
            "summaries": shown_summaries,
            "descriptions": descriptions,
            "urls": urls,
            "console": console,
            "title": driver.title,
        }
    finally:
        driver.quit()


# /docs and /openapi.json come from the descriptors, never the store: one database kind is enough.
@pytest.mark.parametrize("database_kind", ["sqlite"], indirect=True)
@pytest.mark.timeout(180)
async def test_docs_renders_every_operation_and_stays_on_the_machine(suite: Suite) -> None:
    spec = (await suite.http.get("/openapi.json")).json()
    operations = {
        op["summary"]: op["description"] for item in spec["paths"].values() for op in item.values()
    }
    url = f"http://127.0.0.1:{suite.gateway_port}/docs"
    seen = await asyncio.to_thread(_browse, url, operations)
    assert seen["title"] == "Parley API reference"
    assert sorted(seen["summaries"]) == sorted(operations)
    for summary, description in operations.items():
        # Swagger UI renders the description as Markdown: compare its words.
        assert seen["descriptions"][summary].split() == description.replace("`", "").split()
    assert not seen["console"], seen["console"]
    hosts = {urlsplit(u).hostname for u in seen["urls"] if not u.startswith(("data:", "blob:"))}
    assert hosts == {"127.0.0.1"}, seen["urls"]
    fetched = {urlsplit(u).path for u in seen["urls"]}
    assert {"/docs", "/openapi.json", "/docs/assets/swagger-ui-bundle.js"} <= fetched
