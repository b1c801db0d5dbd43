"""Control: pause and resume a queue; cancel a ready, scheduled, retrying or running task."""

from __future__ import annotations

import threading
import time

import pytest

import taskq
from tests.conftest import with_settings
from tests.helpers import (
    Stepper,
    counters,
    depths,
    events,
    promote_all,
    ready_ids,
    structures_of,
    wait_for,
    worker_running,
)


@pytest.fixture
def control_app(clocked_app: taskq.App) -> taskq.App:
    clocked_app.task("ok")(lambda *args: "fine")
    clocked_app.task("fails", max_retries=3, backoff_min_s=5, backoff_max_s=5)(lambda: 1 / 0)
    return clocked_app


def test_a_paused_queue_accepts_tasks_but_serves_none(control_app: taskq.App) -> None:
    """Pause stops claims, not enqueues; resume serves the waiting tasks in order."""
    app = control_app
    assert app.pause("default") is True
    assert app.pause("default") is False
    handles = [app.enqueue("ok", (i,)) for i in range(3)]

    assert Stepper(app).drain() == []
    assert ready_ids(app) == [h.id for h in handles]
    assert taskq.take_snapshot(app).queues["default"].paused

    assert app.resume("default") is True
    assert app.resume("default") is False
    assert Stepper(app).drain() == [h.id for h in handles]
    assert [e.kind for e in events(app) if e.kind in ("paused", "resumed")] == [
        "paused", "resumed"]


def test_pause_lets_running_tasks_finish(control_app: taskq.App) -> None:
    """Pausing does not touch a task already claimed: it still records its outcome."""
    app = control_app
    handle = app.enqueue("ok")
    stepper = Stepper(app)
    task = stepper.claim(1)[0]

    app.pause("default")
    stepper.settle(stepper.run(task))

    assert handle.state() is taskq.State.SUCCEEDED


def test_resume_wakes_an_idle_worker_at_once(redis_url: str | None) -> None:
    """A worker blocked on a paused queue starts the waiting tasks as soon as it resumes,
    without waiting out its idle block."""
    app = taskq.App(redis_url, settings=with_settings(idle_block_s=2.0))
    app.task("ok")(lambda: "fine")
    app.pause("default")
    handle = app.enqueue("ok")

    with worker_running(app):
        time.sleep(0.3)  # the worker finds nothing to claim and blocks
        assert handle.state() is taskq.State.READY
        resumed = time.monotonic()
        app.resume("default")
        assert handle.result(timeout_s=4) == "fine"
        assert time.monotonic() - resumed < 1.0


def test_cancel_a_ready_task(control_app: taskq.App) -> None:
    """A ready task leaves its ready list and never runs; its record says cancelled."""
    app = control_app
    doomed, kept = app.enqueue("ok", (1,)), app.enqueue("ok", (2,))

    assert app.cancel(doomed.id) == "cancelled"

    assert structures_of(app, "default", doomed.id) == ["finished"]
    assert Stepper(app).drain() == [kept.id]
    with pytest.raises(taskq.TaskFailedError, match="cancelled"):
        doomed.result(timeout_s=1)
    assert counters(app)["cancelled"] == 1
    assert [e.task_id for e in events(app, kind="cancelled")] == [doomed.id]


def test_cancel_a_scheduled_task(control_app: taskq.App, fake_clock: taskq.FakeClock) -> None:
    """A scheduled task leaves the scheduled set, so the promoter never brings it back."""
    app = control_app
    handle = app.enqueue("ok", delay_s=10)

    assert app.cancel(handle.id) == "cancelled"
    fake_clock.advance(10)

    assert promote_all(app) == 0
    assert handle.state() is taskq.State.CANCELLED
    assert structures_of(app, "default", handle.id) == ["finished"]


def test_cancel_a_task_waiting_to_retry(control_app: taskq.App,
                                        fake_clock: taskq.FakeClock) -> None:
    """A task between retries is cancelled like a scheduled one; its last error stays."""
    app = control_app
    handle = app.enqueue("fails")
    Stepper(app).step()
    assert handle.state() is taskq.State.RETRYING

    assert app.cancel(handle.id) == "cancelled"
    fake_clock.advance(5)

    assert promote_all(app) == 0
    rec = handle.record()
    assert rec.state is taskq.State.CANCELLED and rec.error["type"] == "ZeroDivisionError"
    assert depths(app)["scheduled"] == 0


def test_cancel_a_finished_task_reports_its_state(control_app: taskq.App) -> None:
    """A task that already ended cannot be cancelled; the call says how it ended."""
    app = control_app
    handle = app.enqueue("ok")
    Stepper(app).step()

    assert app.cancel(handle.id) == "succeeded"
    assert handle.state() is taskq.State.SUCCEEDED
    with pytest.raises(taskq.TaskNotFoundError):
        app.cancel("never-enqueued", queue="default")


def _cancellable(started: threading.Event, fail_on_cancel: bool) -> str:
    started.set()
    context = taskq.current_task()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if context.cancelled():
            if fail_on_cancel:
                raise RuntimeError("stopped: cancelled")
            return "stopped early"
        time.sleep(0.01)
    return "ran to the end"


def test_cancel_a_running_task_reaches_its_body(app: taskq.App) -> None:
    """A running task gets a cancel request; its body sees it at the next heartbeat and may
    stop early, which ends the task with what it returned."""
    started = threading.Event()
    app.task("long")(lambda: _cancellable(started, fail_on_cancel=False))
    handle = app.enqueue("long")

    with worker_running(app):
        assert started.wait(5)
        assert app.cancel(handle.id) == "requested"
        assert handle.record().cancel_requested
        assert handle.result(timeout_s=5) == "stopped early"

    assert [e.kind for e in events(app) if e.kind.startswith("cancel")] == ["cancel_requested"]


def test_a_running_task_that_fails_after_a_cancel_is_not_retried(app: taskq.App) -> None:
    """A body that stops by raising after a cancel request ends cancelled: the request is
    not lost to a retry that would run the task again."""
    started = threading.Event()
    app.task("long", max_retries=3, backoff_min_s=0)(
        lambda: _cancellable(started, fail_on_cancel=True))
    handle = app.enqueue("long")

    with worker_running(app):
        assert started.wait(5)
        app.cancel(handle.id)
        wait_for(lambda: handle.state().terminal, timeout_s=5, message="the task to end")
        time.sleep(0.2)

    rec = handle.record()
    assert (rec.state, rec.attempts) == (taskq.State.CANCELLED, 1)
    assert rec.error["message"] == "stopped: cancelled"
    assert structures_of(app, "default", handle.id) == ["finished"]
    assert len(events(app, kind="started", task_id=handle.id)) == 1
    assert counters(app)["cancelled"] == 1 and "retried" not in counters(app)
