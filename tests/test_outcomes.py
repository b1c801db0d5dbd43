"""Outcomes of an attempt: results and their retention, failures, retries, timeouts, progress."""

from __future__ import annotations

import math
import random
import time
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
    due_ms,
    events,
    promote_all,
    raw_record,
    reap,
    seed_ready,
    server_ms,
    structures_of,
    wait_for,
    worker_running,
)


@pytest.fixture
def fake_clock_app(clocked_app: taskq.App) -> taskq.App:
    app = clocked_app
    app.task("add")(lambda x, y: x + y)
    app.task("kept", result_ttl_s=10)(lambda: {"answer": 42})
    app.task("gone", result_ttl_s=0)(lambda: "bye")
    app.task("forever", result_ttl_s=-1)(lambda: "still here")
    return app


# Results and their retention.

def test_success_stores_the_result_for_its_retention(fake_clock_app: taskq.App,
                                                     fake_clock: taskq.FakeClock) -> None:
    """A succeeded task keeps its record and result until its result_ttl_s runs out."""
    app = fake_clock_app
    handle = app.enqueue("kept")
    Stepper(app).step()
    finished_at = server_ms(app)

    assert handle.result(timeout_s=1) == {"answer": 42}
    assert structures_of(app, "default", handle.id) == ["finished"]
    assert app.client.zscore(app.keys.queue("default").finished, handle.id) == \
        finished_at + 10_000

    fake_clock.advance(9.999)
    reap(app)
    assert handle.state() is taskq.State.SUCCEEDED

    fake_clock.advance(0.001)
    reap(app)
    with pytest.raises(taskq.TaskNotFoundError):
        handle.record()
    keys = app.keys.queue("default")
    assert not app.client.hexists(keys.args, handle.id)
    assert not app.client.hexists(keys.results, handle.id)
    assert counters(app)["expired"] == 1
    assert structures_of(app, "default", handle.id) == []


def test_zero_retention_deletes_the_record_at_once(fake_clock_app: taskq.App) -> None:
    """result_ttl_s=0 drops record, arguments and result the moment the task succeeds."""
    handle = fake_clock_app.enqueue("gone")
    Stepper(fake_clock_app).step()

    with pytest.raises(taskq.TaskNotFoundError):
        handle.record()
    assert depths(fake_clock_app)["finished"] == 0
    assert counters(fake_clock_app)["succeeded"] == 1
    assert fake_clock_app.client.hlen(fake_clock_app.keys.queue("default").args) == 0


def test_negative_retention_keeps_the_result_until_deleted(fake_clock_app: taskq.App,
                                                           fake_clock: taskq.FakeClock) -> None:
    """result_ttl_s < 0 keeps the record through any amount of retention passes."""
    handle = fake_clock_app.enqueue("forever")
    Stepper(fake_clock_app).step()

    fake_clock.advance(10 * 365 * 24 * 3600)
    reap(fake_clock_app)

    assert handle.result(timeout_s=1) == "still here"
    assert fake_clock_app.client.zscore(fake_clock_app.keys.queue("default").finished,
                                        handle.id) == math.inf


def test_result_waits_and_times_out_naming_the_state(fake_clock_app: taskq.App) -> None:
    """Waiting on a task nobody runs ends with ResultTimeoutError carrying its state."""
    handle = fake_clock_app.enqueue("add", (1, 2))

    with pytest.raises(taskq.ResultTimeoutError) as caught:
        handle.result(timeout_s=0.05)

    assert caught.value.state == "ready"
    assert caught.value.task_id == handle.id


def test_a_result_json_cannot_hold_sends_the_task_dead_at_once(fake_clock_app: taskq.App
                                                               ) -> None:
    """Returning a non-JSON value is a permanent error: no retry can fix it."""
    fake_clock_app.task("bad_result", max_retries=5)(lambda: object())
    handle = fake_clock_app.enqueue("bad_result")

    Stepper(fake_clock_app).step()

    rec = handle.record()
    assert rec.state is taskq.State.DEAD
    assert rec.attempts == 1
    assert rec.error["type"] == "InvalidResult"
    assert "cannot be encoded as JSON" in rec.error["message"]


# Failures.

def test_failed_attempts_retry_then_go_dead(fake_clock_app: taskq.App,
                                            fake_clock: taskq.FakeClock) -> None:
    """Each failure is recorded; after max_retries retries the task is dead, never lost."""
    def always_fails() -> None:
        raise KeyError("missing thing")

    fake_clock_app.task("boom", max_retries=2)(always_fails)
    handle = fake_clock_app.enqueue("boom")
    stepper = Stepper(fake_clock_app)

    outcomes = []
    for _ in range(3):
        fake_clock.advance(1)
        promote_all(fake_clock_app)
        assert stepper.step() == handle.id
        outcomes.append(handle.state())

    rec = handle.record()
    assert outcomes == [taskq.State.RETRYING, taskq.State.RETRYING, taskq.State.DEAD]
    assert rec.attempts == 3
    assert rec.error["type"] == "KeyError"
    assert rec.error["message"] == "'missing thing'"
    assert "always_fails" in rec.error["traceback"]
    assert rec.error["truncated"] is False
    assert structures_of(fake_clock_app, "default", handle.id) == ["dead"]
    assert {k: counters(fake_clock_app)[k] for k in ("failed", "retried", "dead")} == {
        "failed": 3, "retried": 2, "dead": 1}


def test_no_retries_means_dead_on_the_first_failure(fake_clock_app: taskq.App) -> None:
    """max_retries=0 sends a failing task dead after one attempt."""
    fake_clock_app.task("once", max_retries=0)(lambda: 1 / 0)
    handle = fake_clock_app.enqueue("once")
    Stepper(fake_clock_app).step()

    rec = handle.record()
    assert (rec.state, rec.attempts, rec.error["type"]) == (
        taskq.State.DEAD, 1, "ZeroDivisionError")
    with pytest.raises(taskq.TaskFailedError, match="ZeroDivisionError") as caught:
        handle.result(timeout_s=1)
    assert caught.value.state == "dead"


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("str() is broken too")


HOSTILE_TEXT = "glāžšķūņ — 失败 — 🚫 — \x00 tail"


def test_hostile_error_text_is_kept_and_the_worker_stays_up(app: taskq.App) -> None:
    """Non-ASCII and NUL text, a broken __str__ and a 2 MB message all reach the dead set,
    and the same worker then runs a normal task."""
    huge = "é" * (2 * 1024 * 1024)

    def raise_text(text: str) -> None:
        raise ValueError(text)

    def raise_unprintable() -> None:
        raise _Unprintable()

    app.task("u", max_retries=0)(lambda: raise_text(HOSTILE_TEXT))
    app.task("v", max_retries=0)(raise_unprintable)
    app.task("w", max_retries=0)(lambda: raise_text(huge))
    app.task("ok")(lambda: "fine")
    u, v, w = (app.enqueue(name) for name in "uvw")
    normal = app.enqueue("ok")

    with worker_running(app) as worker:
        assert normal.result(timeout_s=10) == "fine"
        assert worker.concurrency == 1
        assert len(worker._slot_threads) == 1

    limit = app.settings.max_error_message_chars
    errors = {h: h.record().error for h in (u, v, w)}
    assert all(h.state() is taskq.State.DEAD for h in (u, v, w))
    assert errors[u]["message"] == HOSTILE_TEXT
    assert "raise_text" in errors[u]["traceback"]
    assert errors[u]["truncated"] is False
    assert errors[v]["type"] == "_Unprintable"
    assert "_Unprintable" in errors[v]["message"]
    assert errors[w]["message"] == "é" * limit
    assert errors[w]["truncated"] is True
    assert len(errors[w]["traceback"]) <= app.settings.max_traceback_chars
    listed = {rec.id: rec.error for rec in app.dead_letters("default")}
    assert listed[u.id]["message"] == HOSTILE_TEXT
    assert HOSTILE_TEXT in taskq.explain(app, u.id).answer


def test_undecodable_payload_and_unknown_task_go_dead_at_once(app: taskq.App) -> None:
    """A payload that is not JSON and a name the worker does not know are dead within a
    second, with an error kind naming the problem; the worker goes on."""
    app.task("ok")(lambda: "fine")
    seed_ready(app, "pickled", "ok", b"\x80\x04\x95garbage")
    seed_ready(app, "stranger", "not.registered", '{"args": [], "kwargs": {}}')
    normal = app.enqueue("ok")

    with worker_running(app) as worker:
        started = time.monotonic()
        wait_for(lambda: depths(app)["dead"] == 2, timeout_s=5, message="two dead tasks")
        assert time.monotonic() - started < 1.0
        assert normal.result(timeout_s=5) == "fine"
        assert depths(app)["active"] == 0
        assert not worker._finished.is_set()

    pickled, stranger = app.get("pickled"), app.get("stranger")
    assert (pickled.error["type"], pickled.attempts) == ("DecodeError", 1)
    assert "cannot decode" in pickled.error["message"]
    assert (stranger.error["type"], stranger.attempts) == ("UnknownTask", 1)
    assert "not.registered" in stranger.error["message"]


# Backoff.

def _delays_until_dead(app: taskq.App, clock: taskq.FakeClock, count: int) -> list[list[float]]:
    """Fail ``count`` always-failing tasks until dead; return each retry's delay in seconds."""
    app.enqueue_many([taskq.Call("always_fails", (i,)) for i in range(count)])
    stepper = Stepper(app, rng=random.Random(3))
    delays: list[list[float]] = []
    while depths(app)["dead"] < count:
        ids = stepper.drain()
        assert ids, "tasks stopped coming back before going dead"
        now = server_ms(app)
        retrying = [due_ms(app, "default", i) for i in ids]
        delays.append([(due - now) / 1000 for due in retrying if due is not None])
        clock.advance(5)
        promote_all(app)
    return [d for d in delays if d]


def test_backoff_delays_stay_within_their_bounds(redis_url: str | None) -> None:
    """Retries 1, 2 and 3 wait at least 1, 2 and 4 s and at most the 5 s cap, jitter included;
    each task is dead after four attempts."""
    clock = taskq.FakeClock(start_s=1_800_000_000)
    app = taskq.App(redis_url, settings=with_settings(), clock=clock)

    def always_fails(i: int) -> None:
        raise RuntimeError(f"failure {i}")

    app.task("always_fails", max_retries=3, backoff_min_s=1.0, backoff_max_s=5.0,
             backoff_factor=2.0, backoff_jitter=0.25)(always_fails)

    rounds = _delays_until_dead(app, clock, 50)

    assert len(rounds) == 3 and all(len(r) == 50 for r in rounds)
    for retry, delays in enumerate(rounds, start=1):
        floor_s = 1.0 * 2 ** (retry - 1)
        assert min(delays) >= floor_s, (retry, min(delays))
        assert max(delays) <= min(floor_s * 1.25, 5.0), (retry, max(delays))
    assert len(set(rounds[0])) > 10, "jitter should spread the first retries"
    assert all(rec.attempts == 4 for rec in app.dead_letters("default", limit=100))


def test_backoff_policy_clamps_jitter_to_its_bounds() -> None:
    """Backoff.delay_s never goes below min_s nor above max_s, for any jitter draw."""
    policy = taskq.Backoff(min_s=1.0, max_s=5.0, factor=2.0, jitter=0.25)
    rng = random.Random(11)
    for retry in range(1, 12):
        for _ in range(200):
            delay = policy.delay_s(retry, rng)
            assert max(1.0, min(5.0, 2.0 ** (retry - 1))) <= delay <= 5.0


def test_explicit_zero_backoff_retries_at_once(redis_url: str | None) -> None:
    """backoff_min_s=0 is a choice, not "unset": the retry is ready at once although the
    app's default minimum is a full second."""
    app = taskq.App(redis_url, settings=with_settings(default_backoff_min_s=1.0,
                                                      default_backoff_max_s=5.0))
    runs: list[int] = []

    @app.task(name="eager", max_retries=2, backoff_min_s=0)
    def eager() -> str:
        runs.append(server_ms(app))
        if len(runs) < 3:
            raise RuntimeError("not yet")
        return "done"

    handle = app.enqueue("eager")
    assert app.get(handle.id).raw["backoff"]["min_s"] == 0

    with worker_running(app):
        assert handle.result(timeout_s=5) == "done"

    tick_s = app.settings.promoter_max_sleep_s
    gaps_s = [(b - a) / 1000 for a, b in zip(runs, runs[1:])]
    assert len(gaps_s) == 2 and max(gaps_s) < tick_s + 0.5
    assert [e.fields.get("due_ms") is not None for e in events(app, kind="retry_scheduled")] == \
        [True, True]
    assert depths(app)["scheduled"] == 0


def test_negative_or_inverted_backoff_is_a_setup_error(app: taskq.App) -> None:
    """A policy whose minimum is negative or above its maximum cannot be registered."""
    with pytest.raises(taskq.ConfigurationError, match="0 <= min <= max"):
        app.task("neg", backoff_min_s=-1)
    with pytest.raises(taskq.ConfigurationError, match="0 <= min <= max"):
        app.task("inverted", backoff_min_s=10, backoff_max_s=1)
    with pytest.raises(taskq.ConfigurationError, match="max_retries"):
        app.task("retries", max_retries=-1)


# Retry(delay_s).

def test_retry_signal_schedules_after_its_own_delay(fake_clock_app: taskq.App) -> None:
    """Raising Retry(delay_s) retries after exactly that delay, without backoff or jitter."""
    def ask_later() -> None:
        raise taskq.Retry(delay_s=7.5, reason="upstream busy")

    fake_clock_app.task("later", max_retries=1)(ask_later)
    handle = fake_clock_app.enqueue("later")
    stepper = Stepper(fake_clock_app)

    stepper.step()
    rec = handle.record()
    assert rec.state is taskq.State.RETRYING
    assert due_ms(fake_clock_app, "default", handle.id) == server_ms(fake_clock_app) + 7500
    assert (rec.error["type"], rec.error["message"]) == ("Retry", "upstream busy")
    assert not issubclass(taskq.Retry, taskq.TaskqError)


def test_retry_signal_counts_against_max_retries(fake_clock_app: taskq.App,
                                                 fake_clock: taskq.FakeClock) -> None:
    """Retry(delay_s=0) makes the task ready at once, until its retries run out: then dead."""
    def again() -> None:
        raise taskq.Retry(delay_s=0)

    fake_clock_app.task("again", max_retries=2)(again)
    handle = fake_clock_app.enqueue("again")
    stepper = Stepper(fake_clock_app)

    states = []
    for _ in range(3):
        stepper.step()
        states.append(handle.state())

    assert states == [taskq.State.READY, taskq.State.READY, taskq.State.DEAD]
    assert stepper.step() is None


def test_retry_without_a_delay_follows_the_backoff_policy(fake_clock_app: taskq.App) -> None:
    """Retry() with no delay uses the task's backoff."""
    def plain() -> None:
        raise taskq.Retry()

    fake_clock_app.task("plain", max_retries=1, backoff_min_s=3, backoff_max_s=3)(plain)
    handle = fake_clock_app.enqueue("plain")
    Stepper(fake_clock_app).step()

    assert due_ms(fake_clock_app, "default", handle.id) == server_ms(fake_clock_app) + 3000


@pytest.mark.parametrize("delay_s", [-1, math.nan])
def test_retry_refuses_an_invalid_delay(delay_s: float) -> None:
    """A negative or NaN retry delay is a programming error caught where it is raised."""
    with pytest.raises(taskq.InvalidTaskError, match="delay_s"):
        taskq.Retry(delay_s=delay_s)


# Timeouts.

def test_thread_pool_timeout_fails_the_attempt_and_the_slot_goes_on(app: taskq.App) -> None:
    """A body running past timeout_s fails with TaskTimeoutError; the slot runs the next task."""
    def busy(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(0.001)

    app.task("busy", max_retries=0, timeout_s=0.2)(busy)
    app.task("ok")(lambda: "fine")
    slow = app.enqueue("busy", (10,))
    normal = app.enqueue("ok")

    with worker_running(app):
        started = time.monotonic()
        with pytest.raises(taskq.TaskFailedError, match="TaskTimeoutError"):
            slow.result(timeout_s=5)
        assert time.monotonic() - started < 2.0
        assert normal.result(timeout_s=5) == "fine"

    error = slow.record().error
    assert "longer than its timeout of 0.2 s" in error["message"]


@pytest.mark.slow
@pytest.mark.parametrize("body", ["pool.spin", "pool.nap"])
def test_process_pool_timeout_kills_the_child(real_redis_url: str, body: str) -> None:
    """In the process pool a timeout is hard: a CPU-bound or sleeping child is killed at
    timeout_s, the attempt fails, and a fresh child runs the next task."""
    app = taskq.App(real_redis_url, settings=with_settings())
    define_pool_tasks(app)

    with worker_running(app, pool="process", app_spec=POOL_APP_SPEC):
        assert app.enqueue("pool.nap", (0,)).result(timeout_s=30) == "woke"  # child is up
        stuck = app.enqueue(body, (30,))
        with pytest.raises(taskq.TaskFailedError, match="TaskTimeoutError"):
            stuck.result(timeout_s=20)
        assert app.enqueue("pool.nap", (0,)).result(timeout_s=30) == "woke"

    rec = stuck.record()
    assert "its process was killed" in rec.error["message"]
    assert (rec.finished_ms - rec.started_ms) / 1000 < 0.5 + 2.0


@pytest.mark.slow
def test_a_slow_child_start_does_not_count_against_the_timeout(
        real_redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The timeout clock starts when the body starts: a child that takes longer than the
    timeout to import the app still runs a quick task."""
    monkeypatch.setenv("TASKQ_TEST_POOL_IMPORT_DELAY_S", "1.0")
    app = taskq.App(real_redis_url, settings=with_settings())
    define_pool_tasks(app)
    quick = app.enqueue("pool.nap", (0,))  # timeout_s=0.5

    with worker_running(app, pool="process", app_spec=POOL_APP_SPEC):
        assert quick.result(timeout_s=30) == "woke"


@pytest.mark.slow
def test_a_child_that_cannot_load_the_app_fails_the_task(real_redis_url: str) -> None:
    """A process-pool child that cannot import the app fails the attempt with a clear error,
    and the worker goes on."""
    app = taskq.App(real_redis_url, settings=with_settings())
    define_pool_tasks(app)
    handle = app.enqueue("pool.progress")

    with worker_running(app, pool="process", app_spec="tests.helpers:no_such_app") as worker:
        with pytest.raises(taskq.TaskFailedError, match="could not load the app"):
            handle.result(timeout_s=30)
        assert not worker._finished.is_set() and worker._slot_threads


@pytest.mark.slow
def test_a_child_that_dies_fails_the_attempt_and_is_replaced(real_redis_url: str) -> None:
    """A body that kills its own process fails the attempt at once (no timeout needed), and
    the next task gets a fresh child."""
    app = taskq.App(real_redis_url, settings=with_settings())
    define_pool_tasks(app)
    crash = app.enqueue("pool.crash")
    after = app.enqueue("pool.nap", (0,))

    with worker_running(app, pool="process", app_spec=POOL_APP_SPEC):
        with pytest.raises(taskq.TaskFailedError, match="exited"):
            crash.result(timeout_s=20)
        assert after.result(timeout_s=20) == "woke"


# Progress.

def test_progress_is_stored_and_announced(app: taskq.App) -> None:
    """A running task's progress lands on its record and in the event stream."""
    long_message = "m" * 500

    @app.task(name="steps")
    def steps() -> str:
        context = taskq.current_task()
        assert context.progress(0.25, "quarter")
        assert context.progress(1, long_message)
        return "done"

    handle = app.enqueue("steps")
    with worker_running(app):
        assert handle.result(timeout_s=5) == "done"

    progress = handle.record().progress
    limit = app.settings.max_progress_message_chars
    assert progress["fraction"] == 1 and progress["message"] == "m" * limit
    reported = [(e.fields["fraction"], e.fields["message"][:7]) for e in
                events(app, kind="progress", task_id=handle.id)]
    assert reported == [("0.25", "quarter"), ("1.0", "mmmmmmm")]


def test_progress_outside_zero_to_one_fails_the_attempt(fake_clock_app: taskq.App) -> None:
    """A fraction outside [0, 1] raises in the body, naming the value."""
    def overshoot() -> None:
        taskq.current_task().progress(1.5)

    fake_clock_app.task("overshoot", max_retries=0)(overshoot)
    handle = fake_clock_app.enqueue("overshoot")
    Stepper(fake_clock_app).step()

    error = handle.record().error
    assert error["type"] == "InvalidTaskError" and "1.5" in error["message"]


def test_current_task_outside_a_body_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="outside a running task"):
        taskq.current_task()


@pytest.mark.slow
def test_process_pool_reports_progress_through_the_parent(real_redis_url: str) -> None:
    """A body in a child process reports progress; the parent stores it under its lease."""
    app = taskq.App(real_redis_url, settings=with_settings())
    define_pool_tasks(app)
    handle = app.enqueue("pool.progress")

    with worker_running(app, pool="process", app_spec=POOL_APP_SPEC):
        assert handle.result(timeout_s=20) == "done"

    assert handle.record().progress["message"] == "half way"
    assert raw_record(app, "default", handle.id)["progress"]["fraction"] == 0.5


def test_error_text_is_never_larger_than_its_limits() -> None:
    """describe_exception cuts message and traceback to the settings and marks the cut."""
    from taskq.task import describe_exception
    settings = taskq.Settings(max_error_message_chars=10, max_traceback_chars=50)
    try:
        raise ValueError("x" * 100)
    except ValueError as exc:
        error: dict[str, Any] = describe_exception(exc, settings)
    assert error["message"] == "x" * 10 and len(error["traceback"]) == 50
    assert error["truncated"] is True
