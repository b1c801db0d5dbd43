"""Leases: heartbeats extend them, the reaper recovers expired ones, and a worker that lost its
lease can no longer record an outcome. Workers that fall silent go offline, then away."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

import taskq
from tests.conftest import with_settings
from tests.helpers import (
    POOL_APP_SPEC,
    Stepper,
    counters,
    define_pool_tasks,
    depths,
    events,
    lease_deadline_ms,
    raw_record,
    reap,
    server_ms,
    spin,
    structures_of,
    wait_for,
    worker_events,
    worker_running,
)


@pytest.fixture
def lease_app(clocked_app: taskq.App) -> taskq.App:
    clocked_app.task("noop", max_retries=2)(lambda: "done")
    clocked_app.task("fails", max_retries=2)(lambda: 1 / 0)
    clocked_app.task("last_chance", max_retries=0)(lambda: None)
    return clocked_app


def test_a_claim_leases_the_task_for_lease_s(lease_app: taskq.App) -> None:
    """A claimed task sits in the active set until now + lease_s, under a per-attempt token."""
    handle = lease_app.enqueue("noop")
    Stepper(lease_app, worker_id="w1").claim()

    rec = raw_record(lease_app, "default", handle.id)
    assert structures_of(lease_app, "default", handle.id) == ["active"]
    assert lease_deadline_ms(lease_app, "default", handle.id) == server_ms(lease_app) + 1000
    assert (rec["worker"], rec["lease"], rec["attempts"]) == ("w1", "w1#1", 1)


def test_heartbeats_extend_the_lease_of_a_running_task(lease_app: taskq.App,
                                                       fake_clock: taskq.FakeClock) -> None:
    """While the body runs, each heartbeat pushes the deadline to now + lease_s, so the reaper
    never takes a task whose worker is alive, however long it runs."""
    release = threading.Event()
    lease_app.task("long")(lambda: release.wait(10))
    handle = lease_app.enqueue("long")

    with worker_running(lease_app, run_reaper=False):
        wait_for(lambda: handle.state() is taskq.State.ACTIVE, message="the task to start")
        for _ in range(3):
            fake_clock.advance(0.9)
            target = server_ms(lease_app) + 1000
            wait_for(lambda t=target: lease_deadline_ms(lease_app, "default", handle.id) == t,
                     timeout_s=5, message="a heartbeat to extend the lease")
            assert reap(lease_app).recovered_total == 0
        release.set()
        assert handle.result(timeout_s=5) is True

    assert handle.record().attempts == 1
    assert "recovered" not in counters(lease_app)


def test_reaper_recovers_an_expired_lease(lease_app: taskq.App,
                                          fake_clock: taskq.FakeClock) -> None:
    """A lease not extended for lease_s expires; the task is ready again with its attempt
    counted, and another worker finishes it."""
    handle = lease_app.enqueue("noop")
    Stepper(lease_app, worker_id="crashed").claim()

    fake_clock.advance(lease_app.settings.lease_s - 0.001)
    assert reap(lease_app).recovered_total == 0
    fake_clock.advance(0.001)
    assert reap(lease_app).recovered_total == 1
    assert reap(lease_app).recovered_total == 0, "a second reaper finds nothing to do"

    rec = handle.record()
    assert (rec.state, rec.attempts) == (taskq.State.READY, 1)
    assert structures_of(lease_app, "default", handle.id) == ["ready:5"]
    recovered = events(lease_app, kind="recovered")
    assert [(e.task_id, e.worker, e.attempt) for e in recovered] == [(handle.id, "crashed", 1)]
    assert counters(lease_app)["recovered"] == 1

    Stepper(lease_app, worker_id="rescuer").step()
    rec = handle.record()
    assert (rec.state, rec.attempts, rec.worker) == (taskq.State.SUCCEEDED, 2, "rescuer")


def test_an_expired_lease_on_the_last_attempt_sends_the_task_dead(
        lease_app: taskq.App, fake_clock: taskq.FakeClock) -> None:
    """A task whose every run kills its worker cannot loop: on its last attempt it goes dead."""
    handle = lease_app.enqueue("last_chance")
    Stepper(lease_app, worker_id="victim").claim()

    fake_clock.advance(lease_app.settings.lease_s)
    reaper = reap(lease_app)

    rec = handle.record()
    assert reaper.recovered_total == 0
    assert rec.state is taskq.State.DEAD
    assert rec.error["type"] == "LeaseExpired"
    assert "victim" in rec.error["message"]
    assert structures_of(lease_app, "default", handle.id) == ["dead"]


def _lose_lease(app: taskq.App, clock: taskq.FakeClock, name: str) -> tuple[
        Stepper, Any, Stepper, taskq.TaskHandle]:
    """Worker "slow" claims a task, its lease expires and worker "fast" claims it again."""
    handle = app.enqueue(name)
    slow = Stepper(app, worker_id="slow")
    task = slow.claim()[0]
    clock.advance(app.settings.lease_s)
    reap(app)
    fast = Stepper(app, worker_id="fast")
    assert fast.claim()[0].task_id == handle.id
    return slow, task, fast, handle


def test_a_worker_that_lost_its_lease_cannot_record_success(lease_app: taskq.App,
                                                            fake_clock: taskq.FakeClock) -> None:
    """The late success of the old lease holder is fenced off; the new holder is untouched."""
    slow, task, _fast, handle = _lose_lease(lease_app, fake_clock, "noop")

    slow.settle(slow.run(task))

    rec = raw_record(lease_app, "default", handle.id)
    assert (rec["state"], rec["worker"], rec["lease"]) == ("active", "fast", "fast#2")
    assert structures_of(lease_app, "default", handle.id) == ["active"]
    assert counters(lease_app)["fenced"] == 1
    assert not events(lease_app, kind="succeeded")


def test_a_worker_that_lost_its_lease_cannot_record_failure(lease_app: taskq.App,
                                                            fake_clock: taskq.FakeClock) -> None:
    """A late failure of the old holder schedules no retry and leaves the new lease alone."""
    slow, task, _fast, handle = _lose_lease(lease_app, fake_clock, "fails")

    slow.run(task)

    rec = raw_record(lease_app, "default", handle.id)
    assert (rec["state"], rec["lease"]) == ("active", "fast#2")
    assert "error" not in rec
    assert depths(lease_app)["scheduled"] == 0
    assert counters(lease_app)["fenced"] == 1


def test_a_lost_lease_refuses_progress_and_extension(lease_app: taskq.App,
                                                     fake_clock: taskq.FakeClock) -> None:
    """Progress and lease extension by the old holder are refused and reported as lost."""
    _slow, task, _fast, handle = _lose_lease(lease_app, fake_clock, "noop")
    keys = lease_app.keys.queue("default")
    old_token = "slow#1"
    deadline = lease_deadline_ms(lease_app, "default", handle.id)

    assert not lease_app.scripts.progress(lease_app.now(), keys, task.task_id, old_token, 0.5,
                                          "late")
    fake_clock.advance(0.5)
    lost, _cancel = lease_app.scripts.extend(lease_app.now(), keys, 1000,
                                             [(task.task_id, old_token)])

    assert lost == [task.task_id]
    assert lease_deadline_ms(lease_app, "default", handle.id) == deadline
    assert "progress" not in raw_record(lease_app, "default", handle.id)


def test_a_partitioned_worker_drops_the_outcome_of_a_lost_lease(
        lease_app: taskq.App, fake_clock: taskq.FakeClock,
        caplog: pytest.LogCaptureFixture) -> None:
    """A worker cut off past its lease learns at its next heartbeat that the lease is gone,
    and drops the outcome of the attempt instead of reporting it."""
    started, release = threading.Event(), threading.Event()
    lease_app.task("long", max_retries=3)(lambda: started.set() or release.wait(10))
    handle = lease_app.enqueue("long")
    caplog.set_level(logging.WARNING, logger="taskq")

    with worker_running(lease_app, run_reaper=False, worker_id="cut-off") as worker:
        assert started.wait(5), "the body should start"
        worker.heartbeat.stop()  # the network partition: no more heartbeats
        fake_clock.advance(lease_app.settings.lease_s + 0.5)
        reap(lease_app)
        assert Stepper(lease_app, worker_id="other").claim()[0].task_id == handle.id

        worker.beat()  # the partition heals
        release.set()
        wait_for(lambda: "outcome dropped" in caplog.text, message="the drop to be logged")

    rec = raw_record(lease_app, "default", handle.id)
    assert (rec["state"], rec["worker"]) == ("active", "other")
    assert "lease lost task=" + handle.id in caplog.text
    assert not events(lease_app, kind="succeeded")


def test_silent_workers_go_offline_then_away(lease_app: taskq.App,
                                             fake_clock: taskq.FakeClock) -> None:
    """A worker without heartbeats shows offline after worker_dead_after_s and its record is
    removed after worker_retention_s, each step announced once."""
    worker = taskq.Worker(lease_app, ["default"], 2, worker_id="quiet")
    worker.beat()
    settings = lease_app.settings
    assert taskq.take_snapshot(lease_app).workers[0].state == "idle"

    fake_clock.advance(settings.worker_dead_after_s + 0.001)
    reap(lease_app)
    reap(lease_app)

    [view] = taskq.take_snapshot(lease_app).workers
    assert view.state == "offline"
    info = lease_app.client.hget(lease_app.keys.global_keys.worker_info, "quiet")
    assert b'"offline_reason":"heartbeat"' in info.replace(b" ", b"")
    assert [e.worker for e in worker_events(lease_app, "worker_offline")] == ["quiet"]

    fake_clock.advance(settings.worker_retention_s)
    reap(lease_app)

    assert taskq.take_snapshot(lease_app).workers == []
    assert lease_app.client.hlen(lease_app.keys.global_keys.worker_info) == 0
    assert [e.worker for e in worker_events(lease_app, "worker_removed")] == ["quiet"]


def test_a_worker_that_beats_again_is_back_online(lease_app: taskq.App,
                                                  fake_clock: taskq.FakeClock) -> None:
    """Offline is a reading of silence: the next heartbeat makes the worker live again."""
    worker = taskq.Worker(lease_app, ["default"], 1, worker_id="flappy")
    worker.beat()
    fake_clock.advance(lease_app.settings.worker_dead_after_s + 1)
    reap(lease_app)

    worker.beat()

    assert taskq.take_snapshot(lease_app).workers[0].state == "idle"


# Real time: a CPU-bound body must not starve the heartbeat.

def _assert_ran_once_without_recovery(app: taskq.App, handle: taskq.TaskHandle,
                                      caplog: pytest.LogCaptureFixture) -> None:
    rec = handle.record()
    assert (rec.state, rec.attempts) == (taskq.State.SUCCEEDED, 1)
    assert len(events(app, kind="started", task_id=handle.id)) == 1
    assert not events(app, kind="recovered")
    assert depths(app)["dead"] == 0
    assert "lease expired" not in caplog.text


@pytest.mark.slow
def test_a_cpu_bound_thread_body_keeps_its_lease(app: taskq.App,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """A pure-Python busy loop running longer than its lease, watched by an idle second worker
    and two reapers, starts once and succeeds (scaled to the test settings)."""
    app.task("busy", max_retries=3)(spin)
    caplog.set_level(logging.WARNING, logger="taskq")
    handle = app.enqueue("busy", (1.6,))

    with worker_running(app, worker_id="runner"), worker_running(app, worker_id="idle"):
        handle.result(timeout_s=15)

    _assert_ran_once_without_recovery(app, handle, caplog)


@pytest.mark.slow
def test_a_cpu_bound_process_body_keeps_its_lease(real_redis_url: str,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """In the process pool the body runs in a child, so the parent's heartbeat is untouched."""
    app = taskq.App(real_redis_url, settings=with_settings())
    define_pool_tasks(app)
    caplog.set_level(logging.WARNING, logger="taskq")
    handle = app.enqueue("pool.busy", (1.6,))

    with worker_running(app, pool="process", app_spec=POOL_APP_SPEC), \
            worker_running(app, worker_id="idle"):
        handle.result(timeout_s=20)

    _assert_ran_once_without_recovery(app, handle, caplog)
