"""Claim order: priority first, then arrival (FIFO or LIFO); strict or weighted across queues."""

from __future__ import annotations

import random
from collections import Counter

import pytest

import taskq
from tests.helpers import Stepper, counters, ready_ids, reap


@pytest.fixture
def noop_app(app: taskq.App) -> taskq.App:
    app.task("noop")(lambda *args: None)
    return app


def claim_order(app: taskq.App, queues: tuple[str, ...] = ("default",), **options: object
                ) -> list[str]:
    return Stepper(app, queues, **options).drain()


def test_higher_priority_runs_first_then_arrival_order(noop_app: taskq.App) -> None:
    """Across priorities the highest wins; within one, the oldest task goes first."""
    plan = [(3, "a"), (9, "b"), (0, "c"), (9, "d"), (3, "e"), (0, "f"), (5, "g")]
    for priority, task_id in plan:
        noop_app.enqueue("noop", priority=priority, task_id=task_id)

    assert ready_ids(noop_app) == ["b", "d", "g", "a", "e", "c", "f"]
    assert claim_order(noop_app) == ["b", "d", "g", "a", "e", "c", "f"]


@pytest.mark.parametrize("priority", [taskq.MAX_PRIORITY, taskq.MIN_PRIORITY])
@pytest.mark.parametrize("ids", [
    ["e", "d", "c", "b", "a"],
    [str(2**53 + n) for n in (9, 7, 5, 3, 1)],
    [f"{n:020d}" for n in (2**64 - 1, 2**64 - 2, 2**63, 2**53 + 1, 2**53)],
], ids=["letters", "near-2^53", "near-2^64"])
def test_fifo_holds_at_the_ends_of_the_priority_range(noop_app: taskq.App, priority: int,
                                                      ids: list[str]) -> None:
    """Arrival order wins over id order at the highest and lowest priority.

    Ready lists keep arrival order in list position, not in a score, so there is no arrival
    counter to overflow; ids that sort the other way or look like huge numbers change nothing.
    """
    for task_id in ids:
        noop_app.enqueue("noop", priority=priority, task_id=task_id)

    assert claim_order(noop_app) == ids


def test_lifo_queue_takes_the_newest_task_first_within_a_priority(noop_app: taskq.App) -> None:
    """A LIFO queue still honours priority, but serves the newest task of a level first."""
    noop_app.set_lifo("default", True)
    for priority, task_id in [(1, "old-low"), (7, "old-high"), (1, "new-low"), (7, "new-high")]:
        noop_app.enqueue("noop", priority=priority, task_id=task_id)

    assert claim_order(noop_app) == ["new-high", "old-high", "new-low", "old-low"]

    noop_app.set_lifo("default", False)
    for task_id in ["x", "y"]:
        noop_app.enqueue("noop", task_id=task_id)
    assert claim_order(noop_app) == ["x", "y"]


@pytest.mark.parametrize("lifo", [False, True], ids=["fifo", "lifo"])
def test_a_recovered_task_goes_to_the_front_of_its_level(clocked_app: taskq.App,
                                                         fake_clock: taskq.FakeClock,
                                                         lifo: bool) -> None:
    """A task whose lease expired is claimed next, ahead of tasks that waited less."""
    clocked_app.task("noop")(lambda: None)
    clocked_app.set_lifo("default", lifo)
    for task_id in ["first", "second", "third"]:
        clocked_app.enqueue("noop", task_id=task_id)
    lost = Stepper(clocked_app, worker_id="crashed").claim(1)[0].task_id

    fake_clock.advance(clocked_app.settings.lease_s + 0.001)
    reap(clocked_app)

    assert counters(clocked_app)["recovered"] == 1
    assert claim_order(clocked_app)[0] == lost


def test_tasks_recovered_together_keep_their_claim_order(clocked_app: taskq.App,
                                                        fake_clock: taskq.FakeClock) -> None:
    """Several expired leases recovered in one pass return ahead of the rest, oldest first."""
    clocked_app.task("noop")(lambda: None)
    for task_id in ["a", "b", "c", "d"]:
        clocked_app.enqueue("noop", task_id=task_id)
    crashed = Stepper(clocked_app, worker_id="crashed")
    crashed.claim(1)
    fake_clock.advance(0.1)
    crashed.claim(2)

    fake_clock.advance(clocked_app.settings.lease_s)
    reaper = reap(clocked_app)

    assert reaper.recovered_total == 3
    assert ready_ids(clocked_app) == ["a", "b", "c", "d"]


def test_released_tasks_go_back_to_the_front(noop_app: taskq.App) -> None:
    """Tasks a slot claimed ahead (prefetch) and then handed back are claimed next, in order."""
    for task_id in ["a", "b", "c", "d"]:
        noop_app.enqueue("noop", task_id=task_id)
    stepper = Stepper(noop_app, worker_id="prefetcher", prefetch=2)
    claimed = stepper.claim(3)
    assert [t.task_id for t in claimed] == ["a", "b", "c"]

    stepper.worker._release_claimed(claimed[1:])

    assert ready_ids(noop_app) == ["b", "c", "d"]


def test_strict_order_drains_the_first_queue_before_the_next(noop_app: taskq.App) -> None:
    """In strict order a later queue runs only when every earlier one is empty, whatever the
    priorities inside the queues."""
    noop_app.enqueue("noop", queue="low", priority=9, task_id="low-urgent")
    noop_app.enqueue("noop", queue="high", priority=0, task_id="high-1")
    noop_app.enqueue("noop", queue="high", priority=0, task_id="high-2")

    assert claim_order(noop_app, ("high", "low")) == ["high-1", "high-2", "low-urgent"]


def test_paused_queue_is_skipped_and_the_next_one_served(noop_app: taskq.App) -> None:
    """Pausing the first queue lets the next run; its own tasks wait untouched."""
    noop_app.enqueue("noop", queue="high", task_id="h")
    noop_app.enqueue("noop", queue="low", task_id="l")
    noop_app.pause("high")

    assert claim_order(noop_app, ("high", "low")) == ["l"]
    assert ready_ids(noop_app, "high") == ["h"]


def _serve_under_load(app: taskq.App, claims: int, **options: object) -> Counter[str]:
    """Keep both queues stocked and count which queue each claim serves."""
    stepper = Stepper(app, ("high", "low"), **options)
    for i in range(5):
        app.enqueue("noop", queue="low", task_id=f"low-{i}")
    served: Counter[str] = Counter()
    for i in range(claims):
        app.enqueue("noop", queue="high", task_id=f"high-{i}")
        app.enqueue("noop", queue="low", task_id=f"low-more-{i}")
        task = stepper.claim(1)[0]
        served[task.queue] += 1
        stepper.settle(stepper.run(task))
    return served


def test_strict_order_starves_a_queue_behind_a_busy_one(noop_app: taskq.App) -> None:
    """Strict order is a real priority: while the first queue has work, the next never runs."""
    served = _serve_under_load(noop_app, 120)
    assert served == Counter(high=120)


def test_weights_cure_starvation_in_proportion(noop_app: taskq.App) -> None:
    """With weights high=3, low=1 both queues stay busy and low gets about a quarter."""
    served = _serve_under_load(noop_app, 300, weights={"high": 3.0, "low": 1.0},
                               rng=random.Random(7))

    share = served["low"] / 300
    assert 0.17 < share < 0.33, served


def test_weighted_order_never_idles_while_any_queue_has_work(noop_app: taskq.App) -> None:
    """A weighted worker falls through to the other queue when the one drawn is empty."""
    for i in range(30):
        noop_app.enqueue("noop", queue="low", task_id=f"low-{i}")

    done = claim_order(noop_app, ("high", "low"), weights={"high": 100.0, "low": 0.01},
                       rng=random.Random(1))

    assert done == [f"low-{i}" for i in range(30)]


def test_weights_must_name_served_queues_with_positive_numbers(noop_app: taskq.App) -> None:
    """A weight for a queue the worker does not serve, or a weight of 0, is a setup mistake."""
    with pytest.raises(taskq.ConfigurationError, match="name a served queue"):
        taskq.Worker(noop_app, ["a"], weights={"b": 1.0})
    with pytest.raises(taskq.ConfigurationError, match="positive"):
        taskq.Worker(noop_app, ["a", "b"], weights={"a": 0.0})


def test_claim_takes_at_most_what_it_asks_for_in_claim_order(noop_app: taskq.App) -> None:
    """A batched claim takes tasks across priorities and queues in the same order as one by
    one, and never more than it asked for."""
    noop_app.enqueue("noop", queue="q1", priority=2, task_id="q1-low")
    noop_app.enqueue("noop", queue="q1", priority=8, task_id="q1-high")
    noop_app.enqueue("noop", queue="q2", priority=9, task_id="q2-top")
    stepper = Stepper(noop_app, ("q1", "q2"), prefetch=5)

    first = stepper.claim(2)
    rest = stepper.claim(5)

    assert [t.task_id for t in first] == ["q1-high", "q1-low"]
    assert [t.task_id for t in rest] == ["q2-top"]
