"""Answer "why is this task not running?" in plain words, from the engine's own data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from taskq.codec import utc_iso
from taskq.errors import TaskNotFoundError
from taskq.settings import MAX_PRIORITY
from taskq.snapshot import take_snapshot
from taskq.task import State

if TYPE_CHECKING:
    from taskq.app import App


@dataclass
class Explanation:
    """The task's state, a one-paragraph answer, and the facts behind it."""

    task_id: str
    state: str
    answer: str
    facts: dict[str, Any] = field(default_factory=dict)


def _ago(now_ms: int, then_ms: int | None) -> str:
    if then_ms is None:
        return "at an unknown time"
    delta_s = (now_ms - then_ms) / 1000
    when = "from now" if delta_s < 0 else "ago"
    return f"{utc_iso(then_ms)} ({abs(delta_s):.1f} s {when})"


def explain(app: App, task_id: str, queue: str | None = None) -> Explanation:
    """Explain where a task is and what it waits for."""
    try:
        rec = app.get(task_id, queue)
    except TaskNotFoundError:
        return Explanation(task_id, "missing",
                           f"No task {task_id!r} exists: it was never enqueued, or its record "
                           "was removed when its retention ended.")
    snap = take_snapshot(app, [rec.queue])
    now_ms = snap.now_ms
    view = snap.queues[rec.queue]
    facts: dict[str, Any] = {"queue": rec.queue, "priority": rec.priority,
                             "attempts": rec.attempts, "max_retries": rec.max_retries}

    if rec.state in (State.SCHEDULED, State.RETRYING):
        why = "is scheduled" if rec.state is State.SCHEDULED else (
            f"failed attempt {rec.attempts} of {rec.max_retries + 1} and waits to retry")
        error = f" The last error was {rec.error.get('type')}: {rec.error.get('message')}." \
            if rec.error else ""
        answer = f"The task {why}; it becomes ready at {_ago(now_ms, rec.due_ms)}.{error}"
        return Explanation(task_id, rec.state.value, answer, facts)

    if rec.state is State.READY:
        return _explain_ready(app, rec.queue, task_id, rec.priority, snap, view, facts)

    if rec.state is State.ACTIVE:
        worker = next((w for w in snap.workers if w.id == rec.worker), None)
        lease = next((t.lease_deadline_ms for t in view.active_tasks if t.task_id == task_id),
                     None)
        if worker is None:
            alive = "that worker is unknown (removed or never registered)"
        elif worker.state == "offline":
            alive = (f"that worker is offline (last heartbeat {worker.heartbeat_age_s:.1f} s "
                     "ago), so the reaper returns the task to ready when the lease expires")
        else:
            alive = f"that worker is alive (heartbeat {worker.heartbeat_age_s:.1f} s ago)"
        answer = (f"The task is running: worker {rec.worker} has held it since "
                  f"{_ago(now_ms, rec.started_ms)}, attempt {rec.attempts}; {alive}. "
                  f"The lease runs until {_ago(now_ms, lease)}.")
        facts["worker"] = rec.worker
        return Explanation(task_id, rec.state.value, answer, facts)

    if rec.state is State.DEAD:
        last_error = rec.error or {}
        answer = (f"The task is dead after {rec.attempts} attempt(s): {last_error.get('type')}: "
                  f"{last_error.get('message')}. Requeue it with `taskq dead requeue {task_id}`.")
        return Explanation(task_id, rec.state.value, answer, facts)

    answer = f"The task is {rec.state.value}; it finished at {_ago(now_ms, rec.finished_ms)}."
    return Explanation(task_id, rec.state.value, answer, facts)


def _explain_ready(app: App, queue: str, task_id: str, priority: int, snap: Any, view: Any,
                   facts: dict[str, Any]) -> Explanation:
    higher = sum(n for p, n in view.ready_by_priority.items() if p > priority)
    ready_key = app.keys.queue(queue).ready(priority)
    position = app.client.lpos(ready_key, task_id)
    length = view.ready_by_priority.get(priority, 0)
    # FIFO claims from the right end, so the tasks ahead are those to the right of this one.
    same = 0 if position is None else max(length - 1 - int(position), 0)
    if view.lifo and position is not None:
        same = int(position)
    servers = [w for w in snap.workers if w.state != "offline" and queue in w.queues]
    facts.update(higher_priority_ahead=higher, same_priority_ahead=same,
                 live_workers=[w.id for w in servers], paused=view.paused)
    reasons = []
    if view.paused:
        reasons.append(f"queue {queue!r} is paused (resume it with `taskq resume {queue}`)")
    if not servers:
        reasons.append(f"no live worker serves queue {queue!r}")
    ahead = higher + same
    if ahead:
        reasons.append(f"{higher} task(s) of higher priority and {same} of the same priority "
                       f"({priority} of {MAX_PRIORITY}) are ahead of it")
    if not reasons:
        reasons.append("nothing holds it back: a worker should claim it within moments")
    answer = "The task is ready and waiting: " + "; ".join(reasons) + "."
    return Explanation(task_id, "ready", answer, facts)
