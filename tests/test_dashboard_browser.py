"""The dashboard in a real browser: ``taskq dashboard`` serves it, Debian's Chromium shows it.

One scenario on the embedded demo, since starting Voilà and its kernel is the expensive part:
the page loads, tiles and charts grow, worker cards show busy and idle, a burst raises
"enqueued" by its count, a worker stopped abruptly shows offline and its task recovered, the
console stays clean, and leaving the page shuts its kernel down. Every request that does not go
to 127.0.0.1 is blocked; console errors caused only by those blocked requests are ignored.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.conftest import ROOT, free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
LOCAL = "http://127.0.0.1"
BURST = 37
PAGE_LOAD_MS = 90_000

pytestmark = pytest.mark.slow


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path


def kernels_of(pid: int) -> list[psutil.Process]:
    """The kernel processes below a server process."""
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return [p for p in children if "ipykernel" in " ".join(_cmdline(p))]


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return []


@pytest.fixture
def dashboard_server(tmp_path: Path) -> Iterator[Server]:
    """``taskq dashboard`` on a free port with the embedded demo; stopped after the test."""
    if not os.path.exists(CHROMIUM):
        message = f"{CHROMIUM} is missing: apt-get install -y chromium"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "TASKQ_REDIS_URL"}
    env["TASKQ_DASHBOARD_LOG"] = str(tmp_path / "kernel.log")
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "taskq", "dashboard", "--port", str(port)], cwd=ROOT,
            env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    server = Server(process, f"{LOCAL}:{port}/", log_path)
    try:
        deadline = time.monotonic() + 60
        while not _listening(port):
            assert process.poll() is None, f"server exited: {log_path.read_text()[-2000:]}"
            assert time.monotonic() < deadline, "server did not listen within 60 s"
            time.sleep(0.2)  # polling a port: no event to wait on
        yield server
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def reached(page: Any, expression: str, arg: Any = None, timeout_ms: int = 20_000) -> bool:
    """Wait for a JS condition in the page; False (not an exception) when time runs out."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    try:
        page.wait_for_function(expression, arg=arg, timeout=timeout_ms, polling=200)
        return True
    except PlaywrightTimeout:
        return False


TILE = "name => Number(document.querySelector(`[data-tile=\"${name}\"]`).dataset.value)"
SEQ = "() => Number(document.querySelector('.tq-tiles').dataset.seq)"
PLOT = "() => document.querySelector('.js-plotly-plot')._fullData"


def tile(page: Any, name: str) -> float:
    return float(page.evaluate(TILE, name))


def settled_tile(page: Any, name: str, refreshes: int = 3, timeout_s: float = 15) -> float:
    """The tile's value once it stayed the same over ``refreshes`` refreshes."""
    deadline = time.monotonic() + timeout_s
    value, seq = tile(page, name), page.evaluate(SEQ)
    while time.monotonic() < deadline:
        page.wait_for_timeout(300)
        now_value, now_seq = tile(page, name), page.evaluate(SEQ)
        if now_value != value:
            value, seq = now_value, now_seq
        elif now_seq - seq >= refreshes:
            return value
    raise AssertionError(f"tile {name} did not settle within {timeout_s} s")


def labelled(page: Any, container: str, label: str) -> Any:
    """The widget inside ``container`` boxes whose label reads exactly ``label``."""
    return page.locator(container).filter(
        has=page.locator("label", has_text=re.compile(f"^{re.escape(label)}$")))


def test_dashboard_live_in_browser(dashboard_server: Server, tmp_path: Path) -> None:
    """The served dashboard updates live, takes a burst, shows a crash and its recovery."""
    from playwright.sync_api import sync_playwright

    blocked: list[str] = []
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})

            def route(request_route: Any) -> None:
                url = request_route.request.url
                if url.startswith(LOCAL) or url.startswith("data:"):
                    request_route.continue_()
                else:
                    blocked.append(url)
                    request_route.abort()

            page.route("**/*", route)
            page.on("console", lambda m: errors.append(f"{m.text} @ {m.location.get('url')}")
                    if m.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
            # Voilà streams the page while the kernel runs the notebook: wait for widgets.
            page.goto(dashboard_server.url, wait_until="commit", timeout=PAGE_LOAD_MS)
            page.wait_for_selector('[data-tile="enqueued"]', timeout=PAGE_LOAD_MS)

            first_enqueued = tile(page, "enqueued")
            tiles_grow = reached(page, f"() => ({TILE})('enqueued') > {first_enqueued}")
            # The succeeded line: its window moves on and the work it counts grows.
            first_start = page.evaluate(f"() => ({PLOT})()[1].x0")
            first_done = page.evaluate(f"() => ({PLOT})()[1].y.reduce((a, b) => a + b, 0)")
            chart_grows = reached(
                page, f"() => ({PLOT})()[1].x0 !== {first_start!r} && "
                      f"({PLOT})()[1].y.reduce((a, b) => a + b, 0) > {first_done}")
            seen_busy = reached(page, "() => document.querySelector('[data-state=\"busy\"]')")
            seen_idle = reached(page, "() => document.querySelector('[data-state=\"idle\"]')",
                                timeout_ms=30_000)

            page.get_by_role("button", name="Load on").click()
            load_stopped = reached(
                page, "() => document.body.innerText.includes('Load generator stopped.')")
            before_burst = settled_tile(page, "enqueued")
            labelled(page, ".widget-inline-hbox", "count").locator("input").fill(str(BURST))
            labelled(page, ".widget-inline-hbox", "count").locator("input").press("Tab")
            run_time = labelled(page, ".widget-inline-hbox", "run time ms").locator("input")
            run_time.fill("4000")
            run_time.press("Tab")
            page.get_by_role("button", name="Enqueue burst").click()
            burst_counted = reached(
                page, f"() => ({TILE})('enqueued') >= {before_burst + BURST}")
            after_burst = settled_tile(page, "enqueued")

            # A worker that started a burst task less than a second ago still runs it.
            target = page.wait_for_function(
                """() => { for (const card of document.querySelectorAll('[data-state="busy"]')) {
                      const task = card.querySelector('[data-task]');
                      if (task && Number(task.dataset.elapsed) < 1.0)
                        return [card.dataset.worker, task.dataset.task];
                    } return null; }""", timeout=20_000, polling=100).json_value()
            worker_id, task_id = target
            page.locator(".widget-dropdown").filter(
                has=page.locator("label", has_text=re.compile("^worker$"))).locator(
                "select").select_option(worker_id)
            page.get_by_role("button", name="Stop abruptly").click()
            shown_offline = reached(
                page, "id => document.querySelector(`[data-worker=\"${id}\"]`)"
                      "?.dataset.state === 'offline'", worker_id)
            page.get_by_placeholder("task id contains").fill(task_id)
            shown_recovered = reached(
                page, "() => document.querySelector('tr[data-kind=\"recovered\"]')",
                timeout_ms=30_000)
            page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)

            # Leaving the page sends Voilà's shutdown beacon. Playwright holds back a beacon
            # that a route intercepts once its page is gone, so stop routing first.
            page.unroute("**/*")
            page.goto("about:blank")
            deadline = time.monotonic() + 30
            while kernels_of(dashboard_server.process.pid) and time.monotonic() < deadline:
                # Not time.sleep: the sync API runs route handlers (the beacon's too) only
                # while a Playwright call waits.
                page.wait_for_timeout(200)
            kernels_left = kernels_of(dashboard_server.process.pid)
        finally:
            browser.close()

    # Blocked requests log "Failed to load resource" at the blocked URL: only those are allowed.
    unexplained = [e for e in errors if not any(url in e for url in blocked)]
    assert tiles_grow, "the enqueued tile did not grow"
    assert chart_grows, "the chart data did not grow"
    assert seen_busy, "no worker card showed busy"
    assert seen_idle, "no worker card showed idle"
    assert load_stopped, "the load generator did not stop"
    assert burst_counted, "enqueued did not rise by the burst"
    assert after_burst - before_burst == BURST
    assert shown_offline, f"worker {worker_id} did not show offline"
    assert shown_recovered, f"task {task_id} was not shown recovered"
    assert unexplained == []
    assert kernels_left == [], "the kernel outlived its page"
