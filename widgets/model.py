"""The dashboard's state as a traitlets model, and the poller thread that refreshes it.

The model holds the newest ``Frame`` and the connection state; views observe its traits and
update their widgets. ``refresh`` is one complete read: one health probe (a PING, plus INFO every
``info_every_s``), one snapshot, and the newest events since the last refresh. The poller only
calls ``refresh``, which only assigns traits: it never prints and never writes to an Output, so
nothing it does depends on which cell is executing.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from collections import deque
from dataclasses import replace
from typing import Any

import traitlets
from taskq_widgets.frame import Frame, FrameBuilder

import taskq
from taskq.health import Health, check_health

log = logging.getLogger("taskq.dashboard")

DEFAULT_REFRESH_S = 0.4
"""Target time between refreshes: 2.5 per second, so at least two even when one runs long."""

RETRY_DOWN_S = 1.0
"""Time between attempts while Redis does not respond."""

COST_EVERY = 10
COST_WINDOW = 50
"""The poller publishes the median CPU time of the last COST_WINDOW refreshes every
COST_EVERY refreshes."""


class DashboardModel(traitlets.HasTraits):
    """The newest frame plus connection health; every view reads only this."""

    frame = traitlets.Instance(Frame, allow_none=True)
    health = traitlets.Instance(Health, allow_none=True)
    connected = traitlets.Bool(True)
    down_since_s = traitlets.Float(None, allow_none=True)
    error = traitlets.Unicode("")
    refreshes = traitlets.Int(0)
    refresh_cpu_ms = traitlets.Float(None, allow_none=True)
    """Median thread CPU time of the newest refreshes, views included (set by the poller)."""

    def __init__(self, app: taskq.App, *, queues: list[str] | None = None,
                 backend_label: str | None = None, info_every_s: float = 5.0,
                 events_per_refresh: int = 50, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.app = app
        self.queues = queues
        self.backend_label = backend_label
        self.info_every_s = info_every_s
        self.builder = FrameBuilder()
        self.builder.window.per_stream = events_per_refresh
        self._last_info: Health | None = None
        self._lock = threading.Lock()

    def _probe(self) -> Health:
        due = self._last_info is None or (
            time.time() - self._last_info.checked_at_s >= self.info_every_s)
        health = check_health(self.app, with_info=due, backend=self.backend_label)
        if not health.ok:
            return health
        if due:
            self._last_info = health
            return health
        assert self._last_info is not None
        return replace(health, redis_version=self._last_info.redis_version,
                       used_memory_bytes=self._last_info.used_memory_bytes)

    def refresh(self) -> Frame | None:
        """Read once and publish the new frame; returns it, or None while Redis is unreachable.

        Never raises for a Redis error: the model turns ``connected`` false, keeps the last
        frame and records the error, and the next successful refresh clears them.
        """
        with self._lock:
            health = self._probe()
            if not health.ok:
                self._mark_down(health, health.error or "no response")
                return None
            try:
                snapshot = taskq.take_snapshot(self.app, self.queues)
                frame = self.builder.build(self.app, snapshot, health)
            except Exception as exc:  # noqa: BLE001 - any Redis failure shows as the banner
                self._mark_down(health, f"{type(exc).__name__}: {exc}")
                return None
            if not self.connected:
                log.info("dashboard reconnected backend=%s", health.backend)
            self.health = health
            self.connected = True
            self.down_since_s = None
            self.error = ""
            self.frame = frame
            self.refreshes += 1
            return frame

    def _mark_down(self, health: Health, error: str) -> None:
        if self.connected:
            log.warning("dashboard lost Redis backend=%s error=%s", health.backend, error)
            self.down_since_s = time.time()
        self.health = replace(health, ok=False, error=error)
        self.error = error
        self.connected = False


class Poller:
    """Calls ``model.refresh`` every ``interval_s`` seconds in a daemon thread.

    Keeps the thread CPU time and wall time of the newest refreshes (``cpu_ms``, ``wall_ms``),
    which include the views' updates, since observers run in this thread.
    """

    def __init__(self, model: DashboardModel, interval_s: float = DEFAULT_REFRESH_S,
                 keep: int = 500) -> None:
        self.model = model
        self.interval_s = interval_s
        self.cpu_ms: deque[float] = deque(maxlen=keep)
        self.wall_ms: deque[float] = deque(maxlen=keep)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="taskq-dashboard-poller",
                                        daemon=True)
        self._thread.start()
        log.info("dashboard poller started interval_s=%.2f", self.interval_s)

    def stop(self, join_s: float = 5.0) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(join_s)
        self._thread = None
        log.info("dashboard poller stopped")

    def _run(self) -> None:
        while not self._stop.is_set():
            wall0, cpu0 = time.perf_counter(), time.thread_time()
            try:
                frame = self.model.refresh()
            except Exception as exc:  # noqa: BLE001 - a view bug must not end the poller
                log.exception("dashboard refresh failed error=%s", type(exc).__name__)
                frame = None
            wall_s = time.perf_counter() - wall0
            if frame is not None:
                self.cpu_ms.append((time.thread_time() - cpu0) * 1000)
                self.wall_ms.append(wall_s * 1000)
                if len(self.cpu_ms) % COST_EVERY == 0:
                    self.model.refresh_cpu_ms = statistics.median(
                        list(self.cpu_ms)[-COST_WINDOW:])
            pause = self.interval_s - wall_s if frame is not None else RETRY_DOWN_S
            self._stop.wait(max(pause, 0.02))
