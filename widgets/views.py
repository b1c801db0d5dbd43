"""Views of the dashboard model: header, tiles, worker cards and the charts.

Each view builds its widgets once and, on every new frame, only assigns their values. HTML
views carry ``data-*`` attributes (``data-tile``, ``data-worker``, ``data-state``, ``data-health``)
that the browser test reads, so what is tested is what a person sees.
"""

from __future__ import annotations

import html
import time
from typing import Any

import ipywidgets as w
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from taskq_widgets.frame import OUTCOME_KINDS, PRIORITIES, Frame, TaskRow, bucket_labels
from taskq_widgets.model import DashboardModel

from taskq.snapshot import RATE_SECONDS

# One style sheet for every panel; an HTML widget's <style> applies to the whole page.
STYLE = """
<style>
.tq-root { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2933; }
.tq-panel-title { font-weight: 600; font-size: 15px; margin: 6px 0 4px 0; }
.tq-header { display: flex; flex-wrap: wrap; gap: 18px; align-items: baseline;
  padding: 8px 12px; background: #f4f6f8; border-radius: 6px; }
.tq-header .tq-title { font-size: 20px; font-weight: 700; }
.tq-header .tq-fact { font-size: 13px; color: #52606d; }
.tq-header .tq-fact b { color: #1f2933; }
.tq-dot { display: inline-block; width: 10px; height: 10px; border-radius: 5px; }
.tq-ok { background: #2f9e44; } .tq-down { background: #e03131; }
.tq-banner { margin-top: 6px; padding: 8px 12px; border-radius: 6px; background: #ffe3e3;
  color: #a51111; font-weight: 600; }
.tq-tiles { display: grid; grid-template-columns: repeat(7, minmax(96px, 1fr)); gap: 8px; }
.tq-tile { border: 1px solid #e4e7eb; border-radius: 6px; padding: 6px 8px; background: #fff; }
.tq-tile-label { font-size: 12px; color: #616e7c; }
.tq-tile-value { font-size: 20px; font-weight: 650; font-variant-numeric: tabular-nums; }
.tq-tile-note { font-size: 11px; color: #9aa5b1; }
.tq-cards { display: flex; flex-wrap: wrap; gap: 8px; }
.tq-card { width: 230px; border-radius: 6px; padding: 6px 8px; font-size: 12px;
  border: 1px solid #d9e2ec; border-left-width: 6px; background: #fff; }
.tq-card.tq-idle { border-left-color: #74c0fc; }
.tq-card.tq-busy { border-left-color: #f59f00; background: #fff9db; }
.tq-card.tq-offline { border-left-color: #868e96; background: #f1f3f5; color: #6b7280; }
.tq-card.tq-unknown { border-left-color: #e03131; }
.tq-card .tq-id { font-weight: 650; font-size: 13px; word-break: break-all; }
.tq-badge { display: inline-block; padding: 0 6px; border-radius: 8px; font-size: 11px;
  color: #fff; margin-left: 4px; }
.tq-badge.tq-idle { background: #339af0; } .tq-badge.tq-busy { background: #f08c00; }
.tq-badge.tq-offline { background: #868e96; } .tq-badge.tq-unknown { background: #e03131; }
.tq-task { font-family: ui-monospace, monospace; font-size: 11px; }
.tq-muted { color: #9aa5b1; }
.tq-table { border-collapse: collapse; font-size: 12px; width: 100%; }
.tq-table td, .tq-table th { padding: 2px 6px; border-bottom: 1px solid #eef0f2;
  text-align: left; vertical-align: top; }
.tq-answer { padding: 8px 10px; background: #e7f5ff; border-radius: 6px; font-size: 13px; }
.tq-error { color: #c92a2a; font-size: 12px; }
.tq-mono { font-family: ui-monospace, monospace; font-size: 11px; white-space: pre-wrap; }
</style>
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def fmt_count(value: float | int | None) -> str:
    if value is None:
        return "–"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "–"
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    return f"{value:.1f} ms" if value >= 1 else f"{value * 1000:.0f} µs"


def fmt_bytes(value: int | None) -> str:
    if value is None:
        return "n/a"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{size:.0f} B"
        size /= 1024
    return f"{size:.1f} GiB"


def panel_title(text: str) -> w.HTML:
    return w.HTML(f'<div class="tq-panel-title">{esc(text)}</div>')


class HeaderView:
    """Backend, Redis version, round-trip time, memory, refresh count, and the outage banner."""

    def __init__(self, model: DashboardModel, demo: bool) -> None:
        self.model = model
        self.demo = demo
        self.widget = w.HTML()
        model.observe(self._render, names=["frame", "connected", "health", "refresh_cpu_ms"])
        self._render()

    def _render(self, _change: Any = None) -> None:
        m = self.model
        h = m.health
        ok = m.connected
        facts = [
            ("backend", h.backend if h else "…"),
            ("version", (h.redis_version or "n/a") if h else "…"),
            ("round trip", fmt_ms(h.rtt_ms) if h and h.rtt_ms is not None else "–"),
            ("memory", fmt_bytes(h.used_memory_bytes) if h else "–"),
            ("refreshes", fmt_count(m.refreshes)),
            ("refresh CPU", "–" if m.refresh_cpu_ms is None else f"{m.refresh_cpu_ms:.1f} ms"),
        ]
        facts_html = "".join(f'<span class="tq-fact">{esc(k)} <b>{esc(v)}</b></span>'
                             for k, v in facts)
        mode = ' <span class="tq-fact">demo: in-process workers</span>' if self.demo else ""
        banner = ""
        if not ok:
            since = time.strftime("%H:%M:%S", time.localtime(m.down_since_s or time.time()))
            tried = time.strftime("%H:%M:%S", time.localtime(h.checked_at_s if h else
                                                             time.time()))
            banner = (f'<div class="tq-banner" data-banner="down">Redis is unreachable since '
                      f'{since} (last try {tried}); retrying every second. The figures below '
                      f'are from the last good refresh. Error: {esc(m.error[:300])}</div>')
        state = "ok" if ok else "down"
        self.widget.value = (
            f'<div class="tq-root" data-health="{state}" data-refreshes="{m.refreshes}">'
            f'<div class="tq-header">'
            f'<span class="tq-title">taskq dashboard</span>'
            f'<span class="tq-fact"><span class="tq-dot tq-{state}"></span> '
            f'<b>{"connected" if ok else "unreachable"}</b></span>{facts_html}{mode}'
            f'</div>{banner}</div>')


TILE_TEXT: dict[str, tuple[str, str]] = {
    "enqueued": ("enqueued", "total"), "ready": ("ready", "waiting now"),
    "scheduled": ("scheduled", "incl. retry waits"), "active": ("active", "leased now"),
    "succeeded": ("succeeded", "total"), "retrying": ("retrying", "waiting to retry now"),
    "dead": ("dead", "dead letters now"), "success_rate": ("success rate", "succeeded / ended"),
    "throughput_per_s": ("throughput now", f"succeeded per s, last {5} s"),
    "wait_p50_ms": ("queue wait p50", ""), "wait_p95_ms": ("queue wait p95", ""),
    "wait_p99_ms": ("queue wait p99", ""), "run_p50_ms": ("run time p50", ""),
    "run_p95_ms": ("run time p95", ""),
}


def tile_text(name: str, value: float | int | None) -> str:
    if name == "success_rate":
        return "–" if value is None else f"{value * 100:.1f} %"
    if name.endswith("_ms"):
        return fmt_ms(value)
    if name == "throughput_per_s":
        return f"{fmt_count(value)}/s"
    return fmt_count(value)


class TilesView:
    """The overview tiles; each carries its raw value in ``data-value``."""

    def __init__(self, model: DashboardModel) -> None:
        self.widget = w.HTML('<div class="tq-tiles"></div>')
        model.observe(self._render, names="frame")

    def _render(self, change: Any) -> None:
        frame: Frame = change["new"]
        cells = []
        for name, value in frame.tiles.items():
            label, note = TILE_TEXT[name]
            raw = "" if value is None else repr(value)
            cells.append(f'<div class="tq-tile" data-tile="{name}" data-value="{raw}">'
                         f'<div class="tq-tile-label">{esc(label)}</div>'
                         f'<div class="tq-tile-value">{esc(tile_text(name, value))}</div>'
                         f'<div class="tq-tile-note">{esc(note)}</div></div>')
        self.widget.value = (f'<div class="tq-tiles" data-seq="{frame.seq}" '
                             f'data-now-ms="{frame.now_ms}">{"".join(cells)}</div>')


def _task_line(row: TaskRow) -> str:
    if row.worker_state in ("offline", "unknown"):
        when = (f"lease ends in {row.lease_left_s:.1f} s" if row.lease_left_s > 0
                else "lease expired, recovering")
        status = f' <span class="tq-muted">awaiting recovery: {when}</span>'
    else:
        status = ""
    return (f'<div class="tq-task" data-task="{esc(row.task_id)}" '
            f'data-elapsed="{row.elapsed_s:.2f}">{esc(row.task_id[:12])} '
            f'{esc(row.name)} #{row.attempt} · {row.elapsed_s:.1f} s{status}</div>')


class WorkersView:
    """One card per worker, coloured by state, with the tasks it holds (the worker detail)."""

    def __init__(self, model: DashboardModel) -> None:
        self.widget = w.HTML('<div class="tq-cards"></div>')
        model.observe(self._render, names="frame")

    def _render(self, change: Any) -> None:
        frame: Frame = change["new"]
        cards = []
        for card in frame.workers:
            tasks = "".join(_task_line(r) for r in card.tasks) or \
                '<div class="tq-muted">no task</div>'
            cards.append(
                f'<div class="tq-card tq-{card.state}" data-worker="{esc(card.id)}" '
                f'data-state="{card.state}" data-tasks="{len(card.tasks)}">'
                f'<div><span class="tq-id">{esc(card.id)}</span>'
                f'<span class="tq-badge tq-{card.state}">{card.state}</span></div>'
                f'<div class="tq-muted">{esc(card.host)} pid {card.pid} · {esc(card.pool)} · '
                f'{card.concurrency} slot(s) · {esc(",".join(card.queues))}</div>'
                f'{tasks}<div>heartbeat {card.heartbeat_age_s:.1f} s ago · processed '
                f'{card.processed:,} · failed {card.failed:,}</div></div>')
        if frame.unowned:
            tasks = "".join(_task_line(r) for r in frame.unowned)
            cards.append(f'<div class="tq-card tq-unknown" data-worker="" data-state="unknown" '
                         f'data-tasks="{len(frame.unowned)}"><div><span class="tq-id">'
                         f'unknown worker</span></div>{tasks}</div>')
        summary = (f'<div class="tq-muted" data-busy="{frame.busy_workers}" '
                   f'data-inflight="{len(frame.in_flight)}">{len(frame.workers)} worker(s): '
                   f'{frame.busy_workers} busy, {len(frame.in_flight)} task(s) in flight</div>')
        if not frame.workers and not frame.unowned:
            cards.append('<div class="tq-muted">No worker has registered yet.</div>')
        self.widget.value = f'{summary}<div class="tq-cards">{"".join(cards)}</div>'


def _clock(ms: int) -> str:
    """Format a server time in ms as a date-axis value in the kernel's local time zone."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000))


OUTCOME_COLOURS = {"enqueued": "#868e96", "succeeded": "#2f9e44", "retried": "#f08c00",
                   "dead": "#e03131"}
PRIORITY_COLOURS = ["#5f3dc4", "#7048e8", "#845ef7", "#9775fa", "#1c7ed6", "#339af0",
                    "#22b8cf", "#20c997", "#94d82d", "#fcc419"]


class ChartsView:
    """One plotly FigureWidget with four subplots, built once and updated in a batch.

    Trace order: the throughput kinds (``OUTCOME_KINDS`` order), then one depth trace per
    priority (highest first), then the queue-wait and run-time histograms.
    """

    def __init__(self, model: DashboardModel) -> None:
        seconds = RATE_SECONDS - 1  # the snapshot's window less the current, partial second
        fig = make_subplots(
            rows=2, cols=2, vertical_spacing=0.16, horizontal_spacing=0.08,
            subplot_titles=("Throughput by outcome (per second)", "Ready depth per priority",
                            "Queue wait", "Run time"))
        for name in OUTCOME_KINDS.values():
            fig.add_trace(go.Scatter(name=name, mode="lines", x0=_clock(0), dx=1000,
                                     y=[0] * seconds,
                                     line={"color": OUTCOME_COLOURS[name], "width": 2},
                                     legendgroup="outcome"), row=1, col=1)

        for i, priority in enumerate(PRIORITIES):
            fig.add_trace(go.Scatter(name=f"p{priority}", mode="lines", x=[], y=[],
                                     stackgroup="depth",
                                     line={"color": PRIORITY_COLOURS[i], "width": 1},
                                     legendgroup="depth"), row=1, col=2)

        labels = bucket_labels()
        fig.add_trace(go.Bar(name="queue wait", x0=0, dx=1, y=[0] * len(labels),
                             marker_color="#1c7ed6", showlegend=False,
                             hovertext=labels), row=2, col=1)
        fig.add_trace(go.Bar(name="run time", x0=0, dx=1, y=[0] * len(labels),
                             marker_color="#7048e8", showlegend=False,
                             hovertext=labels), row=2, col=2)

        fig.update_layout(height=560, width=1200, margin={"l": 40, "r": 10, "t": 40, "b": 60},
                          template="plotly_white", legend={"orientation": "v"})
        fig.update_xaxes(type="date", tickformat="%H:%M:%S", row=1, col=1)
        fig.update_xaxes(type="date", tickformat="%H:%M:%S", row=1, col=2)
        step = max(len(labels) // 8, 1)
        ticks = {"tickmode": "array", "tickvals": list(range(0, len(labels), step)),
                 "ticktext": labels[::step], "tickangle": -45}
        fig.update_xaxes(**ticks, row=2, col=1)
        fig.update_xaxes(**ticks, row=2, col=2)
        self.figure = go.FigureWidget(fig)
        self.widget = self.figure
        self.n_outcomes = len(OUTCOME_KINDS)
        model.observe(self._render, names="frame")

    def _render(self, change: Any) -> None:
        frame: Frame = change["new"]
        data = self.figure.data
        # The throughput and histogram traces place points by x0 and dx, not by an x array:
        # the plotly 7.1 front end drops a trace's x array when an update carries its y alone.
        # Plotly sends only values that changed, so a quiet chart costs nothing. The depth
        # times change once a second, and a priority whose depth stayed 0 is hidden.
        times = [_clock(t) for t in frame.depth_times_ms]
        first_second_ms = frame.now_ms - frame.now_ms % 1000
        with self.figure.batch_update():
            for i, name in enumerate(OUTCOME_KINDS.values()):
                series = frame.throughput[name]
                data[i].x0 = _clock(first_second_ms - len(series) * 1000)
                data[i].y = series
            for j, priority in enumerate(PRIORITIES):
                trace = data[self.n_outcomes + j]
                depths = frame.depth_by_priority[priority]
                trace.visible = any(depths)
                trace.x = times
                trace.y = depths
            data[-2].y = frame.wait_hist
            data[-1].y = frame.run_hist

    def shown(self) -> dict[str, Any]:
        """What the figure holds now, by series name: for tests that compare it to a frame."""
        data = self.figure.data
        out: dict[str, Any] = {}
        for i, name in enumerate(OUTCOME_KINDS.values()):
            out[f"throughput:{name}"] = list(data[i].y)
        for j, priority in enumerate(PRIORITIES):
            out[f"depth:{priority}"] = list(data[self.n_outcomes + j].y)
        out["wait_hist"] = list(data[-2].y)
        out["run_hist"] = list(data[-1].y)
        return out
