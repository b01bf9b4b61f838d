"""/console in a real headless Chromium (Debian's, driven by selenium) on a real
`parley up --fake-model`: sign in, create a conversation, a run's streamed answer, a caller tool
answered, an approval, a cancel, the runs list and a run's inference jobs; at phone width nothing
overflows sideways; the browser's console stays clean and every request it made went to the
gateway on 127.0.0.1. PARLEY_CONSOLE_SCREENSHOTS=<folder> keeps screenshots there
(`make console-screenshots`: docs/console). Skips loudly without Chromium."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests import browser, spec_examples

from .conftest import Holding, Server

DESKTOP = (1280, 1000)
PHONE = (390, 844)
DEADLINE_S = 20
MODEL = "anthropic.claude-opus-4.6"


class Console:
    """The browser on /console, found by accessible names (labels, roles) as a person would."""

    def __init__(self, driver: Any, url: str, shots: Path) -> None:
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver, self.url, self.shots = driver, url, shots
        # A view re-renders as its data arrives: an element found a moment ago may be gone.
        self.wait = WebDriverWait(
            driver, DEADLINE_S, ignored_exceptions=[StaleElementReferenceException]
        )

    def open(self, fragment: str = "") -> None:
        self.driver.get(f"{self.url}/console{fragment}")

    def control(self, label: str) -> Any:
        """The form control a <label> with exactly this text names (waits for it)."""
        from selenium.webdriver.common.by import By

        xpath = f"//label[normalize-space(text())={json.dumps(label)}]"
        found = self.wait.until(lambda d: d.find_elements(By.XPATH, xpath))
        return self.driver.find_element(By.ID, found[-1].get_attribute("for"))

    def fill(self, label: str, text: str) -> None:
        def fill(_d: Any) -> bool:
            control = self.control(label)
            control.clear()
            control.send_keys(text)
            return True

        self.wait.until(fill)

    def choose(self, label: str, option: str) -> None:
        from selenium.webdriver.support.ui import Select

        def choose(_d: Any) -> bool:
            Select(self.control(label)).select_by_visible_text(option)
            return True

        self.wait.until(choose)

    def button(self, name: str) -> Any:
        from selenium.webdriver.common.by import By

        xpath = f"//button[normalize-space(.)={json.dumps(name)}]"
        return self.wait.until(
            lambda d: next((b for b in d.find_elements(By.XPATH, xpath) if b.is_displayed()), None)
        )

    def press(self, name: str) -> None:
        def press(_d: Any) -> bool:
            button = self.button(name)
            if not button.is_enabled():
                return False
            button.click()
            return True

        self.wait.until(press)

    def text_appears(self, text: str, css: str = "main") -> None:
        from selenium.webdriver.common.by import By

        self.wait.until(
            lambda d: any(text in e.text for e in d.find_elements(By.CSS_SELECTOR, css)),
            f"{text!r} never appeared in {css}",
        )

    def elements(self, css: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return list(self.driver.find_elements(By.CSS_SELECTOR, css))

    def found(self, css: str) -> list[Any]:
        """The elements `css` selects, once there is one."""
        return list(self.wait.until(lambda _d: self.elements(css), f"nothing matched {css}"))

    def new_conversation(self, name: str, **json_fields: Any) -> None:
        self.open("#/conversations")
        self.press("New conversation")
        self.fill("Name", name)
        self.fill("System prompt", "You are a helpful assistant. Answer concisely.")
        self.choose("Model", MODEL)
        labels = {
            "tools": "Caller tools (JSON)",
            "mcp_servers": "MCP servers (JSON)",
            "output_format_schema": "Output schema (JSON)",
        }
        for key, value in json_fields.items():
            self.fill(labels[key], json.dumps(value))
        self.press("Create conversation")
        self.wait.until(lambda d: "#/conversations/" in d.current_url)
        self.text_appears(name, "h1")

    def send(self, text: str, tool: str | None = None, alias: str = "") -> None:
        self.fill("Message", text)
        if tool is None:
            self.choose("Tool choice", "Model decides")
        else:
            self.choose("Tool choice", "Must call this tool")
            self.fill("Tool name", tool)
            self.fill("MCP server alias", alias)
        self.press("Send")

    def no_sideways_overflow(self) -> None:
        width = self.driver.execute_script(
            "return [document.documentElement.scrollWidth, window.innerWidth]"
        )
        assert width[0] <= width[1], f"the page is {width[0]} px wide in a {width[1]} px window"

    def shot(self, name: str) -> None:
        self.driver.save_screenshot(str(self.shots / f"{name}.png"))


@pytest.fixture(scope="module")
def console(parley_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    driver = browser.chromium("/console", *DESKTOP, "--hide-scrollbars")
    shots = Path(os.environ.get("PARLEY_CONSOLE_SCREENSHOTS") or tmp_path_factory.mktemp("shots"))
    shots.mkdir(parents=True, exist_ok=True)
    try:
        yield Console(driver, parley_server.url, shots)
    finally:
        driver.quit()


def test_sign_in_create_and_watch_a_streamed_answer(
    console: Console, parley_server: Server
) -> None:
    console.open()
    console.fill("Token", "not-a-token")
    console.press("Sign in")
    console.text_appears("", "[role=alert]")  # refused: still on the sign-in form
    console.fill("Token", parley_server.token(parley_server.new_user()))
    console.press("Sign in")
    console.text_appears("No conversations yet.")
    console.new_conversation("Console hello", tools=[spec_examples.BOOKING_TOOL])
    console.send("Hello from the console")
    # the live panel's text was built from message.delta events, then the timeline holds it
    console.text_appears("You said: Hello from the console", ".live .streamed")
    console.text_appears("completed", ".live .badge")
    console.text_appears("You said: Hello from the console", ".timeline .msg.assistant")
    # a caller tool: the run pauses, the form answers it, the model sees the output
    console.send("Find me a meeting time for tomorrow afternoon.", tool="confirm_booking")
    console.fill("Output of confirm_booking", "User confirmed the proposed slot.")
    console.shot("desktop-caller-tool")
    console.press("Submit answers")
    console.text_appears(
        "confirm_booking returned: User confirmed the proposed slot.", ".timeline .msg.assistant"
    )
    console.text_appears("User confirmed the proposed slot.", ".timeline .msg.tool .tool-result")
    console.shot("desktop-conversation")


def test_an_approval_and_a_cancel(console: Console, holding: Holding) -> None:
    server = [{"alias": "gate", "url": holding.url, "require_approval": "always"}]
    console.new_conversation("Console approval", mcp_servers=server)
    key = holding.gates.key()
    holding.gates.open(key)
    console.send(key, tool="hold", alias="gate")
    console.text_appears("Approve gate-hold on gate?", "legend")
    console.press("Submit answers")  # "Approve" is checked
    console.text_appears(f"gate-hold returned: released {key}", ".timeline .msg.assistant")
    console.text_appears("approved", ".timeline .msg.tool")
    # a run held in its MCP call: "Cancel run" ends it
    console.new_conversation("Console cancel", mcp_servers=[{"alias": "gate", "url": holding.url}])
    held = holding.gates.key()
    console.send(held, tool="hold", alias="gate")
    holding.gates.wait_arrived(held)
    console.text_appears("hold", ".live .tool-call code")
    console.press("Cancel run")
    console.text_appears("Cancelled.", ".live")
    console.text_appears("failed", ".live .badge")
    holding.gates.open(held)


def test_runs_list_and_a_runs_inference_jobs(console: Console) -> None:
    console.open("#/runs")
    console.text_appears("Runs, newest first", "caption")
    statuses = {e.text for e in console.elements("table .badge")}
    assert {"completed", "requires action", "failed"} <= statuses, statuses
    row = console.found("tbody tr")[-1]  # the first run: "Hello from the console"
    cells = [c.text for c in row.find_elements("css selector", "td")]
    assert cells[1] == "completed" and cells[4].endswith(("ms", " s")) and int(cells[5]) > 0
    console.shot("desktop-runs")
    row.find_element("css selector", "a").click()
    console.text_appears("Inference jobs", "h2")
    console.text_appears("echo", "table")
    details = console.elements("details.job")
    assert len(details) == len(console.elements("tbody tr")) >= 1
    details[0].find_element("css selector", "summary").click()
    console.text_appears('"stopReason": "end_turn"', "details.job pre")
    console.shot("desktop-run")


def test_phone_width_never_scrolls_sideways(console: Console) -> None:
    console.driver.set_window_size(*PHONE)
    try:
        for fragment, name in (("#/conversations", None), ("#/runs", "phone-runs")):
            console.open(fragment)
            console.wait.until(lambda d: "Loading" not in d.find_element("id", "main").text)
            console.no_sideways_overflow()
            if name:
                console.shot(name)
        console.open("#/conversations")
        console.found(".list a")[-1].click()  # "Console hello": text, tool call and result
        console.text_appears("confirm_booking returned", ".timeline")
        console.no_sideways_overflow()
        console.shot("phone-conversation")
        console.open("#/runs")
        console.found("tbody tr a")[0].click()
        console.text_appears("Inference jobs", "h2")
        console.no_sideways_overflow()
    finally:
        console.driver.set_window_size(*DESKTOP)


def test_the_console_stayed_on_the_machine_and_its_console_clean(console: Console) -> None:
    """Runs last: over every page the tests above opened."""
    log = [
        json.loads(entry["message"])["message"] for entry in console.driver.get_log("performance")
    ]
    urls = [
        m["params"]["request"]["url"] for m in log if m["method"] == "Network.requestWillBeSent"
    ]
    hosts = {urlsplit(u).hostname for u in urls if not u.startswith(("data:", "blob:"))}
    assert hosts == {"127.0.0.1"}, sorted(set(urls))
    paths = {urlsplit(u).path for u in urls}
    assert {"/console", "/console/assets/app.js", "/agents/conversations"} <= paths
    severe = [e for e in console.driver.get_log("browser") if e["level"] == "SEVERE"]
    refused_sign_in = [
        e for e in severe if "/agents/models" in e["message"] and "401" in e["message"]
    ]
    assert severe == refused_sign_in, severe
