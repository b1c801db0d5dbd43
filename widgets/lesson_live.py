"""Live lesson panels: a bounded poller and a worker pool you resize and crash.

A ``LivePoller`` calls its ``tick`` in a daemon thread every ``interval_s`` seconds and stops by
itself after ``max_seconds``; ``tick`` only reads Redis and assigns widget traits (chart data,
label values), it never displays anything. ``stop_all()`` stops every poller still running, so
a notebook's last cell can end them all.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import ipywidgets as w
from taskq_widgets.lesson_charts import Chart
from taskq_widgets.lesson_controls import STYLE, WIDE

import taskq
from taskq.playground import Playground

log = logging.getLogger("taskq.lab.widgets")

_running: set[LivePoller] = set()
_running_lock = threading.Lock()


class LivePoller:
    """Runs ``tick()`` every ``interval_s`` seconds until stopped or ``max_seconds`` pass."""

    def __init__(self, tick: Callable[[], None], interval_s: float = 0.5,
                 max_seconds: float = 120.0, name: str = "lesson-poller") -> None:
        self.tick = tick
        self.interval_s = interval_s
        self.max_seconds = max_seconds
        self.name = name
        self.ticks = 0
        self.errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"taskq-{self.name}",
                                        daemon=True)
        with _running_lock:
            _running.add(self)
        self._thread.start()

    def stop(self, join_s: float = 5.0) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(join_s)
        self._thread = None
        with _running_lock:
            _running.discard(self)

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                self.tick()
                self.ticks += 1
            except Exception as exc:  # noqa: BLE001 - a failed refresh must not end the panel
                self.errors += 1
                log.warning("lesson poller tick failed poller=%s errors=%d error=%s: %s",
                            self.name, self.errors, type(exc).__name__, exc)
            self._stop.wait(self.interval_s)
        log.info("lesson poller ended poller=%s ticks=%d", self.name, self.ticks)


def stop_all() -> int:
    """Stop every poller still running; returns how many were stopped."""
    with _running_lock:
        pollers = list(_running)
    for poller in pollers:
        poller.stop()
    return len(pollers)


class LivePoolPanel:
    """A ``taskq.playground`` pool on one queue, with controls and a chart that follows it.

    Controls: number of workers (each with ``concurrency`` slots), the load in tasks per
    second, and a button that kills the busiest worker abruptly. The chart shows throughput per
    second, ready depth, tasks in flight, workers online and tasks recovered from expired
    leases. The load generator and the poller stop by themselves after ``max_seconds``.
    """

    def __init__(self, app: taskq.App, *, queue: str = "live", workers: int = 2,
                 concurrency: int = 2, rate_per_s: float = 10.0, run_time_ms: float = 300.0,
                 seed: int = 7, max_seconds: float = 120.0, interval_s: float = 0.5) -> None:
        self.app = app
        self.queue = queue
        self.playground = Playground(
            app, workers=workers, concurrency=concurrency, rate_per_s=rate_per_s, seed=seed,
            queue=queue, run_time_ms=run_time_ms, failure_rate=0.0, delayed_fraction=0.0,
            duration_s=max_seconds)
        self.samples: list[dict[str, float]] = []
        self._t0 = time.monotonic()
        self._syncing = False

        self.workers = w.IntSlider(value=workers, min=0, max=6, description="workers",
                                   style=STYLE, layout=WIDE, continuous_update=False)
        self.rate = w.FloatSlider(value=rate_per_s, min=0, max=60, step=1,
                                  description="load (tasks/s)", style=STYLE, layout=WIDE,
                                  continuous_update=False)
        self.kill_button = w.Button(description="Kill busiest worker", icon="bolt",
                                    button_style="danger")
        self.status = w.HTML()
        self.workers.observe(self._on_workers, names="value")
        self.rate.observe(lambda change: self.playground.generator.set_rate(change["new"]),
                          names="value")
        self.kill_button.on_click(lambda _button: self.kill_busiest())

        self.chart = Chart(rows=1, cols=2, height=340, subplot_titles=(
            "Tasks per second (last 30 s)", "Queue and workers (per poll)"))
        self.chart.axes(x_title="seconds ago", row=1, col=1)
        self.chart.axes(x_title="seconds since start", row=1, col=2)
        self._draw([], [], [], [])
        self.poller = LivePoller(self._tick, interval_s, max_seconds, name="live-pool")
        self.widget = w.VBox([w.HBox([w.VBox([self.workers, self.rate]),
                                      w.VBox([self.kill_button, self.status])]),
                              self.chart.widget])

    def start(self) -> None:
        self._t0 = time.monotonic()
        self.playground.start()
        self.poller.start()

    def stop(self) -> None:
        self.poller.stop()
        self.playground.stop()

    def _on_workers(self, change: dict[str, Any]) -> None:
        if not self._syncing:
            self.playground.pool.resize(int(change["new"]))

    def kill_busiest(self, wait_s: float = 0.0) -> str | None:
        """Kill the running worker that has the most leased tasks (the oldest on a tie).

        With ``wait_s`` > 0, first wait up to that many seconds for a worker to lease a task,
        so that the kill leaves something to recover. Returns the worker's id, or None when no
        worker runs.
        """
        deadline = time.monotonic() + wait_s
        while True:
            ids = self.playground.pool.ids()
            if not ids:
                self.status.value = "no worker is running"
                return None
            snap = taskq.take_snapshot(self.app, [self.queue])
            held = {worker.id: len(worker.tasks) for worker in snap.workers}
            if any(held.get(worker_id, 0) for worker_id in ids) or time.monotonic() >= deadline:
                break
            time.sleep(0.02)
        victim = max(ids, key=lambda worker_id: (held.get(worker_id, 0), -ids.index(worker_id)))
        self.playground.pool.kill(victim)
        self._syncing = True
        try:
            self.workers.value = self.playground.pool.size
        finally:
            self._syncing = False
        self.status.value = (f"killed {victim} holding {held.get(victim, 0)} task(s): its "
                             f"leases expire after {self.app.settings.lease_s:g} s, then a "
                             "reaper recovers them")
        return victim

    def _tick(self) -> None:
        snap = taskq.take_snapshot(self.app, [self.queue], rate_seconds=31)
        view = snap.queues[self.queue]
        online = sum(1 for worker in snap.workers if worker.state != "offline")
        sample = {"t_s": round(time.monotonic() - self._t0, 2), "ready": view.ready,
                  "active": view.active, "workers_online": online,
                  "succeeded": view.counters.get("succeeded", 0),
                  "recovered": view.counters.get("recovered", 0)}
        self.samples.append(sample)
        # The newest second is still filling up, so the chart stops one second earlier.
        self._draw(view.rate.get("s", [])[:-1], view.rate.get("e", [])[:-1],
                   [s["t_s"] for s in self.samples[-240:]], self.samples[-240:])

    def _draw(self, succeeded: list[int], enqueued: list[int], times: list[float],
              recent: list[dict[str, float]]) -> None:
        # The first call, from the constructor, creates every trace on the main thread, so
        # the poller only ever replaces trace data.
        seconds_ago = list(range(-len(succeeded), 0))
        with self.chart.batch():
            self.chart.line("succeeded/s", seconds_ago, succeeded, colour_name="succeeded")
            self.chart.line("enqueued/s", seconds_ago, enqueued, dash="dot",
                            colour_name="normal")
            for name, key, colour_name in (("ready", "ready", "low"),
                                           ("in flight", "active", "normal"),
                                           ("workers online", "workers_online", "B"),
                                           ("recovered", "recovered", "dead")):
                self.chart.line(name, times, [s[key] for s in recent], row=1, col=2,
                                colour_name=colour_name)

    def wait_for(self, predicate: Callable[[dict[str, float]], bool],
                 timeout_s: float) -> dict[str, float] | None:
        """Wait until a sample satisfies ``predicate``; returns it, or None after the timeout."""
        deadline = time.monotonic() + timeout_s
        seen = 0
        while time.monotonic() < deadline:
            for sample in self.samples[seen:]:
                if predicate(sample):
                    return sample
            seen = len(self.samples)
            time.sleep(0.05)
        return None
