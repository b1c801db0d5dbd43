"""Measure what one dashboard refresh costs under load: the benchmark page of the dashboard.

    python -m taskq_widgets.benchmark --redis-url redis://127.0.0.1:6379/10 --rate 5000

Use an empty database: the run enqueues into queue ``bench`` and leaves its data behind. It
1. starts load: a producer that enqueues the synthetic task at ``rate / 3`` tasks per second
   (each task makes three transitions: enqueued, started, succeeded) and worker processes that
   run them (``taskq worker --app taskq.playground``);
2. starts ``taskq dashboard --no-demo`` on that Redis and opens it in Debian's Chromium;
3. after a warm-up, measures for ``--seconds``: the transitions per second (from the queue's
   counters), the kernel's CPU time per refresh (psutil on the kernel process, so message
   encoding and sending count too), the CPU time of all Chromium processes per refresh and
   the main thread's time per refresh split by kind (Chrome's performance metrics; the
   pipeline's animation included), and the delay from each refresh's snapshot to the moment
   the page shows it.

Everything started here is stopped by process id at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

import taskq
from taskq import playground

QUEUE = "bench"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
MAX_SECONDS = 120
# Chrome's cumulative main-thread times (wall time, so a busy machine inflates them), by the
# names this report gives them.
MAIN_THREAD_METRICS = {"TaskDuration": "all_tasks", "ScriptDuration": "script",
                       "LayoutDuration": "layout", "RecalcStyleDuration": "style"}

# Records, in the page, how long after its snapshot each refresh reached the DOM.
_LATENCY_JS = """() => {
  window.__tqLatency = [];
  const tiles = document.querySelector('.tq-tiles').parentElement;
  new MutationObserver(() => {
    const node = tiles.querySelector('.tq-tiles');
    if (node && node.dataset.nowMs) {
      window.__tqLatency.push(Date.now() - Number(node.dataset.nowMs));
    }
  }).observe(tiles, { childList: true, subtree: true });
}"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _produce(app: taskq.App, tasks_per_s: float, stop: threading.Event) -> None:
    """Enqueue no-op synthetic tasks at ``tasks_per_s`` in batches every 50 ms until stopped."""
    started = time.monotonic()
    sent = 0
    seed = 0
    while not stop.is_set():
        due = int((time.monotonic() - started) * tasks_per_s) - sent
        if due > 0:
            calls = [taskq.Call(playground.WORK_TASK, (0.0, 0.0, seed + i), queue=QUEUE)
                     for i in range(due)]
            app.enqueue_many(calls)
            sent += due
            seed += due
        stop.wait(0.05)


def _transitions(app: taskq.App) -> int:
    """Transitions so far: each enqueue, each start and each end of an attempt."""
    counters = {k.decode(): int(v) for k, v in
                app.client.hgetall(app.keys.queue(QUEUE).counters).items()}
    ends = sum(counters.get(k, 0) for k in ("succeeded", "failed"))
    return counters.get("enqueued", 0) + 2 * ends


def _kernel(server_pid: int) -> psutil.Process:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for child in psutil.Process(server_pid).children(recursive=True):
            if "ipykernel" in " ".join(child.cmdline()):
                return child
        time.sleep(0.2)
    raise RuntimeError("no kernel process appeared within 60 s")


def _chromium_cpu_s() -> float:
    """CPU seconds used so far by the Chromium processes this process started (all of them:
    browser, renderer, GPU and utility processes)."""
    total = 0.0
    for child in psutil.Process().children(recursive=True):
        try:
            if "chrom" in child.name().lower():
                times = child.cpu_times()
                total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


def _machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = psutil.virtual_memory().total / 2**30
    return f"{os.cpu_count()} CPUs ({model or platform.processor()}), {memory_gib:.0f} GiB RAM"


def _versions() -> dict[str, str]:
    names = ("taskq-lab", "voila", "ipywidgets", "plotly", "anywidget", "playwright", "redis")
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "missing"
    out["chromium"] = subprocess.run([CHROMIUM, "--version"], capture_output=True,
                                     text=True, check=False).stdout.strip()
    return out


def run(redis_url: str, rate: float, seconds: float, warmup_s: float, workers: int
        ) -> dict[str, Any]:
    """Run the measurement and return its figures (see the module docstring)."""
    from playwright.sync_api import sync_playwright

    seconds = min(seconds, MAX_SECONDS)
    app = taskq.App(redis_url, settings=playground.DEMO_SETTINGS)
    playground.register_work_task(app, queue=QUEUE)
    env = {**os.environ, "TASKQ_REDIS_URL": redis_url}
    processes: list[subprocess.Popen[bytes]] = []
    stop = threading.Event()
    producer = threading.Thread(target=_produce, args=(app, rate / 3, stop), daemon=True)
    try:
        for _ in range(workers):
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "taskq", "--log-level", "WARNING", "worker", "--app",
                 "taskq.playground", "--queues", QUEUE, "--concurrency", "4", "--prefetch",
                 "50"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        producer.start()
        port = _free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "taskq", "dashboard", "--port", str(port), "--no-demo"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        processes.append(server)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(
                    "http://127.0.0.1") else r.abort())
                deadline = time.monotonic() + 60
                while True:
                    try:
                        page.goto(f"http://127.0.0.1:{port}/", wait_until="commit")
                        break
                    except Exception:  # noqa: BLE001 - the server is still starting
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.5)
                page.wait_for_selector('[data-tile="enqueued"]', timeout=120_000)
                kernel = _kernel(server.pid)
                page.wait_for_timeout(warmup_s * 1000)
                page.evaluate(_LATENCY_JS)
                cdp = page.context.new_cdp_session(page)
                cdp.send("Performance.enable")

                def main_thread_s() -> dict[str, float]:
                    metrics = cdp.send("Performance.getMetrics")["metrics"]
                    return {m["name"]: float(m["value"]) for m in metrics
                            if m["name"] in MAIN_THREAD_METRICS}

                refreshes = "() => Number(document.querySelector('[data-refreshes]')" \
                            ".dataset.refreshes)"
                cpu0, main0, n0 = sum(kernel.cpu_times()[:2]), main_thread_s(), page.evaluate(
                    refreshes)
                t0, moved0, chrome0 = time.monotonic(), _transitions(app), _chromium_cpu_s()
                page.wait_for_timeout(seconds * 1000)
                cpu1, main1, n1 = sum(kernel.cpu_times()[:2]), main_thread_s(), page.evaluate(
                    refreshes)
                t1, moved1, chrome1 = time.monotonic(), _transitions(app), _chromium_cpu_s()
                load = os.getloadavg()[0]
                latency = page.evaluate("() => window.__tqLatency")
                page.unroute("**/*")
                page.goto("about:blank")
            finally:
                browser.close()
    finally:
        stop.set()
        producer.join(5)
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
    count = max(n1 - n0, 1)
    elapsed = t1 - t0
    return {
        "transitions_per_s": round((moved1 - moved0) / elapsed),
        "refreshes_per_s": round(count / elapsed, 2),
        "kernel_cpu_ms_per_refresh": round((cpu1 - cpu0) * 1000 / count, 2),
        "browser_cpu_ms_per_refresh": round((chrome1 - chrome0) * 1000 / count, 1),
        "browser_main_thread_ms_per_refresh": {
            MAIN_THREAD_METRICS[k]: round((main1[k] - main0[k]) * 1000 / count, 1)
            for k in MAIN_THREAD_METRICS},
        "refresh_to_page_ms_p50": round(statistics.median(latency), 1) if latency else None,
        "refresh_to_page_ms_p95": round(statistics.quantiles(latency, n=20)[-1], 1)
        if len(latency) >= 20 else None,
        "seconds": round(elapsed, 1), "target_transitions_per_s": rate,
        "load_average_1min": round(load, 2),
        "machine": _machine(), "versions": _versions(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis-url", required=True, help="an empty Redis database")
    parser.add_argument("--rate", type=float, default=5000.0,
                        help="target transitions per second (default 5000)")
    parser.add_argument("--seconds", type=float, default=20.0,
                        help=f"measurement length, at most {MAX_SECONDS} s (default 20)")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds before measuring")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    options = parser.parse_args()
    print(json.dumps(run(options.redis_url, options.rate, options.seconds, options.warmup,
                         options.workers), indent=2))


if __name__ == "__main__":
    main()
