"""Priorities keep arrival order within each level, and out-of-range priorities are rejected.

Each priority has its own ready list, so order within a level comes from list position and no
sorted-set score mixes priority with an arrival counter: there is no number that can pass 2^53.
The repeat runs with the clock near the largest time a datetime can hold, so every time-derived
number the scripts store is as large as it gets. Ids are chosen so that alphabetical order is
the reverse of arrival order, which would show any fallback to ordering by member name.
"""

from __future__ import annotations

import math

import pytest

import taskq
from tests.conftest import wait_until

pytestmark = pytest.mark.chaos  # the reported-failure scenarios are part of the chaos suite

YEAR_9999_S = 253_402_300_000.0  # 9999-12-31, near datetime's largest value
LEVELS = (taskq.MAX_PRIORITY, taskq.MIN_PRIORITY)
PER_LEVEL = 5


def run_order(app: taskq.App, arrivals: list[tuple[str, int]]) -> list[str]:
    """Enqueue (id, priority) pairs in order, then run them with one slot; returns run order."""
    ran: list[str] = []
    app.task("note")(lambda: ran.append(taskq.current_task().task_id))
    for task_id, priority in arrivals:
        app.enqueue("note", priority=priority, task_id=task_id)
    worker = taskq.Worker(app, concurrency=1, run_promoter=False, run_reaper=False)
    worker.start()
    try:
        wait_until(lambda: len(ran) == len(arrivals), timeout_s=20, message="all tasks ran")
    finally:
        worker.stop(grace_s=1)
    return ran


def arrivals_reverse_alphabetical() -> list[tuple[str, int]]:
    """Five tasks at the lowest and five at the highest priority, interleaved; the id of each
    later arrival sorts before the id of every earlier one at its level."""
    out = []
    for n in range(PER_LEVEL):
        for priority in (taskq.MIN_PRIORITY, taskq.MAX_PRIORITY):
            out.append((f"p{priority}-{'zyxwv'[n]}", priority))
    return out


def expected_order(arrivals: list[tuple[str, int]]) -> list[str]:
    return [task_id for level in LEVELS for task_id, p in arrivals if p == level]


def test_fifo_within_each_priority(app: taskq.App) -> None:
    """The highest level runs first; within a level, tasks run in arrival order."""
    arrivals = arrivals_reverse_alphabetical()

    assert run_order(app, arrivals) == expected_order(arrivals)


def test_fifo_with_clock_near_maximum(redis_url: str | None) -> None:
    """The same order holds when every stored time is near its largest value."""
    app = taskq.App(redis_url, clock=taskq.FakeClock(YEAR_9999_S))
    arrivals = arrivals_reverse_alphabetical()

    assert run_order(app, arrivals) == expected_order(arrivals)


def test_same_due_time_promotes_by_id(redis_url: str | None) -> None:
    """Tasks due in the same millisecond become ready in task-id order (the documented rule),
    tasks due at different times in due-time order."""
    clock = taskq.FakeClock(1_800_000_000.0)
    app = taskq.App(redis_url, clock=clock)
    app.task("note")(lambda: None)
    for task_id in ("d", "c", "b", "a"):
        app.enqueue("note", delay_s=10, task_id=task_id)
    app.enqueue("note", delay_s=5, task_id="later-id-earlier-due")
    clock.advance(10)

    promoter = taskq.Promoter(app, ["default"], "test")
    promoter.tick()

    ready = app.client.lrange(app.keys.queue("default").ready(taskq.DEFAULT_PRIORITY), 0, -1)
    claim_order = [x.decode() for x in reversed(ready)]  # FIFO claims pop from the right
    assert claim_order == ["later-id-earlier-due", "a", "b", "c", "d"]


INVALID_PRIORITIES = [taskq.MAX_PRIORITY + 1, taskq.MIN_PRIORITY - 1, math.nan, 1.5, True,
                      "high!"]


@pytest.mark.parametrize("priority", INVALID_PRIORITIES, ids=repr)
def test_invalid_priority_rejected(app: taskq.App, priority: object) -> None:
    """Enqueue raises naming the allowed range, and no key is written."""
    app.task("note")(lambda: None)
    keys_before = app.client.dbsize()

    with pytest.raises(taskq.InvalidTaskError) as caught:
        app.enqueue("note", priority=priority)  # type: ignore[arg-type]

    message = str(caught.value)
    assert f"from {taskq.MIN_PRIORITY} (lowest) to {taskq.MAX_PRIORITY} (highest)" in message
    assert repr(priority) in message or str(priority) in message
    assert app.client.dbsize() == keys_before


@pytest.mark.parametrize("priority", INVALID_PRIORITIES, ids=repr)
def test_invalid_priority_in_batch_writes_nothing(app: taskq.App, priority: object) -> None:
    """One invalid priority in a bulk enqueue rejects the whole batch before any write."""
    app.task("note")(lambda: None)
    keys_before = app.client.dbsize()
    calls = [taskq.Call("note"), taskq.Call("note", priority=priority)]  # type: ignore[arg-type]

    with pytest.raises(taskq.InvalidTaskError):
        app.enqueue_many(calls)

    assert app.client.dbsize() == keys_before


@pytest.mark.parametrize("priority", INVALID_PRIORITIES, ids=repr)
def test_invalid_default_priority_rejected(app: taskq.App, priority: object) -> None:
    """Registering a task with an invalid default priority raises at once."""
    with pytest.raises(taskq.InvalidTaskError):
        app.task("note", priority=priority)(lambda: None)  # type: ignore[arg-type]
