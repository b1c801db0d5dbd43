"""Delayed tasks: due times on the server's clock, eta conversion, and the promoter."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import taskq
from tests.conftest import with_settings
from tests.helpers import (
    Stepper,
    counters,
    depths,
    due_ms,
    events,
    key_count,
    promote_all,
    ready_ids,
    seed_ready,
    server_ms,
    structures_of,
    wait_for,
)

NEW_YORK = ZoneInfo("America/New_York")


@pytest.fixture
def sched_app(clocked_app: taskq.App) -> taskq.App:
    clocked_app.task("noop")(lambda *args: None)
    return clocked_app


def test_delay_schedules_the_task_until_its_due_time(sched_app: taskq.App,
                                                     fake_clock: taskq.FakeClock) -> None:
    """A delayed task waits in the scheduled set and turns ready exactly when due."""
    start_ms = server_ms(sched_app)
    handle = sched_app.enqueue("noop", delay_s=5, priority=8)

    assert handle.state() is taskq.State.SCHEDULED
    assert due_ms(sched_app, "default", handle.id) == start_ms + 5000
    assert handle.record().due_ms == start_ms + 5000

    fake_clock.advance(4.999)
    assert promote_all(sched_app) == 0
    assert handle.state() is taskq.State.SCHEDULED

    fake_clock.advance(0.001)
    assert promote_all(sched_app) == 1
    assert structures_of(sched_app, "default", handle.id) == ["ready:8"]
    promoted = events(sched_app, kind="promoted")
    assert [(e.task_id, e.fields["lag_ms"]) for e in promoted] == [(handle.id, "0")]
    assert counters(sched_app)["promoted"] == 1


def test_zero_delay_and_past_eta_are_ready_at_once(sched_app: taskq.App) -> None:
    """A due time that is not in the future needs no promoter."""
    past = datetime.fromtimestamp(server_ms(sched_app) / 1000 - 3600, tz=timezone.utc)
    now_task = sched_app.enqueue("noop", delay_s=0)
    late_task = sched_app.enqueue("noop", eta=past)

    assert ready_ids(sched_app) == [now_task.id, late_task.id]
    assert late_task.record().due_ms == round(past.timestamp() * 1000)


def test_due_times_come_from_the_server_clock(app: taskq.App,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A producer whose own clock is a day fast still schedules on the Redis server's time."""
    app.task("noop")(lambda: None)
    app.client.ping()
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 86_400)

    before = server_ms(app)
    handle = app.enqueue("noop", delay_s=10)
    after = server_ms(app)

    assert before + 10_000 <= due_ms(app, "default", handle.id) <= after + 10_000


def test_aware_eta_is_converted_exactly(sched_app: taskq.App) -> None:
    """An aware datetime in any zone becomes the same Unix millisecond."""
    india = timezone(timedelta(hours=5, minutes=30))
    eta = datetime(2027, 3, 1, 12, 0, 0, 123_000, tzinfo=india)
    handle = sched_app.enqueue("noop", eta=eta)

    assert due_ms(sched_app, "default", handle.id) == round(eta.timestamp() * 1000)
    assert due_ms(sched_app, "default", handle.id) == 1_803_882_600_123


@pytest.fixture
def new_york_time() -> Iterator[None]:
    """Run the test with the process's local time zone set to America/New_York."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    yield
    if saved is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = saved
    time.tzset()


@pytest.mark.usefixtures("new_york_time")
@pytest.mark.parametrize(("eta", "due_s"), [
    (datetime(2024, 7, 1, 22, 0), 1719885600),
    (datetime(2024, 1, 15, 22, 0), 1705374000),
    (datetime(2024, 11, 3, 1, 30, fold=0, tzinfo=NEW_YORK), 1730611800),
    (datetime(2024, 11, 3, 1, 30, fold=1, tzinfo=NEW_YORK), 1730615400),
    (datetime(2024, 11, 3, 1, 30, fold=0), 1730611800),
    (datetime(2024, 11, 3, 1, 30, fold=1), 1730615400),
    (datetime(2024, 3, 10, 7, 30, tzinfo=timezone.utc), 1710055800),
], ids=["naive-summer", "naive-winter", "aware-fold0", "aware-fold1", "naive-fold0",
        "naive-fold1", "aware-utc"])
def test_local_times_follow_daylight_saving(redis_url: str | None, eta: datetime, due_s: int
                                            ) -> None:
    """Naive times are read in the process's zone with that date's offset."""
    app = taskq.App(redis_url, settings=with_settings(),
                    clock=taskq.FakeClock(start_s=1_700_000_000))
    app.task("noop")(lambda: None)

    handle = app.enqueue("noop", eta=eta)

    assert handle.state() is taskq.State.SCHEDULED
    assert due_ms(app, "default", handle.id) == due_s * 1000


@pytest.mark.usefixtures("new_york_time")
def test_a_local_time_skipped_by_daylight_saving_is_refused(sched_app: taskq.App) -> None:
    """02:30 on 2024-03-10 never happens in New York: enqueue says so and writes nothing."""
    before = key_count(sched_app)

    with pytest.raises(taskq.InvalidTaskError, match="does not exist.*timezone-aware"):
        sched_app.enqueue("noop", eta=datetime(2024, 3, 10, 2, 30))

    assert key_count(sched_app) == before


def test_promoter_moves_a_backlog_in_batches(redis_url: str | None) -> None:
    """One tick moves every due task, a batch per call, each exactly once; later ones stay."""
    clock = taskq.FakeClock(start_s=1_800_000_000)
    app = taskq.App(redis_url, settings=with_settings(promoter_batch=10), clock=clock)
    app.task("noop")(lambda *args: None)
    app.enqueue_many([taskq.Call("noop", (i,), delay_s=1 + i / 1000) for i in range(35)])
    later = app.enqueue("noop", delay_s=60)
    calls: list[int] = []
    promote = app.scripts.promote

    def counting(now: str, keys: Any, batch: int) -> tuple[int, int, int]:
        out = promote(now, keys, batch)
        calls.append(out[0])
        return out

    app.scripts.promote = counting  # type: ignore[method-assign]
    clock.advance(2)

    promoter = taskq.Promoter(app, ["default"], "p1")
    wait_s = promoter.tick()

    assert calls == [10, 10, 10, 5]
    assert promoter.moved_total == 35
    assert depths(app) == {"ready": 35, "scheduled": 1, "active": 0, "dead": 0, "finished": 0}
    assert later.state() is taskq.State.SCHEDULED
    assert wait_s == pytest.approx(app.settings.promoter_max_sleep_s)


def test_promoter_sleeps_until_the_next_due_time(redis_url: str | None) -> None:
    """The tick returns the time left until the earliest due task, capped by the setting."""
    clock = taskq.FakeClock(start_s=1_800_000_000)
    app = taskq.App(redis_url, settings=with_settings(promoter_max_sleep_s=30.0), clock=clock)
    app.task("noop")(lambda: None)
    app.enqueue("noop", delay_s=3.25)
    app.enqueue("noop", delay_s=100)
    promoter = taskq.Promoter(app, ["default"], "p1")

    assert promoter.tick() == pytest.approx(3.25)
    clock.advance(3.25)
    assert promoter.tick() == pytest.approx(30.0)
    assert promoter.moved_total == 1


def test_two_promoters_move_every_task_exactly_once(redis_url: str | None) -> None:
    """Two promoters racing over one backlog, each slowed per batch, never duplicate a task
   : the move needs no lock because removal and push are one call."""
    clock = taskq.FakeClock(start_s=1_800_000_000)
    app = taskq.App(redis_url, settings=with_settings(promoter_batch=50), clock=clock)
    app.task("noop")(lambda *args: None)
    total = 2000
    app.enqueue_many([taskq.Call("noop", (i,), delay_s=1) for i in range(total)])
    clock.advance(5)
    promote = app.scripts.promote

    def slow_promote(now: str, keys: Any, batch: int) -> tuple[int, int, int]:
        out = promote(now, keys, batch)
        time.sleep(0.002)  # a slow pass outlives any lock a promoter might have relied on
        return out

    app.scripts.promote = slow_promote  # type: ignore[method-assign]
    promoters = [taskq.Promoter(app, ["default"], f"p{i}") for i in range(2)]
    threads = [threading.Thread(target=p.tick) for p in promoters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    ready = ready_ids(app)
    assert depths(app)["scheduled"] == 0
    assert len(ready) == total and len(set(ready)) == total
    assert sum(p.moved_total for p in promoters) == total
    assert all(p.moved_total > 0 for p in promoters), "both promoters should have taken part"
    per_task = Counter(e.task_id for e in events(app, kind="promoted"))
    assert len(per_task) == total and set(per_task.values()) == {1}
    assert counters(app)["promoted"] == total


def test_retrying_tasks_are_promoted_like_scheduled_ones(sched_app: taskq.App,
                                                         fake_clock: taskq.FakeClock) -> None:
    """A failed attempt waits in the scheduled set and comes back through the promoter."""
    attempts: list[int] = []

    @sched_app.task(name="flaky", max_retries=2, backoff_min_s=2.0, backoff_max_s=2.0)
    def flaky() -> str:
        attempts.append(taskq.current_task().attempt)
        if len(attempts) == 1:
            raise RuntimeError("first time fails")
        return "ok"

    handle = sched_app.enqueue("flaky")
    stepper = Stepper(sched_app)
    stepper.step()
    assert handle.state() is taskq.State.RETRYING
    assert due_ms(sched_app, "default", handle.id) == server_ms(sched_app) + 2000

    fake_clock.advance(2)
    assert promote_all(sched_app) == 1
    stepper.step()

    assert attempts == [1, 2]
    assert handle.state() is taskq.State.SUCCEEDED


def stop_blocked_promoter(app: taskq.App, promoter: taskq.Promoter) -> None:
    """Stop a promoter, waking it from its long block so the test does not wait it out."""
    stopper = threading.Thread(target=promoter.stop)
    stopper.start()
    while stopper.is_alive():
        app.client.lpush(app.keys.queue("default").promoter_wake, "1")
        stopper.join(0.05)


def test_scheduling_a_sooner_task_wakes_the_sleeping_promoter(redis_url: str | None) -> None:
    """A promoter asleep until a far due time wakes as soon as a sooner task is scheduled."""
    app = taskq.App(redis_url, settings=with_settings(promoter_max_sleep_s=20.0))
    app.task("noop")(lambda: None)
    wake_key = app.keys.queue("default").promoter_wake
    app.enqueue("noop", delay_s=600)
    promoter = taskq.Promoter(app, ["default"], "sleepy")
    promoter.start()
    try:
        time.sleep(0.2)  # let it compute its 20 s sleep and block
        later = app.enqueue("noop", delay_s=900)
        assert app.client.llen(wake_key) == 0, "a later task must not wake the promoter"

        sent = time.monotonic()
        soon = app.enqueue("noop", delay_s=0.3)
        assert soon.state() is taskq.State.SCHEDULED
        wait_for(lambda: soon.state() is taskq.State.READY, timeout_s=5,
                 message="the sooner task to be promoted")
        took_s = time.monotonic() - sent
    finally:
        stop_blocked_promoter(app, promoter)

    assert 0.25 <= took_s < 2.0
    assert later.state() is taskq.State.SCHEDULED


def test_promoter_buries_unreadable_records_and_counts_lost_ones(sched_app: taskq.App,
                                                                 fake_clock: taskq.FakeClock
                                                                 ) -> None:
    """A scheduled id whose record is garbage goes dead; one with no record is counted."""
    keys = sched_app.keys.queue("default")
    due = server_ms(sched_app) + 1000
    sched_app.client.zadd(keys.scheduled, {"garbled": due, "vanished": due})
    sched_app.client.hset(keys.tasks, "garbled", b"\x80\x04\x95not json")
    fake_clock.advance(1)

    assert promote_all(sched_app) == 0

    rec = sched_app.get("garbled", "default")
    assert rec.state is taskq.State.DEAD and rec.error["type"] == "CorruptRecord"
    assert structures_of(sched_app, "default", "garbled") == ["dead"]
    assert structures_of(sched_app, "default", "vanished") == []
    assert counters(sched_app)["orphaned"] == 1


def test_a_ready_id_without_a_record_is_dropped_and_counted(sched_app: taskq.App) -> None:
    """A claim that pops an id with no record counts it as orphaned and takes the next task."""
    sched_app.client.lpush(sched_app.keys.queue("default").ready(5), "ghost")
    seed_ready(sched_app, "real", "noop", '{"args": [], "kwargs": {}}')

    assert Stepper(sched_app).drain() == ["real"]
    assert counters(sched_app)["orphaned"] == 1
