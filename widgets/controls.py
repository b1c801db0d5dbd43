"""Controls: enqueue a burst, drive the demo (load, pool size, crash a worker), resize a real
worker, and pause or resume a queue.

Callbacks run on the kernel's main thread and report into a status line, never by printing.
Bursts enqueue the synthetic task of ``taskq.playground``; on a real Redis, workers of other
processes run them only if they serve that task (``taskq worker --app taskq.playground``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import ipywidgets as w
from taskq_widgets.model import DashboardModel
from taskq_widgets.views import esc

import taskq
from taskq.playground import Burst, LoadGenerator, Playground

log = logging.getLogger("taskq.dashboard")

NARROW = w.Layout(width="220px")


def _set_options(dropdown: w.Dropdown, options: tuple[str, ...]) -> None:
    """Replace a dropdown's options, keeping its value when still offered, else the first."""
    current = dropdown.value
    dropdown.options = list(options)
    if current in options:
        dropdown.value = current
    elif options:
        dropdown.value = options[0]


class ControlsView:
    """All controls in one panel; ``playground`` is None when the dashboard runs no demo."""

    def __init__(self, app: taskq.App, model: DashboardModel, playground: Playground | None,
                 generator: LoadGenerator) -> None:
        self.app = app
        self.playground = playground
        self.generator = generator
        self.status = w.HTML()
        style = {"description_width": "90px"}

        self.count = w.BoundedIntText(value=100, min=1, max=100_000, description="count",
                                      style=style, layout=NARROW)
        self.priority = w.IntSlider(value=5, min=0, max=9, description="priority", style=style,
                                    layout=w.Layout(width="260px"))
        self.delay = w.BoundedFloatText(value=0.0, min=0, max=3600, description="delay s",
                                        style=style, layout=NARROW)
        self.failure = w.FloatSlider(value=0.1, min=0, max=1, step=0.05,
                                     description="failure rate", style=style,
                                     layout=w.Layout(width="260px"))
        self.run_time = w.BoundedFloatText(value=200, min=0, max=60_000,
                                           description="run time ms", style=style,
                                           layout=NARROW)
        self.burst_button = w.Button(description="Enqueue burst", button_style="primary")
        self.burst_button.on_click(lambda _b: self._act(self._burst))
        burst_box = w.VBox([w.HTML("<b>Burst</b>"), self.count, self.priority, self.delay,
                            self.failure, self.run_time, self.burst_button])

        self.queue = w.Dropdown(options=[], description="queue", style=style, layout=NARROW)
        self.pause_button = w.Button(description="Pause", icon="pause")
        self.resume_button = w.Button(description="Resume", icon="play")
        self.pause_button.on_click(lambda _b: self._act(lambda: self._pause(True)))
        self.resume_button.on_click(lambda _b: self._act(lambda: self._pause(False)))
        self.queue_state = w.HTML()
        queue_box = w.VBox([w.HTML("<b>Queue</b>"), self.queue,
                            w.HBox([self.pause_button, self.resume_button]), self.queue_state])

        self.worker = w.Dropdown(options=[], description="worker", style=style, layout=NARROW)
        boxes = [burst_box, queue_box]
        if playground is not None:
            boxes.append(self._demo_box(playground, style))
        else:
            self.slots = w.BoundedIntText(value=2, min=1, max=1024, description="slots",
                                          style=style, layout=NARROW)
            resize = w.Button(description="Resize worker")
            resize.on_click(lambda _b: self._act(self._resize_remote))
            boxes.append(w.VBox([w.HTML("<b>Worker</b>"), self.worker, self.slots, resize]))
        for box in boxes:
            box.layout.margin = "0 24px 8px 0"
        self.widget = w.VBox([w.HBox(boxes, layout=w.Layout(flex_flow="row wrap")),
                              self.status])
        self._queues: tuple[str, ...] = ()
        self._workers: tuple[str, ...] = ()
        model.observe(self._on_frame, names="frame")

    def _demo_box(self, playground: Playground, style: dict[str, str]) -> w.VBox:
        self.load = w.ToggleButton(value=playground.generator.running, description="Load on",
                                   icon="play", layout=w.Layout(width="120px"))
        self.rate = w.FloatLogSlider(value=max(playground.generator.rate_per_s, 0.1), base=10,
                                     min=-1, max=3.5, step=0.05, description="tasks/s",
                                     style=style, layout=w.Layout(width="280px"))
        self.pool_size = w.IntSlider(value=playground.pool.size, min=0, max=8,
                                     description="workers", style=style,
                                     layout=w.Layout(width="260px"))
        self.kill_button = w.Button(description="Stop abruptly", button_style="danger",
                                    icon="bolt")
        self.load.observe(lambda c: self._act(lambda: self._toggle_load(c["new"])),
                          names="value")
        self.rate.observe(lambda c: self._act(lambda: self._set_rate(c["new"])), names="value")
        self.pool_size.observe(lambda c: self._act(lambda: self._resize_pool(c["new"])),
                               names="value")
        self.kill_button.on_click(lambda _b: self._act(self._kill))
        self._label_load()
        return w.VBox([w.HTML("<b>Demo</b>"), w.HBox([self.load]), self.rate, self.pool_size,
                       self.worker, self.kill_button])

    # Live options: assigned only when the lists change.

    def _on_frame(self, change: Any) -> None:
        frame = change["new"]
        queues = tuple(q.name for q in frame.queues)
        if queues != self._queues:
            self._queues = queues
            _set_options(self.queue, queues)
        workers = tuple(c.id for c in frame.workers if c.state != "offline")
        if workers != self._workers:
            self._workers = workers
            _set_options(self.worker, workers)
        paused = [q.name for q in frame.queues if q.paused]
        self.queue_state.value = (f'<span class="tq-muted" data-paused="{",".join(paused)}">'
                                  f'paused: {esc(", ".join(paused) or "none")}</span>')

    def sync_demo(self) -> None:
        """Show the demo's running state (call after the demo starts)."""
        if self.playground is None:
            return
        self.load.value = self.playground.generator.running
        self.pool_size.value = self.playground.pool.size
        self._label_load()

    # Actions.

    def _act(self, action: Callable[[], str]) -> None:
        try:
            message = action()
        except (taskq.TaskqError, ValueError) as exc:
            self.status.value = f'<div class="tq-error">{esc(exc)}</div>'
            return
        except Exception as exc:  # noqa: BLE001 - Redis down and the like: show it
            log.warning("control failed error=%s: %s", type(exc).__name__, exc)
            self.status.value = f'<div class="tq-error">{esc(type(exc).__name__)}: {esc(exc)}</div>'
            return
        self.status.value = f'<div class="tq-muted" data-status="ok">{esc(message)}</div>'

    def _burst(self) -> str:
        queue = self.queue.value or self.generator.queue
        burst = Burst(count=int(self.count.value), priority=int(self.priority.value),
                      delay_s=float(self.delay.value), failure_rate=float(self.failure.value),
                      run_time_ms=float(self.run_time.value), queue=queue)
        handles = self.generator.burst(burst)
        return f"Enqueued {len(handles):,} task(s) in {queue} at priority {burst.priority}."

    def _pause(self, pause: bool) -> str:
        queue = self.queue.value
        if not queue:
            return "No queue yet: enqueue something first."
        if pause:
            self.app.pause(queue)
            return f"Paused {queue}: workers stop claiming from it."
        self.app.resume(queue)
        return f"Resumed {queue}."

    def _resize_remote(self) -> str:
        worker = self.worker.value
        if not worker:
            return "No live worker to resize."
        self.app.send_worker_command(worker, {"resize": int(self.slots.value)})
        return f"Asked {worker} for {self.slots.value} slot(s); it applies at its next heartbeat."

    def _toggle_load(self, on: bool) -> str:
        assert self.playground is not None
        if on:
            self.playground.generator.start()
        else:
            self.playground.generator.stop()
        self._label_load()
        return "Load generator " + ("started." if on else "stopped.")

    def _label_load(self) -> None:
        on = self.load.value
        self.load.description = "Load on" if on else "Load off"
        self.load.icon = "pause" if on else "play"
        self.load.button_style = "success" if on else ""

    def _set_rate(self, rate: float) -> str:
        assert self.playground is not None
        self.playground.generator.set_rate(round(rate, 2))
        return f"Load set to {rate:.1f} task(s) per second."

    def _resize_pool(self, size: int) -> str:
        assert self.playground is not None
        running = self.playground.pool.resize(size)
        return f"Demo pool now runs {len(running)} worker(s)."

    def _kill(self) -> str:
        assert self.playground is not None
        worker = self.worker.value
        if not worker:
            return "No live worker to stop."
        if worker not in self.playground.pool.ids():
            return f"{worker} does not run in this demo; only demo workers can be stopped here."
        self.playground.pool.kill(worker)
        self.pool_size.value = self.playground.pool.size
        return (f"Stopped {worker} abruptly: it goes offline after "
                f"{self.app.settings.worker_dead_after_s:g} s and its tasks recover when their "
                f"leases expire ({self.app.settings.lease_s:g} s).")
