"""Open a local page in a real headless Chromium (the Debian package) and report what it did.

Driven over the Chrome DevTools protocol with `websocket-client` (already locked): every request the page
makes is recorded from `Network.requestWillBeSent`, so a test can assert that a report asks for no network
URL, and the DOM is read back after the load event. Tests skip when /usr/bin/chromium is missing.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.processes import stop

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
LOCAL_SCHEMES = ("file:", "data:", "about:", "blob:")

requires_chromium = pytest.mark.skipif(
    not CHROMIUM.is_file(), reason="needs Chromium at /usr/bin/chromium (apt-get install -y chromium)"
)


@dataclass
class PageVisit:
    requests: list[str]  # every URL the page asked for, in order
    failed: list[str]  # URLs whose load failed
    screenshot: Path

    def network_urls(self) -> list[str]:
        return [u for u in self.requests if not u.startswith(LOCAL_SCHEMES)]


class Page:
    """One tab of a headless Chromium; `evaluate` runs JavaScript in the loaded page."""

    def __init__(self, socket: Any) -> None:
        self.socket, self.next_id, self.events = socket, 0, []

    def send(self, method: str, **params: Any) -> dict:
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        if any(e.get("method") == method for e in self.events):
            return
        self.socket.settimeout(timeout)
        while time.monotonic() < deadline:
            message = json.loads(self.socket.recv())
            self.events.append(message)
            if message.get("method") == method:
                return
        raise TimeoutError(f"no {method} within {timeout} s")

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")


def visit(html_file: Path, checks: dict[str, str], timeout: float = 60.0) -> tuple[PageVisit, dict[str, Any]]:
    """Load `html_file` in a fresh headless Chromium; returns the visit and each JavaScript check's value."""
    import websocket

    # Chromium's helper processes may still be writing the profile as it stops: a throwaway, so cleanup is lenient
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        command = [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0"]
        browser = subprocess.Popen(
            [*command, "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + timeout
            while not (port_file.is_file() and port_file.read_text().strip()):
                if browser.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"chromium did not start (exit {browser.poll()})")
                time.sleep(0.1)
            port = int(port_file.read_text().split()[0])
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
                target = next(t for t in json.loads(response.read()) if t["type"] == "page")
            socket = websocket.create_connection(
                target["webSocketDebuggerUrl"], timeout=timeout, suppress_origin=True
            )
            try:
                page = Page(socket)
                page.send("Network.enable")
                page.send("Page.enable")
                page.send("Page.navigate", url=html_file.resolve().as_uri())
                page.wait_for("Page.loadEventFired", timeout)
                values = {name: page.evaluate(js) for name, js in checks.items()}
                shot = page.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
                screenshot = html_file.with_suffix(".png")
                screenshot.write_bytes(__import__("base64").b64decode(shot["data"]))
            finally:
                socket.close()
        finally:
            stop(browser, timeout=10)
    requests = [
        e["params"]["request"]["url"] for e in page.events if e.get("method") == "Network.requestWillBeSent"
    ]
    by_id = {
        e["params"]["requestId"]: e["params"]["request"]["url"]
        for e in page.events
        if e.get("method") == "Network.requestWillBeSent"
    }
    failed = [
        by_id.get(e["params"]["requestId"], "?")
        for e in page.events
        if e.get("method") == "Network.loadingFailed"
    ]
    return PageVisit(requests, failed, screenshot), values
