"""Dead letters grouped by error type and message fingerprint, with requeue and purge.

The groups are read when the panel opens, when "Refresh" is pressed and after each action, on
the kernel's main thread (grouping reads every dead record, which is too much for every
refresh); the poller only updates the live dead count in the title. Purge asks for confirmation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import ipywidgets as w
from taskq_widgets.model import DashboardModel
from taskq_widgets.views import esc

import taskq
from taskq.admin import DeadGroup

log = logging.getLogger("taskq.dashboard")

TASKS_SHOWN = 20
"""Tasks listed when a group is expanded; the group buttons act on all of them."""


def retention_text(settings: taskq.Settings, trimmed: int) -> str:
    """Say how long dead letters are kept and how many retention has removed, so that
    trimming is never silent."""
    rules = []
    if settings.dead_retention_s is not None:
        rules.append(f"for {settings.dead_retention_s / 86400:g} days"
                     if settings.dead_retention_s >= 86400
                     else f"for {settings.dead_retention_s:g} s")
    if settings.dead_max_count is not None:
        rules.append(f"at most the newest {settings.dead_max_count:,} per queue")
    kept = " and ".join(rules) if rules else "until requeued or purged"
    return (f"Retention: dead letters are kept {kept}; {trimmed:,} removed by retention so "
            "far in this queue.")


class DeadLettersView:
    def __init__(self, app: taskq.App, model: DashboardModel) -> None:
        self.app = app
        self.queue = w.Dropdown(options=[], description="Queue", layout=w.Layout(width="220px"))
        self.refresh_button = w.Button(description="Refresh", icon="refresh",
                                       layout=w.Layout(width="100px"))
        self.count = w.HTML()
        self.retention = w.HTML()
        self.status = w.HTML()
        self.confirm_text = w.HTML()
        self.confirm_yes = w.Button(description="Confirm", button_style="danger")
        self.confirm_no = w.Button(description="Cancel")
        self.confirm_box = w.HBox([self.confirm_text, self.confirm_yes, self.confirm_no],
                                  layout=w.Layout(display="none"))
        self.groups = w.VBox()
        self._pending: Callable[[], str] | None = None
        self._queues: tuple[str, ...] = ()
        self._syncing = False
        self.refresh_button.on_click(lambda _b: self.reload())
        self.queue.observe(self._on_pick, names="value")
        self.confirm_yes.on_click(lambda _b: self._confirm(True))
        self.confirm_no.on_click(lambda _b: self._confirm(False))
        self.widget = w.VBox([w.HBox([self.queue, self.refresh_button, self.count]),
                              self.retention, self.confirm_box, self.status, self.groups])
        model.observe(self._on_frame, names="frame")

    def _on_pick(self, _change: Any) -> None:
        # A pick by the person reloads; a change made by the poller (new queue list) must not,
        # since the poller thread only assigns values.
        if not self._syncing:
            self.reload()

    def _on_frame(self, change: Any) -> None:
        frame = change["new"]
        queues = tuple(q.name for q in frame.queues)
        if queues != self._queues:
            self._queues = queues
            current = self.queue.value
            self._syncing = True
            try:
                self.queue.options = list(queues)
                self.queue.value = current if current in queues else (queues or (None,))[0]
            finally:
                self._syncing = False
            if not self.groups.children:
                self.status.value = ('<div class="tq-muted">Press Refresh to group the dead '
                                     'letters of the selected queue.</div>')
        dead = {q.name: q.dead for q in frame.queues}
        shown = self.queue.value
        self.count.value = (f'<span class="tq-muted" data-dead="{dead.get(shown, 0)}">'
                            f'{dead.get(shown, 0):,} dead in {esc(shown)} now</span>'
                            if shown else "")
        view = frame.snapshot.queues.get(shown) if shown else None
        trimmed = view.counters.get("dead_trimmed", 0) if view else 0
        self.retention.value = (f'<div class="tq-muted" data-dead-trimmed="{trimmed}">'
                                f'{esc(retention_text(self.app.settings, trimmed))}</div>')

    def reload(self, keep_status: bool = False) -> None:
        """Read and draw the groups of the selected queue; clear the status line unless
        ``keep_status`` (an action's result stays visible)."""
        queue = self.queue.value
        if not queue:
            self.groups.children = ()
            return
        try:
            groups = self.app.dead_groups(queue)
        except Exception as exc:  # noqa: BLE001 - Redis down: say so in the panel
            self.status.value = f'<div class="tq-error">Cannot read dead letters: {esc(exc)}</div>'
            return
        self.groups.children = tuple(self._group_box(queue, g) for g in groups) or (
            w.HTML('<div class="tq-muted">No dead letters in this queue.</div>'),)
        if not keep_status:
            self.status.value = ""

    def _group_box(self, queue: str, group: DeadGroup) -> w.VBox:
        summary = w.HTML(f'<div data-group="{group.fingerprint}" data-count="{group.count}">'
                         f'<b>{group.count:,}</b> × <b>{esc(group.error_type)}</b>: '
                         f'{esc(group.sample_message[:160])}</div>',
                         layout=w.Layout(width="460px"))
        expand = w.ToggleButton(description="Tasks", icon="chevron-down",
                                layout=w.Layout(width="90px"))
        requeue = w.Button(description="Requeue group", layout=w.Layout(width="130px"))
        purge = w.Button(description="Purge group", button_style="danger",
                         layout=w.Layout(width="110px"))
        body = w.VBox(layout=w.Layout(display="none", margin="0 0 0 24px"))
        ids = list(group.task_ids)

        def toggle(change: Any) -> None:
            if change["new"] and not body.children:
                body.children = tuple(self._task_row(queue, task_id, group)
                                      for task_id in ids[:TASKS_SHOWN])
            body.layout.display = "flex" if change["new"] else "none"

        expand.observe(toggle, names="value")
        requeue.on_click(lambda _b: self._run(lambda: self._requeue(queue, ids)))
        purge.on_click(lambda _b: self._ask(
            f"Purge {len(ids):,} dead task(s) of {group.error_type} for good?",
            lambda: self._purge(queue, ids)))
        return w.VBox([w.HBox([summary, expand, requeue, purge]), body])

    def _task_row(self, queue: str, task_id: str, group: DeadGroup) -> w.HBox:
        label = w.HTML(f'<span class="tq-task" data-dead-task="{esc(task_id)}">{esc(task_id)}'
                       f'</span> <span class="tq-muted">{esc(group.error_type)}</span>',
                       layout=w.Layout(width="420px"))
        requeue = w.Button(description="Requeue", layout=w.Layout(width="90px"))
        purge = w.Button(description="Purge", button_style="danger",
                         layout=w.Layout(width="80px"))
        requeue.on_click(lambda _b: self._run(lambda: self._requeue(queue, [task_id])))
        purge.on_click(lambda _b: self._ask(f"Purge dead task {task_id} for good?",
                                            lambda: self._purge(queue, [task_id])))
        return w.HBox([label, requeue, purge])

    def _requeue(self, queue: str, ids: list[str]) -> str:
        moved = self.app.requeue_dead(queue, ids)
        return f"Requeued {moved:,} task(s) in {queue}."

    def _purge(self, queue: str, ids: list[str]) -> str:
        purged = self.app.purge_dead(queue, ids)
        return f"Purged {purged:,} task(s) from {queue}."

    def _ask(self, question: str, action: Callable[[], str]) -> None:
        self._pending = action
        self.confirm_text.value = f"<b>{esc(question)}</b>"
        self.confirm_box.layout.display = "flex"

    def _confirm(self, yes: bool) -> None:
        action, self._pending = self._pending, None
        self.confirm_box.layout.display = "none"
        if yes and action is not None:
            self._run(action)

    def _run(self, action: Callable[[], str]) -> None:
        try:
            message = action()
        except Exception as exc:  # noqa: BLE001 - show every failure in the panel
            log.warning("dead letter action failed error=%s: %s", type(exc).__name__, exc)
            self.status.value = f'<div class="tq-error">{esc(type(exc).__name__)}: {esc(exc)}</div>'
            return
        self.status.value = f'<div class="tq-muted">{esc(message)}</div>'
        self.reload(keep_status=True)
