"""The activity log and the task panel.

The log shows the newest events of the model's event window, filtered by queue, kind and task id;
clicking a task id opens the task panel, which shows that task's record, its timeline (every
transition with time and worker) and the engine's answer to "why is this task not running?".
Filtering and opening run on the kernel's main thread (widget callbacks); the poller only
assigns the rows.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import anywidget
import ipywidgets as w
import traitlets
from taskq_widgets.frame import Frame
from taskq_widgets.model import DashboardModel
from taskq_widgets.views import esc

import taskq
from taskq.codec import utc_iso
from taskq.errors import TaskNotFoundError, TaskqError

log = logging.getLogger("taskq.dashboard")

ALL = "(all)"
SHOWN_ROWS = 60

_LOG_ESM = r"""
const COLOURS = { enqueued: "#868e96", scheduled: "#7048e8", promoted: "#7048e8",
  started: "#1c7ed6", succeeded: "#2f9e44", failed: "#e8590c", retry_scheduled: "#e8590c",
  dead: "#e03131", recovered: "#c2255c", released: "#c2255c", cancelled: "#495057" };
function clock(ms) {
  const d = new Date(ms);
  return d.toLocaleTimeString([], { hour12: false }) + "." + String(ms % 1000).padStart(3, "0");
}
function render({ model, el }) {
  const box = document.createElement("div");
  box.className = "tq-log";
  el.appendChild(box);
  function draw() {
    const rows = model.get("rows") || [];
    const table = document.createElement("table");
    table.className = "tq-table";
    table.innerHTML = "<thead><tr><th>time</th><th>kind</th><th>queue</th><th>task</th>" +
      "<th>worker</th><th>attempt</th><th>detail</th></tr></thead>";
    const body = document.createElement("tbody");
    for (const r of rows) {
      const tr = document.createElement("tr");
      tr.dataset.kind = r.kind;
      const cells = [clock(r.t_ms), r.kind, r.queue, null, r.worker, r.attempt || "", r.detail];
      cells.forEach((text, i) => {
        const td = document.createElement("td");
        if (i === 3) {
          if (r.task_id) {
            const a = document.createElement("a");
            a.href = "#";
            a.textContent = r.task_id.slice(0, 12);
            a.title = r.task_id;
            a.dataset.task = r.task_id;
            a.addEventListener("click", (ev) => {
              ev.preventDefault();
              model.send({ open: r.task_id, queue: r.queue });
            });
            td.appendChild(a);
          }
        } else {
          td.textContent = text;
        }
        if (i === 1) td.style.color = COLOURS[r.kind] || "#1f2933";
        tr.appendChild(td);
      });
      body.appendChild(tr);
    }
    table.appendChild(body);
    box.replaceChildren(table);
  }
  model.on("change:rows", draw);
  draw();
}
export default { render };
"""

_LOG_CSS = """
.tq-log { max-height: 340px; overflow-y: auto; font-family: system-ui, sans-serif; }
.tq-log .tq-table { border-collapse: collapse; font-size: 12px; width: 100%; }
.tq-log td, .tq-log th { padding: 2px 6px; border-bottom: 1px solid #eef0f2; text-align: left; }
.tq-log th { position: sticky; top: 0; background: #f8f9fa; }
.tq-log a { font-family: ui-monospace, monospace; color: #1971c2; }
"""


class EventTable(anywidget.AnyWidget):  # type: ignore[misc]
    """Rows of events; a click on a task id sends ``{"open": id, "queue": q}`` to the kernel."""

    _esm = _LOG_ESM
    _css = _LOG_CSS
    rows = traitlets.List(traitlets.Dict()).tag(sync=True)


def event_row(event: taskq.Event) -> dict[str, Any]:
    detail = " ".join(f"{k}={v}" for k, v in sorted(event.fields.items()))
    return {"t_ms": event.t_ms, "kind": event.kind, "queue": event.queue,
            "task_id": event.task_id, "worker": event.worker, "attempt": event.attempt,
            "detail": detail[:160]}


def filter_events(events: tuple[taskq.Event, ...], queue: str, kind: str, task_id: str,
                  limit: int = SHOWN_ROWS) -> list[taskq.Event]:
    """Events matching every set filter (``ALL`` or "" means any), newest first."""
    wanted_id = task_id.strip()
    out = []
    for event in events:
        if queue != ALL and event.queue != queue:
            continue
        if kind != ALL and event.kind != kind:
            continue
        if wanted_id and wanted_id not in event.task_id:
            continue
        out.append(event)
        if len(out) >= limit:
            break
    return out


class TaskPanel:
    """A task's record, timeline and explanation, for a typed or clicked task id."""

    def __init__(self, app: taskq.App) -> None:
        self.app = app
        self.task_id = w.Text(placeholder="task id", description="Task",
                              layout=w.Layout(width="360px"))
        self.explain_button = w.Button(description="Why is this task not running?",
                                       layout=w.Layout(width="250px"))
        self.output = w.HTML('<div class="tq-muted">Type a task id, or click one in the '
                             'activity log.</div>')
        self.explain_button.on_click(lambda _b: self.open(self.task_id.value.strip()))
        self.widget = w.VBox([w.HBox([self.task_id, self.explain_button]), self.output])

    def open(self, task_id: str, queue: str | None = None) -> None:
        """Show the explanation, the record and the timeline of ``task_id``."""
        if not task_id:
            self.output.value = '<div class="tq-error">Enter a task id first.</div>'
            return
        self.task_id.value = task_id
        try:
            self.output.value = self._render(task_id, queue or None)
        except TaskqError as exc:
            self.output.value = f'<div class="tq-error">{esc(exc)}</div>'
        except Exception as exc:  # noqa: BLE001 - Redis down: say so in the panel
            log.warning("task panel failed task=%s error=%s: %s", task_id, type(exc).__name__,
                        exc)
            self.output.value = (f'<div class="tq-error">Cannot read task {esc(task_id)}: '
                                 f'{esc(type(exc).__name__)}: {esc(exc)}</div>')

    def _render(self, task_id: str, queue: str | None) -> str:
        answer = taskq.explain(self.app, task_id, queue)
        parts = [f'<div class="tq-answer" data-explain="{esc(answer.state)}"><b>'
                 f'{esc(answer.state)}</b>: {esc(answer.answer)}</div>']
        try:
            rec = self.app.get(task_id, queue)
        except TaskNotFoundError:
            return "".join(parts)
        fields = {"name": rec.name, "queue": rec.queue, "priority": rec.priority,
                  "attempts": f"{rec.attempts} of {rec.max_retries + 1}",
                  "worker": rec.worker or "–", "args": json.dumps(rec.args),
                  "kwargs": json.dumps(rec.kwargs)}
        if rec.error:
            fields["error"] = f"{rec.error.get('type')}: {rec.error.get('message')}"
        if rec.result is not None:
            fields["result"] = json.dumps(rec.result)[:300]
        rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in fields.items())
        parts.append(f'<table class="tq-table" data-record="{esc(task_id)}">{rows}</table>')
        timeline = taskq.task_timeline(self.app, task_id, rec.queue)
        lines = "".join(
            f"<tr><td>{esc(utc_iso(e.t_ms))}</td><td>{esc(e.kind)}</td><td>{esc(e.worker)}</td>"
            f"<td>{e.attempt or ''}</td><td>{esc(event_row(e)['detail'])}</td></tr>"
            for e in timeline)
        parts.append('<div class="tq-panel-title">Timeline</div>'
                     f'<table class="tq-table" data-timeline="{len(timeline)}"><tr><th>time '
                     f'(UTC)</th><th>kind</th><th>worker</th><th>attempt</th><th>detail</th>'
                     f'</tr>{lines}</table>')
        return "".join(parts)


class ActivityView:
    """Filters plus the event table; the poller assigns rows, filters re-filter at once."""

    def __init__(self, model: DashboardModel, panel: TaskPanel) -> None:
        self.model = model
        self.panel = panel
        self.queue = w.Dropdown(options=[ALL], value=ALL, description="Queue",
                                layout=w.Layout(width="200px"))
        self.kind = w.Dropdown(options=[ALL], value=ALL, description="Kind",
                               layout=w.Layout(width="220px"))
        self.task_id = w.Text(placeholder="task id contains", layout=w.Layout(width="200px"))
        self.table = EventTable()
        self.note = w.HTML()
        for control in (self.queue, self.kind, self.task_id):
            control.observe(lambda _c: self._apply(), names="value")
        self.table.on_msg(self._on_msg)
        self.widget = w.VBox([w.HBox([self.queue, self.kind, self.task_id]), self.note,
                              self.table])
        self._kinds: set[str] = set()
        self._queues: set[str] = set()
        model.observe(lambda _c: self._apply(), names="frame")

    def _on_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if isinstance(content, dict) and isinstance(content.get("open"), str):
            self.panel.open(content["open"], content.get("queue") or None)

    def _apply(self) -> None:
        frame: Frame | None = self.model.frame
        if frame is None:
            return
        kinds = {e.kind for e in frame.events} | self._kinds
        queues = {q.name for q in frame.queues} | self._queues
        # Options change only when a new kind or queue appears, to keep traffic low.
        if kinds != self._kinds:
            self._kinds = kinds
            self.kind.options = [ALL, *sorted(kinds)]
        if queues != self._queues:
            self._queues = queues
            self.queue.options = [ALL, *sorted(queues)]
        shown = filter_events(frame.events, self.queue.value or ALL, self.kind.value or ALL,
                              self.task_id.value)
        self.table.rows = [event_row(e) for e in shown]
        skipped = (" More events arrived than one refresh reads, so the log shows the newest."
                   if frame.events_skipped else "")
        self.note.value = (f'<div class="tq-muted">{len(shown)} of the {len(frame.events)} '
                           f'newest events, as of {time.strftime("%H:%M:%S")}.{skipped}</div>')
