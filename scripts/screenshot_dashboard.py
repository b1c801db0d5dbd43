"""Regenerate docs/images/dashboard.png, the README's picture of the live dashboard.

    python scripts/screenshot_dashboard.py [--output docs/images/dashboard.png]

Starts ``taskq dashboard`` on a free loopback port with the embedded demo, lets the demo run,
sends a burst with failures so that retries and dead letters show, opens one task in the
"why is this task not running?" panel, and saves a screenshot taken by Debian's Chromium
(``/usr/bin/chromium``). Requests that leave 127.0.0.1 are blocked. The server and the browser
are stopped by process id at the end.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEWPORT = {"width": 1400, "height": 2500}
WARM_UP_MS = 15_000
AFTER_BURST_MS = 8_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the dashboard server did not start on port {port}")
        time.sleep(0.2)


def shoot(url: str, output: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(
                "http://127.0.0.1") else r.abort())
            page.goto(url, wait_until="commit", timeout=120_000)
            page.wait_for_selector('[data-tile="enqueued"]', timeout=120_000)
            page.wait_for_timeout(WARM_UP_MS)

            failure = page.locator(".widget-inline-hbox").filter(has_text="failure rate")
            failure.locator(".widget-readout").fill("0.4")
            failure.locator(".widget-readout").press("Enter")
            page.get_by_role("button", name="Enqueue burst").click()
            page.wait_for_timeout(AFTER_BURST_MS)

            page.get_by_role("button", name="Refresh").click()
            page.locator("a[data-task]").first.click()
            page.wait_for_selector("[data-explain]", timeout=20_000)
            page.wait_for_timeout(1_000)
            output.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(output))
            page.unroute("**/*")
            page.goto("about:blank")  # lets Voilà shut the kernel down
            page.wait_for_timeout(1_000)
        finally:
            browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "images" / "dashboard.png")
    options = parser.parse_args()
    if not os.path.exists(CHROMIUM):
        raise SystemExit(f"{CHROMIUM} is missing: apt-get install -y chromium")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "TASKQ_REDIS_URL"}
    server = subprocess.Popen([sys.executable, "-m", "taskq", "dashboard", "--port", str(port)],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for_port(port, server)
        shoot(f"http://127.0.0.1:{port}/", options.output)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(10)
    print(f"saved {options.output}")


if __name__ == "__main__":
    main()
