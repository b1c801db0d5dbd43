"""Helpers that seed and read queue state in domain terms, for the engine's contract suite.

A task's *structure* is the Redis structure that holds its id: ``ready:<priority>`` (a ready
list), ``scheduled``, ``active``, ``dead`` or ``finished``. ``structures_of`` reads where an id
really is; ``structure_for_state`` says where its state puts it. ``Stepper`` drives one
worker's claim, run and settle cycle in the test's own thread, so tests that use a fake clock
decide exactly when each step happens.

``pool_app`` registers the task bodies that process-pool tests run in child processes; the
child imports it as ``tests.helpers:pool_app``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import taskq
from taskq.runner import ThreadRunner, Watchdog
from taskq.scripts import ClaimedTask
from taskq.settings import MAX_PRIORITY, MIN_PRIORITY
from tests.conftest import FAST_SETTINGS, wait_until

QUEUE = "default"

# Where each state keeps its task id (succeeded and cancelled records sit in `finished` while
# their retention runs; a record kept for 0 s has no structure at all).
STATE_STRUCTURE = {
    taskq.State.SCHEDULED: "scheduled",
    taskq.State.RETRYING: "scheduled",
    taskq.State.ACTIVE: "active",
    taskq.State.DEAD: "dead",
    taskq.State.SUCCEEDED: "finished",
    taskq.State.CANCELLED: "finished",
}


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


# Reading state.

def structures_of(app: taskq.App, queue: str, task_id: str) -> list[str]:
    """Every structure of ``queue`` that holds ``task_id``, once per occurrence, read in one
    MULTI/EXEC so a task moving meanwhile is never seen in two places or in none."""
    keys = app.keys.queue(queue)
    pipe = app.client.pipeline(transaction=True)
    levels = list(range(MAX_PRIORITY, MIN_PRIORITY - 1, -1))
    for priority in levels:
        pipe.lrange(keys.ready(priority), 0, -1)
    for name in ("scheduled", "active", "dead", "finished"):
        pipe.zscore(getattr(keys, name), task_id)
    replies = pipe.execute()
    found = []
    for priority, members in zip(levels, replies[:len(levels)]):
        found.extend(f"ready:{priority}" for m in members if _text(m) == task_id)
    for name, score in zip(("scheduled", "active", "dead", "finished"), replies[len(levels):]):
        if score is not None:
            found.append(name)
    return found


def locate_all(app: taskq.App, queue: str = QUEUE
               ) -> tuple[dict[str, list[str]], dict[str, dict[str, Any]]]:
    """Every id found in any structure of ``queue``, with the structures holding it, and every
    stored record; read in one MULTI/EXEC."""
    keys = app.keys.queue(queue)
    pipe = app.client.pipeline(transaction=True)
    levels = list(range(MAX_PRIORITY, MIN_PRIORITY - 1, -1))
    for priority in levels:
        pipe.lrange(keys.ready(priority), 0, -1)
    names = ("scheduled", "active", "dead", "finished")
    for name in names:
        pipe.zrange(getattr(keys, name), 0, -1)
    pipe.hgetall(keys.tasks)
    replies = pipe.execute()
    where: dict[str, list[str]] = {}
    for priority, members in zip(levels, replies[:len(levels)]):
        for member in members:
            where.setdefault(_text(member), []).append(f"ready:{priority}")
    for name, members in zip(names, replies[len(levels):len(levels) + len(names)]):
        for member in members:
            where.setdefault(_text(member), []).append(name)
    records = {_text(k): json.loads(v) for k, v in replies[-1].items()}
    return where, records


def structure_for_state(state: taskq.State, priority: int) -> str:
    """The one structure a task in ``state`` belongs to."""
    if state is taskq.State.READY:
        return f"ready:{priority}"
    return STATE_STRUCTURE[state]


def raw_record(app: taskq.App, queue: str, task_id: str) -> dict[str, Any] | None:
    """The stored record as a dict (lease token included), or None when it is gone."""
    raw = app.client.hget(app.keys.queue(queue).tasks, task_id)
    return None if raw is None else json.loads(raw)


def assert_where_state_says(app: taskq.App, queue: str, task_id: str) -> str:
    """Assert the task sits in exactly the structure its recorded state names; return it."""
    rec = app.get(task_id, queue)
    expected = structure_for_state(rec.state, rec.priority)
    found = structures_of(app, queue, task_id)
    assert found == [expected], f"task {task_id} is {rec.state.value} but sits in {found}"
    return expected


def ready_ids(app: taskq.App, queue: str = QUEUE) -> list[str]:
    """Ready ids of a FIFO queue in the order claims take them: priority, then arrival."""
    keys = app.keys.queue(queue)
    out: list[str] = []
    for key in keys.ready_all():
        out.extend(_text(m) for m in reversed(app.client.lrange(key, 0, -1)))
    return out


def zset_ids(app: taskq.App, key: str) -> list[str]:
    return [_text(m) for m in app.client.zrange(key, 0, -1)]


def depths(app: taskq.App, queue: str = QUEUE) -> dict[str, int]:
    """Sizes of a queue's structures: ready (all priorities), scheduled, active, dead, finished."""
    keys = app.keys.queue(queue)
    pipe = app.client.pipeline(transaction=True)
    for key in keys.ready_all():
        pipe.llen(key)
    for name in ("scheduled", "active", "dead", "finished"):
        pipe.zcard(getattr(keys, name))
    replies = pipe.execute()
    levels = len(keys.ready_all())
    out = {"ready": sum(replies[:levels])}
    out.update(zip(("scheduled", "active", "dead", "finished"), replies[levels:]))
    return out


def counters(app: taskq.App, queue: str = QUEUE) -> dict[str, int]:
    raw = app.client.hgetall(app.keys.queue(queue).counters)
    return {_text(k): int(v) for k, v in raw.items()}


def events(app: taskq.App, queue: str = QUEUE, kind: str | None = None,
           task_id: str | None = None) -> list[taskq.Event]:
    """Every event still in a queue's stream, oldest first, optionally filtered."""
    found, _ = taskq.read_events(app, {app.keys.queue(queue).events: "0"}, count=1_000_000)
    return [e for e in found if (kind is None or e.kind == kind)
            and (task_id is None or e.task_id == task_id)]


def worker_events(app: taskq.App, kind: str | None = None) -> list[taskq.Event]:
    found, _ = taskq.read_events(app, {app.keys.global_keys.events: "0"}, count=100_000)
    return [e for e in found if kind is None or e.kind == kind]


def key_count(app: taskq.App) -> int:
    return int(app.client.dbsize())


def all_keys(app: taskq.App) -> set[str]:
    return {_text(k) for k in app.client.keys("*")}


def server_ms(app: taskq.App) -> int:
    """The Redis server's clock (or the fake clock when the app has one), in ms."""
    if isinstance(app.clock, taskq.FakeClock):
        return round(app.clock.now_s() * 1000)
    seconds, micros = app.client.time()
    return int(seconds) * 1000 + int(micros) // 1000


def due_ms(app: taskq.App, queue: str, task_id: str) -> int | None:
    score = app.client.zscore(app.keys.queue(queue).scheduled, task_id)
    return None if score is None else int(score)


def lease_deadline_ms(app: taskq.App, queue: str, task_id: str) -> int | None:
    score = app.client.zscore(app.keys.queue(queue).active, task_id)
    return None if score is None else int(score)


# Seeding state the public API cannot produce.

def seed_ready(app: taskq.App, task_id: str, name: str, args_raw: bytes | str | None,
               queue: str = QUEUE, priority: int = 5, **fields: Any) -> None:
    """Write a ready task by hand (record, raw arguments, ready list), as a foreign producer
    or a damaged payload would leave it."""
    keys = app.keys.queue(queue)
    record = {"id": task_id, "name": name, "queue": queue, "priority": priority,
              "max_retries": 3, "state": "ready", "attempts": 0,
              "backoff": {"min_s": 0.05, "max_s": 0.2, "factor": 2, "jitter": 0.25},
              "timeout_s": None, "result_ttl_s": 60, **fields}
    app.client.sadd(app.keys.global_keys.queues, queue)
    app.client.hset(keys.tasks, task_id, json.dumps(record))
    if args_raw is not None:
        app.client.hset(keys.args, task_id, args_raw)
    app.client.lpush(keys.ready(priority), task_id)


# Driving a worker step by step.

_watchdog: Watchdog | None = None
_watchdog_lock = threading.Lock()


def shared_watchdog() -> Watchdog:
    global _watchdog
    with _watchdog_lock:
        if _watchdog is None:
            _watchdog = Watchdog()
        return _watchdog


class Stepper:
    """One worker whose claim, run and settle steps happen in the calling thread, on demand.

    It uses the worker's own claim, execute and failure code, so outcomes are recorded exactly
    as a running worker records them, but nothing happens in the background.
    """

    def __init__(self, app: taskq.App, queues: Iterable[str] = (QUEUE,),
                 worker_id: str = "stepper", **options: Any) -> None:
        self.app = app
        self.worker = taskq.Worker(app, list(queues), 1, worker_id=worker_id,
                                   run_promoter=False, run_reaper=False, **options)
        self.runner = ThreadRunner(app, shared_watchdog())

    @property
    def id(self) -> str:
        return self.worker.id

    def claim(self, want: int = 1) -> list[ClaimedTask]:
        return self.worker._claim(want, [])

    def run(self, task: ClaimedTask) -> tuple[str, str, str, str, int] | None:
        """Run a claimed task; a failure is recorded at once, a success is returned to settle."""
        return self.worker._execute(task, self.runner)

    def settle(self, *settles: tuple[str, str, str, str, int] | None) -> None:
        self.worker._claim(0, [s for s in settles if s is not None])

    def step(self) -> str | None:
        """Claim one task, run it and record its outcome; return its id (None when idle)."""
        claimed = self.claim(1)
        if not claimed:
            return None
        self.settle(self.run(claimed[0]))
        return claimed[0].task_id

    def drain(self, limit: int = 10_000) -> list[str]:
        """Step until nothing is ready; return the ids run, in order."""
        done = []
        for _ in range(limit):
            task_id = self.step()
            if task_id is None:
                break
            done.append(task_id)
        return done

    def beat(self) -> None:
        self.worker.beat()


def promote_all(app: taskq.App, queues: Iterable[str] = (QUEUE,)) -> int:
    """Run one promoter tick; return the number of tasks moved to ready."""
    promoter = taskq.Promoter(app, list(queues), "test-promoter")
    promoter.tick()
    return promoter.moved_total


def reap(app: taskq.App, queues: Iterable[str] = (QUEUE,)) -> taskq.Reaper:
    """Run one reaper tick (lease recovery, worker liveness, retention) and return the reaper."""
    reaper = taskq.Reaper(app, list(queues), "test-reaper")
    reaper.tick()
    return reaper


@contextmanager
def worker_running(app: taskq.App, queues: Iterable[str] = (QUEUE,), concurrency: int = 1,
                   **options: Any) -> Iterator[taskq.Worker]:
    """A started worker with its loops, stopped (without grace) when the block ends."""
    worker = taskq.Worker(app, list(queues), concurrency, **options)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop(grace_s=0)


def wait_for(predicate: Any, timeout_s: float = 10.0, interval_s: float = 0.01,
             message: str = "condition") -> Any:
    """Poll ``predicate`` until truthy; fail the test after ``timeout_s`` (see wait_until)."""
    return wait_until(predicate, timeout_s, interval_s, message)


# Task bodies for process-pool tests: the child process imports ``pool_app`` by its spec.

POOL_APP_SPEC = "tests.helpers:pool_app"


def spin(seconds: float) -> int:
    """Keep the CPU busy in pure Python for ``seconds``."""
    deadline = time.perf_counter() + seconds
    spins = 0
    while time.perf_counter() < deadline:
        spins += 1
    return spins


def nap(seconds: float) -> str:
    time.sleep(seconds)
    return "woke"


def report_half() -> str:
    taskq.current_task().progress(0.5, "half way")
    return "done"


def crash_process() -> None:
    """End the process at once, as a segfault or an out-of-memory kill would."""
    os._exit(3)


def define_pool_tasks(app: taskq.App) -> None:
    """Register the process-pool task bodies on ``app`` (the worker's app and ``pool_app``
    must both know them: the worker checks the name, the child runs the body)."""
    app.task("pool.spin", max_retries=0, timeout_s=0.5)(spin)
    app.task("pool.nap", max_retries=0, timeout_s=0.5)(nap)
    app.task("pool.progress", max_retries=0)(report_half)
    app.task("pool.busy", max_retries=0)(spin)
    app.task("pool.crash", max_retries=0)(crash_process)


pool_app = taskq.App(settings=FAST_SETTINGS)
define_pool_tasks(pool_app)

# A process-pool child imports this module to find ``pool_app``; tests set this variable to
# make that start-up slow on purpose.
if os.environ.get("TASKQ_TEST_POOL_IMPORT_DELAY_S"):
    time.sleep(float(os.environ["TASKQ_TEST_POOL_IMPORT_DELAY_S"]))
