"""The worker pool: slots, resizing from the API and through Redis, graceful stop, kill."""

from __future__ import annotations

import logging
import threading
import time

import pytest

import taskq
from tests.helpers import (
    counters,
    depths,
    events,
    raw_record,
    ready_ids,
    structures_of,
    wait_for,
    worker_events,
    worker_running,
)


class Gate:
    """Task bodies that count how many run at once and wait until the test opens the gate."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.running = 0
        self.most = 0
        self._lock = threading.Lock()

    def body(self) -> str:
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            self.open.wait(10)
            return "through"
        finally:
            with self._lock:
                self.running -= 1


@pytest.fixture
def gate(app: taskq.App) -> Gate:
    gate = Gate()
    app.task("gated", max_retries=3)(gate.body)
    return gate


def active_count(app: taskq.App) -> int:
    return depths(app)["active"]


def test_slots_bound_how_many_tasks_run_at_once(app: taskq.App, gate: Gate) -> None:
    """A worker with N slots runs N tasks at once and never more."""
    handles = [app.enqueue("gated") for _ in range(5)]

    with worker_running(app, concurrency=3):
        wait_for(lambda: gate.running == 3, message="three tasks running")
        time.sleep(0.2)  # room for a fourth to start, if slots were not a bound
        assert gate.running == 3
        assert active_count(app) == 3
        gate.open.set()
        assert [h.result(timeout_s=5) for h in handles] == ["through"] * 5

    assert gate.most == 3


def test_resize_from_the_api_adds_and_retires_slots(app: taskq.App, gate: Gate) -> None:
    """Growing starts slots at once; shrinking retires the extra ones after their task."""
    handles = [app.enqueue("gated") for _ in range(6)]

    with worker_running(app, concurrency=1) as worker:
        wait_for(lambda: gate.running == 1, message="one task running")
        worker.resize(3)
        wait_for(lambda: gate.running == 3, message="three tasks running after the resize")
        wait_for(lambda: any(e.fields.get("detail") == "1->3"
                             for e in worker_events(app, "worker_pool_resized")),
                 message="the resize to be announced")

        worker.resize(1)
        gate.open.set()
        assert [h.result(timeout_s=5) for h in handles] == ["through"] * 6
        wait_for(lambda: len(worker._slot_threads) == 1, message="extra slots to retire")
        assert worker.concurrency == 1

    with pytest.raises(taskq.ConfigurationError, match="at least 1"):
        worker.resize(0)


def test_resize_through_a_redis_command(app: taskq.App, gate: Gate) -> None:
    """A resize left in Redis is applied at the worker's next heartbeat and consumed."""
    for _ in range(3):
        app.enqueue("gated")

    with worker_running(app, concurrency=1, worker_id="remote") as worker:
        wait_for(lambda: gate.running == 1, message="one task running")
        app.send_worker_command("remote", {"resize": 3})
        wait_for(lambda: gate.running == 3, timeout_s=5, message="the command to take effect")

        assert worker.concurrency == 3
        assert app.client.hlen(app.keys.global_keys.worker_control) == 0
        snapshot = taskq.take_snapshot(app)
        wait_for(lambda: taskq.take_snapshot(app).workers[0].concurrency == 3,
                 message="the worker record to show 3 slots")
        assert snapshot.workers[0].id == "remote"
        gate.open.set()


@pytest.mark.parametrize("size", [0, -1, 1025, True, "3", 2.5])
def test_invalid_resize_commands_are_refused(app: taskq.App, size: object) -> None:
    """A resize must be an integer from 1 to 1024; nothing is stored otherwise."""
    with pytest.raises(taskq.InvalidTaskError, match="from 1 to 1024"):
        app.send_worker_command("w", {"resize": size})
    assert app.client.hlen(app.keys.global_keys.worker_control) == 0


def test_a_stop_command_stops_the_worker_gracefully(app: taskq.App) -> None:
    """A stop left in Redis makes the worker finish and announce that it went offline."""
    app.task("ok")(lambda: "fine")
    with worker_running(app, worker_id="to-stop") as worker:
        app.send_worker_command("to-stop", {"stop": True})
        assert worker._finished.wait(5)

    [view] = taskq.take_snapshot(app).workers
    assert view.state == "offline"
    offline = worker_events(app, "worker_offline")
    assert [(e.worker, e.fields["detail"]) for e in offline] == [("to-stop", "stopped")]


def test_a_started_worker_announces_itself(app: taskq.App) -> None:
    """Start registers the worker with its queues and slots and emits worker_online."""
    with worker_running(app, ["a", "b"], concurrency=2, worker_id="hello"):
        [view] = taskq.take_snapshot(app, ["a", "b"]).workers
        assert (view.id, view.state, view.concurrency, view.queues) == (
            "hello", "idle", 2, ["a", "b"])
        assert [e.worker for e in worker_events(app, "worker_online")] == ["hello"]


def _waits_for_release(app: taskq.App) -> None:
    """Body that runs until its own lease is released (or for 10 s)."""
    context = taskq.current_task()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if raw_record(app, context.queue, context.task_id)["state"] != "active":
            return
        time.sleep(0.02)


def test_graceful_stop_releases_a_task_still_running_after_the_grace(
        app: taskq.App, caplog: pytest.LogCaptureFixture) -> None:
    """Past the grace period the running task goes back to ready under the same id, its
    attempt not counted, and the stop returns within grace + 1 s even though the body goes on
    running (tests/cases covers the same with a worker process)."""
    body_started, body_may_end = threading.Event(), threading.Event()
    app.task("long", max_retries=0)(lambda: body_started.set() or body_may_end.wait(30))
    handle = app.enqueue("long")
    caplog.set_level(logging.WARNING, logger="taskq")

    worker = taskq.Worker(app, ["default"], 1, shutdown_grace_s=0.5)
    worker.start()
    try:
        assert body_started.wait(5), "the body should start"
        started = time.monotonic()
        worker.stop()
        took_s = time.monotonic() - started
    finally:
        body_may_end.set()

    assert 0.5 <= took_s < 0.5 + 1.0
    rec = handle.record()
    assert (rec.state, rec.attempts) == (taskq.State.READY, 0)
    assert structures_of(app, "default", handle.id) == ["ready:5"]
    assert (depths(app)["active"], depths(app)["dead"]) == (0, 0)
    assert [e.task_id for e in events(app, kind="released")] == [handle.id]
    assert f"task released at shutdown task={handle.id}" in caplog.text

    with worker_running(app, worker_id="next"):
        wait_for(lambda: handle.record().worker == "next", message="a new worker to run it")
        assert handle.record().attempts == 1


def test_graceful_stop_lets_a_task_finish_within_the_grace(app: taskq.App) -> None:
    """A task whose body is running when the stop comes and ends within the grace period is
    recorded as usual, not released."""
    started = threading.Event()

    def short() -> str:
        started.set()
        time.sleep(0.3)
        return "made it"

    app.task("short")(short)
    handle = app.enqueue("short")

    worker = taskq.Worker(app, ["default"], 1, shutdown_grace_s=5)
    worker.start()
    assert started.wait(5)
    worker.stop()

    assert handle.result(timeout_s=1) == "made it"
    assert "released" not in counters(app)


def test_graceful_stop_returns_prefetched_tasks_to_the_front(app: taskq.App) -> None:
    """Tasks a slot claimed ahead but never started go back ahead of tasks never claimed."""
    body_started = threading.Event()
    app.task("long", max_retries=0)(lambda: body_started.set() or _waits_for_release(app))
    app.task("ok")(lambda: "fine")
    first = app.enqueue("long")
    prefetched = [app.enqueue("ok") for _ in range(2)]
    unclaimed = app.enqueue("ok")

    worker = taskq.Worker(app, ["default"], 1, prefetch=2, shutdown_grace_s=0.2)
    worker.start()
    assert body_started.wait(5), "the first body should start"
    worker.stop()

    wait_for(lambda: depths(app)["active"] == 0, timeout_s=3, message="every lease released")
    order = ready_ids(app)
    assert set(order[:3]) == {first.id, *(h.id for h in prefetched)}
    prefetched_ids = [h.id for h in prefetched]
    assert [i for i in order if i in prefetched_ids] == prefetched_ids
    assert order[3] == unclaimed.id
    assert counters(app)["released"] == 3
    assert all(h.record().attempts == 0 for h in (first, *prefetched))


def test_kill_releases_nothing_and_the_reaper_recovers_the_task(app: taskq.App) -> None:
    """A killed worker leaves its lease to expire; the task then runs elsewhere, and the
    late outcome of the killed body is never recorded."""
    gate, doomed_started = threading.Event(), threading.Event()
    runs: list[str] = []

    def body() -> str:
        worker_id = taskq.current_task().worker_id
        runs.append(worker_id)
        if worker_id == "doomed":
            doomed_started.set()
            gate.wait(10)
        return worker_id

    app.task("body", max_retries=2)(body)
    handle = app.enqueue("body")

    doomed = taskq.Worker(app, ["default"], 1, worker_id="doomed", run_reaper=False)
    doomed.start()
    assert doomed_started.wait(5), "the body should start"
    doomed.kill()
    time.sleep(0.3)
    assert raw_record(app, "default", handle.id)["worker"] == "doomed"
    assert "released" not in counters(app)

    with worker_running(app, worker_id="rescuer"):
        assert handle.result(timeout_s=10) == "rescuer"
        gate.set()
        time.sleep(0.1)

    rec = handle.record()
    assert (rec.attempts, rec.worker) == (2, "rescuer")
    assert runs == ["doomed", "rescuer"]
    assert [e.worker for e in events(app, kind="recovered")] == ["doomed"]
    assert len(events(app, kind="succeeded")) == 1


def test_kill_then_stop_is_a_no_op(app: taskq.App) -> None:
    """Stopping a killed worker returns at once."""
    worker = taskq.Worker(app, ["default"], 1)
    worker.start()
    worker.kill()
    started = time.monotonic()
    worker.stop()
    assert time.monotonic() - started < 0.5
