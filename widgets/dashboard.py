"""The live dashboard: the model, its poller, a reaper, the views, and the optional demo.

``launch()`` is what ``notebooks/dashboard.ipynb`` runs. With no Redis URL (argument or
``TASKQ_REDIS_URL``) it uses the embedded backend and starts the built-in demo: in-process
workers and a load generator that the page controls. With a URL it shows the real queues and the
workers of every process; ``TASKQ_DASHBOARD_DEMO=1`` adds the demo there too.

The dashboard runs a reaper for every queue, so tasks of crashed workers recover even when no
live worker serves their queue.
"""

from __future__ import annotations

import atexit
import logging
import os
import tempfile
from typing import Any

import ipywidgets as w
import redis
from taskq_widgets.activity import ActivityView, TaskPanel
from taskq_widgets.controls import ControlsView
from taskq_widgets.dead import DeadLettersView
from taskq_widgets.model import DEFAULT_REFRESH_S, DashboardModel, Poller
from taskq_widgets.pipeline import PipelineView
from taskq_widgets.session import PageSession, SessionWatch
from taskq_widgets.views import (
    STYLE,
    ChartsView,
    HeaderView,
    TilesView,
    WorkersView,
    panel_title,
)

import taskq
from taskq.connection import mask_url, resolve_url
from taskq.playground import DEMO_SETTINGS, LoadGenerator, Playground
from taskq.reaper import Reaper

log = logging.getLogger("taskq.dashboard")

DEMO_ENV = "TASKQ_DASHBOARD_DEMO"
LOG_ENV = "TASKQ_DASHBOARD_LOG"
SOCKET_TIMEOUT_S = 3.0
"""A real Redis that stops responding fails a refresh after this long, so the banner shows."""


def open_app(redis_url: str | None = None, settings: taskq.Settings = DEMO_SETTINGS
             ) -> tuple[taskq.App, str | None]:
    """Open an App for the dashboard; return it with the label to show for its backend.

    On a real Redis the client gets socket timeouts, so a server that hangs shows as
    unreachable instead of freezing the page.
    """
    url = resolve_url(redis_url)
    if url is None:
        return taskq.App(settings=settings), None
    app = taskq.App(url, settings=settings)
    app.backend  # noqa: B018 - validates the URL with the engine's clear errors
    client = redis.Redis.from_url(url, socket_timeout=SOCKET_TIMEOUT_S,
                                  socket_connect_timeout=SOCKET_TIMEOUT_S,
                                  socket_keepalive=True, health_check_interval=10)
    return taskq.App(settings=settings, client=client), mask_url(url)


class Dashboard:
    """Every panel over one model. ``start`` reads once, then polls; ``close`` stops it all."""

    def __init__(self, app: taskq.App, *, playground: Playground | None = None,
                 backend_label: str | None = None, refresh_s: float = DEFAULT_REFRESH_S,
                 queues: list[str] | None = None) -> None:
        self.app = app
        self.playground = playground
        self.model = DashboardModel(app, queues=queues, backend_label=backend_label)
        self.poller = Poller(self.model, refresh_s)
        self.reaper = None if playground is not None and playground.reaper is not None else \
            Reaper(app, app.queues, f"dashboard:{os.getpid()}")
        generator = playground.generator if playground is not None else LoadGenerator(app)

        self.header = HeaderView(self.model, demo=playground is not None)
        self.tiles = TilesView(self.model)
        self.pipeline = PipelineView(self.model)
        self.controls = ControlsView(app, self.model, playground, generator)
        self.workers = WorkersView(self.model)
        self.charts = ChartsView(self.model)
        self.task_panel = TaskPanel(app)
        self.activity = ActivityView(self.model, self.task_panel)
        self.dead = DeadLettersView(app, self.model)
        self.session = PageSession()
        self.watch = SessionWatch(self.session, on_silence=self.suspend, on_return=self.resume)

        half = w.Layout(flex="1 1 480px", min_width="420px", margin="0 16px 0 0")
        self.widget = w.VBox([
            w.HTML(STYLE), self.header.widget, self.tiles.widget,
            w.HBox([w.VBox([panel_title("Pipeline"), self.pipeline.widget], layout=half),
                    w.VBox([panel_title("Controls"), self.controls.widget], layout=half)],
                   layout=w.Layout(flex_flow="row wrap")),
            panel_title("Workers"), self.workers.widget,
            panel_title("Charts"), self.charts.widget,
            w.HBox([w.VBox([panel_title("Activity log"), self.activity.widget], layout=half),
                    w.VBox([panel_title("Why is this task not running?"),
                            self.task_panel.widget], layout=half)],
                   layout=w.Layout(flex_flow="row wrap")),
            panel_title("Dead letters"), self.dead.widget, self.session,
        ], layout=w.Layout(padding="8px"))
        self.widget.add_class("tq-root")

    def start(self) -> None:
        """Start the demo (if any) and the reaper, read once on this thread, then poll."""
        if self.playground is not None:
            self.playground.start()
            self.controls.sync_demo()
        if self.reaper is not None:
            self.reaper.start()
        self.model.refresh()
        self.dead.reload()
        self.poller.start()
        self.watch.start()
        log.info("dashboard started backend=%s demo=%s", self.model.backend_label or
                 self.app.backend, self.playground is not None)

    def suspend(self) -> None:
        """Stop polling, the reaper and the demo (the page went away); ``resume`` restarts."""
        self.poller.stop()
        if self.reaper is not None:
            self.reaper.stop()
        if self.playground is not None:
            self.playground.stop()
        log.info("dashboard suspended")

    def resume(self) -> None:
        if self.playground is not None:
            self.playground.start(load=True)
        if self.reaper is not None:
            self.reaper.start()
        self.poller.start()
        log.info("dashboard resumed")

    def close(self) -> None:
        """Stop everything, the page watch included; idempotent."""
        self.watch.stop()
        self.suspend()
        log.info("dashboard closed")


def _log_to_file() -> str:
    """Send the engine's log lines to a file: in a kernel, stderr would land in the page."""
    path = os.environ.get(LOG_ENV) or os.path.join(
        tempfile.gettempdir(), f"taskq-dashboard-{os.getpid()}.log")
    root = logging.getLogger("taskq")
    if not any(getattr(h, "taskq_dashboard", False) for h in root.handlers):
        handler = logging.FileHandler(path)
        handler.setFormatter(logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s %(threadName)s: %(message)s"))
        handler.taskq_dashboard = True  # type: ignore[attr-defined]
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        root.propagate = False
    return path


def launch(redis_url: str | None = None, *, demo: bool | None = None,
           refresh_s: float = DEFAULT_REFRESH_S, display: bool = True, **demo_options: Any
           ) -> Dashboard:
    """Build, start and display the dashboard; returns it (call ``close()`` to stop it).

    ``demo`` defaults to True on the embedded backend and to ``TASKQ_DASHBOARD_DEMO=1`` on a
    real Redis. ``demo_options`` go to ``taskq.playground.Playground`` (workers, concurrency,
    rate_per_s, seed, run_time_ms, failure_rate, ...).
    """
    log_path = _log_to_file()
    url = resolve_url(redis_url)
    if demo is None:
        demo = url is None or os.environ.get(DEMO_ENV, "") == "1"
    app, label = open_app(url)
    playground = None
    if demo:
        options = {"workers": 3, "concurrency": 2, "rate_per_s": 4.0, "seed": 7,
                   "run_time_ms": 500.0, "failure_rate": 0.08, **demo_options}
        playground = Playground(app, **options)
    dashboard = Dashboard(app, playground=playground, backend_label=label, refresh_s=refresh_s)
    dashboard.start()
    atexit.register(dashboard.close)
    log.info("dashboard log file path=%s", log_path)
    if display:
        from IPython.display import display as show
        show(dashboard.widget)
    return dashboard
