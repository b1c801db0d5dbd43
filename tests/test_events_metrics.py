"""Events, counters, per-second rates, histograms and the snapshot that reads them all."""

from __future__ import annotations

import threading
import time
from bisect import bisect_left

import pytest

import taskq
from taskq.metrics import HISTOGRAM_BOUNDS_US, histogram_counts, percentile_ms
from tests.conftest import with_settings
from tests.helpers import (
    Stepper,
    counters,
    events,
    promote_all,
    reap,
    server_ms,
    worker_events,
    worker_running,
)


@pytest.fixture
def metered_app(clocked_app: taskq.App) -> taskq.App:
    app = clocked_app
    app.task("ok")(lambda: "fine")
    app.task("fails", max_retries=1, backoff_min_s=2, backoff_max_s=2)(lambda: 1 / 0)

    def reports() -> str:
        taskq.current_task().progress(0.5, "half")
        return "done"

    app.task("reports")(reports)
    return app


def timeline(app: taskq.App, task_id: str) -> list[tuple[str, str, int, int]]:
    """(kind, worker, attempt, t_ms) of every event of one task, in order."""
    found = taskq.task_timeline(app, task_id, "default")
    assert all(e.queue == "default" and e.task_id == task_id for e in found)
    return [(e.kind, e.worker, e.attempt, e.t_ms) for e in found]


def test_every_transition_of_a_retried_task_is_an_event(metered_app: taskq.App,
                                                        fake_clock: taskq.FakeClock) -> None:
    """Schedule, promote, start, fail, retry, start, fail, dead, requeue, purge: one event each,
    carrying the worker, the attempt and the time of the call that made it."""
    app = metered_app
    t0 = server_ms(app)
    handle = app.enqueue("fails", delay_s=1)
    fake_clock.advance(1)
    promote_all(app)
    stepper = Stepper(app, worker_id="w1")
    stepper.step()
    fake_clock.advance(2)
    promote_all(app)
    stepper.step()
    fake_clock.advance(1)
    app.requeue_dead("default", [handle.id])
    app.cancel(handle.id)

    assert timeline(app, handle.id) == [
        ("scheduled", "", 0, t0),
        ("promoted", "", 0, t0 + 1000),
        ("started", "w1", 1, t0 + 1000),
        ("failed", "w1", 1, t0 + 1000),
        ("retry_scheduled", "w1", 1, t0 + 1000),
        ("promoted", "", 1, t0 + 3000),
        ("started", "w1", 2, t0 + 3000),
        ("failed", "w1", 2, t0 + 3000),
        ("dead", "w1", 2, t0 + 3000),
        ("requeued", "", 0, t0 + 4000),
        ("cancelled", "", 0, t0 + 4000),
    ]
    failed = events(app, kind="failed", task_id=handle.id)
    assert {e.fields["error"] for e in failed} == {"ZeroDivisionError"}
    assert events(app, kind="retry_scheduled")[0].fields["due_ms"] == str(t0 + 3000)


def test_success_progress_recovery_and_release_are_events(metered_app: taskq.App,
                                                          fake_clock: taskq.FakeClock) -> None:
    """The other transitions carry the same fields: the lease holder and its attempt."""
    app = metered_app
    t0 = server_ms(app)
    lost = app.enqueue("ok", task_id="lost")
    app.enqueue("reports", task_id="reporter")
    released = app.enqueue("ok", task_id="released")
    crashed = Stepper(app, worker_id="crashed")
    crashed.claim(1)
    fake_clock.advance(app.settings.lease_s)
    reap(app)
    Stepper(app, worker_id="w2").step()  # runs "lost" again: it went back to the front
    fake_clock.advance(0.25)
    Stepper(app, worker_id="w2").step()
    quitter = Stepper(app, worker_id="quitter")
    quitter.worker._release_claimed(quitter.claim(1))

    t1 = t0 + 1000
    assert timeline(app, lost.id) == [
        ("enqueued", "", 0, t0), ("started", "crashed", 1, t0),
        ("recovered", "crashed", 1, t1), ("started", "w2", 2, t1), ("succeeded", "w2", 2, t1)]
    assert [k for k, *_ in timeline(app, "reporter")] == [
        "enqueued", "started", "progress", "succeeded"]
    progress = events(app, kind="progress")[0]
    assert (progress.worker, progress.attempt, progress.fields["fraction"],
            progress.fields["message"]) == ("w2", 1, "0.5", "half")
    assert timeline(app, released.id)[-1] == ("released", "quitter", 0, t1 + 250)


def test_queue_and_worker_events_name_their_subject(metered_app: taskq.App,
                                                    fake_clock: taskq.FakeClock) -> None:
    """Pause, resume and retention are queue events; workers have a stream of their own."""
    app = metered_app
    app.pause("default")
    app.resume("default")
    worker = taskq.Worker(app, ["default"], 1, worker_id="w9")
    worker.beat()
    worker.resize(2)
    worker.beat()

    assert [(e.kind, e.queue, e.task_id) for e in events(app)] == [
        ("paused", "default", ""), ("resumed", "default", "")]
    assert [(e.kind, e.worker, e.fields.get("detail")) for e in worker_events(app)] == [
        ("worker_online", "w9", ""), ("worker_pool_resized", "w9", "1->2")]


def test_event_times_come_from_the_server_clock(app: taskq.App) -> None:
    """Without a fake clock each event carries the Redis server's time."""
    app.task("ok")(lambda: None)
    before = server_ms(app)
    app.enqueue("ok")
    after = server_ms(app)

    [event] = events(app)
    assert before <= event.t_ms <= after


def test_readers_resume_from_their_offsets_without_gaps(metered_app: taskq.App) -> None:
    """read_events returns what came after the offsets it was given; latest_events the newest."""
    app = metered_app
    first = [app.enqueue("ok").id for _ in range(3)]
    seen, offsets = taskq.read_events(app, {app.keys.queue("default").events: "0"})
    second = [app.enqueue("ok").id for _ in range(2)]
    more, _ = taskq.read_events(app, offsets)

    assert [e.task_id for e in seen] == first
    assert [e.task_id for e in more] == second
    assert [e.task_id for e in taskq.latest_events(app, count=2)] == second[::-1]


def test_counters_count_every_outcome(metered_app: taskq.App, fake_clock: taskq.FakeClock
                                      ) -> None:
    """Lifetime counters add up each kind of transition."""
    app = metered_app
    app.enqueue_many([taskq.Call("ok") for _ in range(3)])
    app.enqueue("fails")
    app.enqueue("ok", delay_s=1)
    stepper = Stepper(app)
    stepper.drain()
    fake_clock.advance(2)
    promote_all(app)
    stepper.drain()
    cancelled = app.enqueue("ok", delay_s=60)
    app.cancel(cancelled.id)

    # "retrying" is a gauge: up by one at the retry, down by one when the retry was promoted.
    assert counters(app) == {"enqueued": 6, "scheduled": 2, "promoted": 2, "succeeded": 4,
                             "failed": 2, "retried": 1, "dead": 1, "cancelled": 1,
                             "retrying": 0}


def test_per_second_buckets_follow_the_clock_and_the_window(redis_url: str | None) -> None:
    """Outcomes count into the second they happen in; retention drops seconds outside the
    window, and the snapshot lines the series up oldest first."""
    clock = taskq.FakeClock(start_s=1_800_000_000.5)
    app = taskq.App(redis_url, settings=with_settings(rate_window_s=10), clock=clock)
    app.task("ok")(lambda: None)
    app.task("bad", max_retries=0)(lambda: 1 / 0)
    stepper = Stepper(app)
    app.enqueue_many([taskq.Call("ok") for _ in range(3)])
    stepper.drain()
    clock.advance(1)
    app.enqueue("bad")
    stepper.drain()

    rate = {k.decode(): int(v) for k, v in
            app.client.hgetall(app.keys.queue("default").rate).items()}
    assert rate == {"e:1800000000": 3, "s:1800000000": 3, "e:1800000001": 1,
                    "f:1800000001": 1, "d:1800000001": 1}
    view = taskq.take_snapshot(app, rate_seconds=3).queues["default"]
    assert view.rate["s"] == [0, 3, 0] and view.rate["e"] == [0, 3, 1]
    assert view.rate["d"] == [0, 0, 1]

    clock.advance(10)
    reaper = taskq.Reaper(app, ["default"], "janitor")
    assert reaper.trim_queue("default")[2] == 2
    assert set(app.client.hkeys(app.keys.queue("default").rate)) == {
        b"e:1800000001", b"f:1800000001", b"d:1800000001"}


def test_histograms_bucket_waits_and_run_times(metered_app: taskq.App,
                                               fake_clock: taskq.FakeClock) -> None:
    """A 3 ms queue wait and a 150 ms run land in the buckets whose bounds hold them."""
    app = metered_app
    app.enqueue("ok")
    fake_clock.advance(0.003)
    stepper = Stepper(app)
    task = stepper.claim(1)[0]
    fake_clock.advance(0.150)
    stepper.settle(stepper.run(task))

    view = taskq.take_snapshot(app).queues["default"]
    wait_bucket = bisect_left(HISTOGRAM_BOUNDS_US, 3_000)
    run_bucket = bisect_left(HISTOGRAM_BOUNDS_US, 150_000)
    assert [i for i, n in enumerate(view.wait_hist) if n] == [wait_bucket]
    assert [i for i, n in enumerate(view.run_hist) if n] == [run_bucket]
    for counts, bucket in ((view.wait_hist, wait_bucket), (view.run_hist, run_bucket)):
        lower_ms = HISTOGRAM_BOUNDS_US[bucket - 1] / 1000
        upper_ms = HISTOGRAM_BOUNDS_US[bucket] / 1000
        assert lower_ms <= percentile_ms(counts, 0.5) <= upper_ms
    started = events(app, kind="started")[0]
    assert started.fields["wait_us"] == "3000"
    assert events(app, kind="succeeded")[0].fields["run_us"] == "150000"


def test_histogram_helpers_handle_empty_and_overflow() -> None:
    """No samples means no percentile; samples past the last bound report that bound."""
    assert percentile_ms(histogram_counts({}), 0.5) is None
    overflow = histogram_counts({str(len(HISTOGRAM_BOUNDS_US)): 4, "99": 7})
    assert sum(overflow) == 4
    assert percentile_ms(overflow, 0.5) == HISTOGRAM_BOUNDS_US[-1] / 1000


@pytest.mark.slow
def test_snapshots_agree_with_themselves_while_work_flows(app: taskq.App) -> None:
    """Sampled while two workers run and a producer enqueues, every snapshot is one instant:
    busy workers match the worker detail, held tasks match the active set, and the counters
    match the queue depths."""
    app.task("short", result_ttl_s=600)(lambda: time.sleep(0.002))
    stop = threading.Event()

    def produce() -> None:
        while not stop.is_set():
            app.enqueue_many([taskq.Call("short") for _ in range(5)])
            time.sleep(0.005)

    producer = threading.Thread(target=produce)
    samples = []
    with worker_running(app, concurrency=2, worker_id="a"), \
            worker_running(app, concurrency=2, worker_id="b"):
        producer.start()
        try:
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline:
                samples.append(taskq.take_snapshot(app, ["default"]))
        finally:
            stop.set()
            producer.join()

    assert len(samples) > 10
    assert any(s.active for s in samples), "the sampling should have caught work in flight"
    for snap in samples:
        view = snap.queues["default"]
        detail_rows = sum(len(w.tasks) for w in snap.workers)
        assert snap.busy_workers == sum(1 for w in snap.workers if w.state == "busy")
        assert detail_rows + len(snap.unowned_tasks) == view.active == len(view.active_tasks)
        assert view.counters.get("enqueued", 0) == view.ready + view.active + view.finished
        assert view.counters.get("succeeded", 0) == view.finished
