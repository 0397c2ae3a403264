"""The HTML report in a real browser: Debian's Chromium, headless, driven over the Chrome
DevTools protocol (a websocket, with websocket-client).

The test starts Chromium itself with a fresh profile in a temporary folder and
`--remote-debugging-port=0` (Chromium picks a free port and writes it to DevToolsActivePort in
the profile), opens the report as a file:// URL and checks, in the page as loaded:

- every chart is there, laid out with a size, and has drawn content;
- clicking a column's header (a real mouse click, dispatched by the browser's input pipeline)
  sorts the findings table, and a second click reverses it; typing in the filter hides rows;
- nothing was fetched but the file itself, and the console saw no error and no uncaught
  exception (console API calls, log entries such as CSP refusals, and exceptions are all
  collected from the moment the page starts loading; a deliberate console.error at the end
  proves the collection works).

Everything waits on events or polls with generous deadlines (a slow 2-core machine); no
assertion is about time. `make test` installs the package through
scripts/install-system-deps.sh; without it the test is skipped, except under CI.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websocket  # websocket-client
from e2e_helpers import stop, wait_for
from test_report_cli import ALERTS, ALL_CHARTS, full_report

CHROMIUM = shutil.which("chromium")
DEADLINE = 90.0

pytestmark = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="the `chromium` binary (Debian package chromium) is not on PATH; `make test` "
           "installs it")

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")


class DevTools:
    """A minimal Chrome DevTools protocol client for one page target: commands with their
    replies, and every event kept in arrival order."""

    def __init__(self, url: str) -> None:
        # Chromium refuses websocket clients that send an Origin it was not told to allow.
        self.ws = websocket.create_connection(url, timeout=DEADLINE, suppress_origin=True)
        self.events: list[dict[str, Any]] = []
        self._next_id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        ident = self._next_id
        self.ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        deadline = time.monotonic() + DEADLINE
        while True:
            message = self._receive(deadline, method)
            if message.get("id") == ident:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result

    def wait_event(self, method: str, since: int = 0) -> dict[str, Any]:
        """The first event `method` at index >= `since` of self.events, waiting for it."""
        deadline = time.monotonic() + DEADLINE
        seen = since
        while True:
            for event in self.events[seen:]:
                if event["method"] == method:
                    return event
            seen = len(self.events)
            self._receive(deadline, method)

    def evaluate(self, expression: str) -> Any:
        reply = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                          awaitPromise=True)
        if "exceptionDetails" in reply:
            raise AssertionError(f"{expression!r} threw: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def poll(self, expression: str, what: str) -> Any:
        """Evaluates `expression` until it is truthy (events keep being collected)."""
        deadline = time.monotonic() + DEADLINE
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {DEADLINE:.0f} s waiting for {what}")
            time.sleep(0.1)

    def click(self, selector: str) -> None:
        """A left click in the middle of the element, as the mouse would do it."""
        box = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " e.scrollIntoView({block: 'center', inline: 'center'});"
            " const r = e.getBoundingClientRect();"
            " return {x: r.left + r.width / 2, y: r.top + r.height / 2}; })()")
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=box["x"], y=box["y"],
                      button="left" if kind != "mouseMoved" else "none",
                      clickCount=1 if kind != "mouseMoved" else 0)

    def close(self) -> None:
        self.ws.close()

    def _receive(self, deadline: float, waiting_for: str) -> dict[str, Any]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"timed out after {DEADLINE:.0f} s waiting for {waiting_for}")
        self.ws.settimeout(remaining)
        message: dict[str, Any] = json.loads(self.ws.recv())
        if "method" in message:
            self.events.append(message)
        return message


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[DevTools]:
    if CHROMIUM is None:
        pytest.fail("chromium is not installed (scripts/install-system-deps.sh installs it)")
    profile = tmp_path / "profile"
    profile.mkdir()
    log = tmp_path / "chromium.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
             "--window-size=1400,1000", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        port_file = profile / "DevToolsActivePort"

        def port() -> int | None:
            lines = port_file.read_text().splitlines() if port_file.exists() else []
            return int(lines[0]) if lines and lines[0].isdigit() else None

        found = wait_for(port, "Chromium's DevTools port", timeout=DEADLINE, proc=proc, log=log)

        def page_target() -> str | None:
            with urllib.request.urlopen(f"http://127.0.0.1:{found}/json/list", timeout=10) as r:
                targets = json.load(r)
            pages = [t for t in targets if t.get("type") == "page"]
            return str(pages[0]["webSocketDebuggerUrl"]) if pages else None

        url = wait_for(page_target, "a page target", timeout=DEADLINE, proc=proc, log=log)
        tools = DevTools(url)
        try:
            yield tools
        finally:
            # Already gone, or hanging: stop() below ends it either way.
            with contextlib.suppress(Exception):
                tools.call("Browser.close")
            tools.close()
    finally:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            stop(proc)


def console_errors(events: list[dict[str, Any]]) -> list[str]:
    errors = []
    for event in events:
        params = event.get("params", {})
        if event["method"] == "Runtime.consoleAPICalled" and params.get("type") in (
                "error", "assert"):
            errors.append("console: " + " ".join(
                str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
        elif event["method"] == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            errors.append("exception: " + str(details.get("exception", {}).get(
                "description", details.get("text"))))
        elif event["method"] == "Log.entryAdded" and params.get("entry", {}).get(
                "level") == "error":
            entry = params["entry"]
            errors.append(f"log ({entry.get('source')}): {entry.get('text')} {entry.get('url')}")
    return errors


ROWS_JS = ("Array.from(document.querySelectorAll('#findings-table tbody tr'))"
           ".map(r => r.cells[{column}].textContent.trim())")


def test_the_report_renders_sorts_and_logs_no_error(browser: DevTools, tmp_path: Path) -> None:
    report = full_report(tmp_path)
    for domain in ("Runtime", "Log", "Page", "Network"):
        browser.call(f"{domain}.enable")
    since = len(browser.events)
    browser.call("Page.navigate", url=report.resolve().as_uri())
    browser.wait_event("Page.loadEventFired", since)
    browser.poll("document.readyState === 'complete' && document.title !== ''", "the page")

    charts = browser.evaluate("""
        Array.from(document.querySelectorAll('svg.chart')).map(svg => {
          const box = svg.getBoundingClientRect();
          const drawn = svg.querySelector('g').getBBox();
          return {name: svg.dataset.chart, width: box.width, height: box.height,
                  drawnWidth: drawn.width, drawnHeight: drawn.height,
                  shapes: svg.querySelectorAll('path, use').length};
        })""")
    assert {c["name"] for c in charts} == ALL_CHARTS
    assert len(charts) == len(ALL_CHARTS)
    for chart in charts:
        assert chart["width"] > 100 and chart["height"] > 50, chart
        assert chart["drawnWidth"] > 0 and chart["drawnHeight"] > 0, chart
        assert chart["shapes"] > 10, chart

    rule_column = 1
    before = browser.evaluate(ROWS_JS.format(column=rule_column))
    assert len(before) == len(ALERTS) + 1
    browser.click("#findings-table thead th:nth-child(2) button")
    browser.poll("document.querySelector('#findings-table thead th:nth-child(2)')"
                 ".getAttribute('aria-sort') === 'ascending'", "the table sorted by rule")
    ascending = browser.evaluate(ROWS_JS.format(column=rule_column))
    assert ascending != before
    assert ascending == sorted(before)
    browser.click("#findings-table thead th:nth-child(2) button")
    browser.poll("document.querySelector('#findings-table thead th:nth-child(2)')"
                 ".getAttribute('aria-sort') === 'descending'", "the table sorted in reverse")
    assert browser.evaluate(ROWS_JS.format(column=rule_column)) == sorted(before, reverse=True)

    # Money sorts as numbers, largest first on the first click.
    browser.click("#findings-table thead th:nth-child(13) button")
    browser.poll("document.querySelector('#findings-table thead th:nth-child(13)')"
                 ".getAttribute('aria-sort') === 'descending'", "the table sorted by amount")
    amounts = [float(v.replace(",", "")) for v in browser.evaluate(ROWS_JS.format(column=12))]
    assert amounts == sorted(amounts, reverse=True)
    assert amounts[0] == 3399.34

    browser.evaluate("document.getElementById('findings-filter').focus()")
    browser.call("Input.insertText", text="overpaid")
    browser.poll("document.getElementById('findings-shown').textContent === '1'",
                 "the filter to leave one row")
    visible = browser.evaluate("Array.from(document.querySelectorAll('#findings-table tbody "
                               "tr')).filter(r => !r.hidden).length")
    assert visible == 1

    fetched = [e["params"]["request"]["url"] for e in browser.events
               if e["method"] == "Network.requestWillBeSent"]
    assert fetched and all(u.startswith(("file:", "data:")) for u in fetched), fetched
    assert console_errors(browser.events) == []
    # The collection is live: a deliberate error is seen.
    probe = len(browser.events)
    browser.evaluate("console.error('report-test-probe')")
    browser.wait_event("Runtime.consoleAPICalled", probe)
    assert console_errors(browser.events[probe:]) == ["console: report-test-probe"]
