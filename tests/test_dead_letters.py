"""Dead letters: list, show, requeue (now, later, elsewhere), purge, and retention."""

from __future__ import annotations

import pytest

import taskq
from tests.conftest import with_settings
from tests.helpers import (
    Stepper,
    all_keys,
    counters,
    depths,
    due_ms,
    events,
    promote_all,
    ready_ids,
    reap,
    server_ms,
    structures_of,
    zset_ids,
)


def define_tasks(app: taskq.App) -> None:
    def fail(i: int, *padding: str) -> None:
        raise ValueError(f"order {i} rejected by gateway 0x{i:04x}")

    def crash(*args: int) -> None:
        raise KeyError("lost")

    app.task("fail", max_retries=0, result_ttl_s=0)(fail)
    app.task("crash", max_retries=0)(crash)
    app.task("fixed")(lambda *args: "ok")


@pytest.fixture
def dead_app(clocked_app: taskq.App) -> taskq.App:
    define_tasks(clocked_app)
    return clocked_app


def make_dead(app: taskq.App, clock: taskq.FakeClock, ids: list[str], name: str = "fail",
              queue: str = "default", step_s: float = 0.001, priority: int = 5) -> None:
    """Enqueue tasks with the given ids and let one worker fail each of them, oldest first,
    ``step_s`` apart on the clock."""
    app.enqueue_many([taskq.Call(name, (i,), task_id=task_id, queue=queue, priority=priority)
                      for i, task_id in enumerate(ids)])
    stepper = Stepper(app, (queue,))
    for _ in ids:
        clock.advance(step_s)
        stepper.step()


def test_dead_tasks_are_listed_newest_first_with_their_errors(dead_app: taskq.App,
                                                              fake_clock: taskq.FakeClock
                                                              ) -> None:
    """The dead list pages newest first; each entry carries the error that killed it."""
    make_dead(dead_app, fake_clock, ["d1", "d2", "d3"])

    assert dead_app.dead_ids("default") == ["d3", "d2", "d1"]
    assert dead_app.dead_ids("default", offset=1, limit=1) == ["d2"]
    letters = dead_app.dead_letters("default")
    assert [r.id for r in letters] == ["d3", "d2", "d1"]
    assert letters[0].error["message"] == "order 2 rejected by gateway 0x0002"
    shown = dead_app.get("d2")
    assert (shown.state, shown.args, shown.attempts) == (taskq.State.DEAD, [1], 1)


def test_dead_tasks_group_by_error_shape(dead_app: taskq.App, fake_clock: taskq.FakeClock
                                         ) -> None:
    """Messages differing only in numbers and ids share a group; other errors do not."""
    make_dead(dead_app, fake_clock, [f"f{i}" for i in range(4)])
    make_dead(dead_app, fake_clock, ["c1"], name="crash")

    groups = dead_app.dead_groups("default")

    assert [(g.error_type, g.count) for g in groups] == [("ValueError", 4), ("KeyError", 1)]
    assert sorted(groups[0].task_ids) == ["f0", "f1", "f2", "f3"]


def test_requeue_one_makes_it_ready_with_a_fresh_attempt_count(dead_app: taskq.App,
                                                                fake_clock: taskq.FakeClock
                                                                ) -> None:
    """A requeued task is ready again at its priority, attempts reset, last error kept."""
    make_dead(dead_app, fake_clock, ["a", "b"], priority=7)

    assert dead_app.requeue_dead("default", ["a"]) == 1

    rec = dead_app.get("a")
    assert (rec.state, rec.attempts) == (taskq.State.READY, 0)
    assert rec.error["type"] == "ValueError"
    assert structures_of(dead_app, "default", "a") == ["ready:7"]
    assert dead_app.dead_ids("default") == ["b"]
    assert counters(dead_app)["requeued"] == 1
    assert [e.task_id for e in events(dead_app, kind="requeued")] == ["a"]


def test_requeue_many_and_all(dead_app: taskq.App, fake_clock: taskq.FakeClock) -> None:
    """Requeue takes a list of ids, or every dead task of the queue when given none."""
    make_dead(dead_app, fake_clock, [f"t{i}" for i in range(6)])

    assert dead_app.requeue_dead("default", ["t1", "t3", "not-dead"]) == 2
    assert dead_app.requeue_dead("default") == 4

    assert depths(dead_app)["dead"] == 0
    assert sorted(ready_ids(dead_app)) == [f"t{i}" for i in range(6)]


def test_requeue_with_a_delay_schedules_the_task(dead_app: taskq.App,
                                                 fake_clock: taskq.FakeClock) -> None:
    """A delayed requeue puts the task in the scheduled set and wakes the promoter."""
    make_dead(dead_app, fake_clock, ["later"])
    wake_key = dead_app.keys.queue("default").promoter_wake
    dead_app.client.delete(wake_key)

    assert dead_app.requeue_dead("default", ["later"], delay_s=30) == 1

    assert dead_app.get("later").state is taskq.State.SCHEDULED
    assert due_ms(dead_app, "default", "later") == server_ms(dead_app) + 30_000
    assert dead_app.client.llen(wake_key) == 1
    fake_clock.advance(30)
    assert promote_all(dead_app) == 1
    assert ready_ids(dead_app) == ["later"]


def test_requeue_to_another_queue_moves_the_task_whole(dead_app: taskq.App,
                                                       fake_clock: taskq.FakeClock) -> None:
    """Moving a dead task to another queue keeps its id, name, arguments and priority and
    leaves no trace in the old queue."""
    make_dead(dead_app, fake_clock, ["mover", "stayer"], priority=2)

    assert dead_app.requeue_dead("default", ["mover"], to_queue="repair") == 1

    moved = dead_app.get("mover", "repair")
    assert (moved.state, moved.name, moved.args, moved.priority, moved.attempts) == (
        taskq.State.READY, "fail", [0], 2, 0)
    assert structures_of(dead_app, "repair", "mover") == ["ready:2"]
    assert structures_of(dead_app, "default", "mover") == []
    with pytest.raises(taskq.TaskNotFoundError):
        dead_app.get("mover", "default")
    assert dead_app.dead_ids("default") == ["stayer"]
    assert "repair" in dead_app.queues()


def test_requeue_elsewhere_never_loses_a_task_whose_id_is_taken_there(
        dead_app: taskq.App, fake_clock: taskq.FakeClock) -> None:
    """When the target queue already holds a record with that id, the dead task stays put."""
    dead_app.enqueue("fixed", task_id="clash", queue="repair")
    make_dead(dead_app, fake_clock, ["clash"])

    assert dead_app.requeue_dead("default", ["clash"], to_queue="repair") == 0

    assert dead_app.dead_ids("default") == ["clash"]
    assert dead_app.get("clash", "default").args == [0]
    assert dead_app.get("clash", "repair").name == "fixed"


def test_requeue_with_a_delay_to_another_queue(dead_app: taskq.App,
                                               fake_clock: taskq.FakeClock) -> None:
    """A delayed move lands in the other queue's scheduled set."""
    make_dead(dead_app, fake_clock, ["x"])

    dead_app.requeue_dead("default", ["x"], delay_s=5, to_queue="repair")

    assert due_ms(dead_app, "repair", "x") == server_ms(dead_app) + 5000


def test_requeued_task_runs_again(dead_app: taskq.App) -> None:
    """After the cause is fixed, a requeued task runs and succeeds."""
    cause = {"fixed": False}

    def until_fixed() -> str:
        if not cause["fixed"]:
            raise RuntimeError("still broken")
        return "ok"

    dead_app.task("until_fixed", max_retries=0)(until_fixed)
    handle = dead_app.enqueue("until_fixed")
    Stepper(dead_app).step()
    assert handle.state() is taskq.State.DEAD

    cause["fixed"] = True
    dead_app.requeue_dead("default", [handle.id])
    Stepper(dead_app).step()

    assert handle.result(timeout_s=1) == "ok"


def test_purge_deletes_dead_tasks_for_good(dead_app: taskq.App, fake_clock: taskq.FakeClock
                                           ) -> None:
    """Purge removes the dead entry, the record and the arguments, one, many or all."""
    make_dead(dead_app, fake_clock, [f"p{i}" for i in range(5)], name="crash")
    dead_app.enqueue("fixed", task_id="alive")
    keys = dead_app.keys.queue("default")

    assert dead_app.purge_dead("default", ["p0"]) == 1
    assert dead_app.purge_dead("default", ["p1", "p2", "alive"]) == 2
    assert dead_app.purge_dead("default") == 2

    assert depths(dead_app)["dead"] == 0
    assert dead_app.client.hkeys(keys.tasks) == [b"alive"]
    assert dead_app.client.hkeys(keys.args) == [b"alive"]
    assert counters(dead_app)["purged"] == 5
    assert len(events(dead_app, kind="purged")) == 5


def _metrics_and_registry_keys(app: taskq.App) -> set[str]:
    keys = app.keys.queue("default")
    g = app.keys.global_keys
    return {keys.counters, keys.rate, keys.events, keys.wait_hist, keys.run_hist, keys.wake,
            keys.promoter_wake, g.queues, g.workers, g.worker_info, g.events}


def test_dead_tasks_expire_with_all_their_data(redis_url: str | None) -> None:
    """After the dead retention, no dead entry, record or argument of those tasks is left:
    only metrics keys remain, and the removal shows in the counters."""
    clock = taskq.FakeClock(start_s=1_800_000_000)
    app = taskq.App(redis_url, settings=with_settings(dead_retention_s=30.0,
                                                      dead_max_count=None), clock=clock)
    define_tasks(app)
    baseline = all_keys(app)
    padding = "z" * 10_240
    ids = [f"big-{i}" for i in range(400)]
    app.enqueue_many([taskq.Call("fail", (i, padding), task_id=t) for i, t in enumerate(ids)])
    Stepper(app).drain()
    assert depths(app)["dead"] == 400

    clock.advance(29.9)
    reap(app)
    assert depths(app)["dead"] == 400
    clock.advance(0.2)
    reap(app)

    keys = app.keys.queue("default")
    assert depths(app)["dead"] == 0
    for key in (keys.tasks, keys.args, keys.results, keys.dead):
        assert app.client.exists(key) == 0, key
    assert all_keys(app) - baseline <= _metrics_and_registry_keys(app)
    assert counters(app)["dead_trimmed"] == 400
    snapshot = taskq.take_snapshot(app)
    assert snapshot.dead == 0 and snapshot.to_dict()["totals"]["dead_trimmed"] == 400
    trims = events(app, kind="trimmed")
    assert sum(int(e.fields["dead_trimmed"]) for e in trims) == 400


def test_dead_count_cap_keeps_only_the_newest(redis_url: str | None) -> None:
    """With a count cap, the newest dead tasks stay and every older one is gone whole, even
    when trimming takes several batches."""
    clock = taskq.FakeClock(start_s=1_800_000_000)
    app = taskq.App(redis_url, settings=with_settings(dead_retention_s=None, dead_max_count=100,
                                                      reaper_batch=40), clock=clock)
    define_tasks(app)
    ids = [f"n{i:03d}" for i in range(300)]
    make_dead(app, clock, ids)

    reap(app)

    keys = app.keys.queue("default")
    assert sorted(zset_ids(app, keys.dead)) == ids[200:]
    assert app.client.hlen(keys.tasks) == 100 and app.client.hlen(keys.args) == 100
    assert not any(app.client.hexists(keys.tasks, t) for t in ids[:200])
    assert counters(app)["dead_trimmed"] == 200
    assert taskq.take_snapshot(app).queues["default"].counters["dead_trimmed"] == 200


def test_without_retention_dead_tasks_stay(redis_url: str | None) -> None:
    """Retention switched off (no age, no cap) keeps every dead task."""
    clock = taskq.FakeClock(start_s=1_800_000_000)
    app = taskq.App(redis_url, settings=with_settings(dead_retention_s=None,
                                                      dead_max_count=None), clock=clock)
    define_tasks(app)
    make_dead(app, clock, ["keep-1", "keep-2"])

    clock.advance(10 * 365 * 24 * 3600)
    reap(app)

    assert depths(app)["dead"] == 2
    assert "dead_trimmed" not in counters(app)
