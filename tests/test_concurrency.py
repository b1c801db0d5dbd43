"""Concurrency: many threads, processes and real worker processes claim from one queue, and
every task is claimed, and run, exactly once."""

from __future__ import annotations

import multiprocessing
import signal
import threading
from collections import Counter

import pytest

import taskq
from tests.conftest import start_worker_process, with_settings
from tests.helpers import depths, wait_for

TOTAL = 10_000
BATCH = 25


def fill(app: taskq.App, total: int = TOTAL) -> None:
    app.task("noop")(lambda: None)
    app.enqueue_many([taskq.Call("noop", task_id=f"t{i:05d}") for i in range(total)])


def claim_until_empty(app: taskq.App, worker: str) -> list[str]:
    """Claim in batches until the queue is empty; return the ids this claimer got."""
    keys = [app.keys.queue("default")]
    lease_ms = 600_000
    got: list[str] = []
    while True:
        claimed, _ = app.scripts.claim(app.now(), worker, lease_ms, BATCH, keys, [])
        if not claimed:
            return got
        got.extend(task.task_id for task in claimed)


def _claim_in_process(redis_url: str, worker: str, results: multiprocessing.Queue) -> None:
    app = taskq.App(redis_url, settings=with_settings())
    results.put(claim_until_empty(app, worker))


def assert_each_claimed_once(app: taskq.App, claims: list[list[str]]) -> None:
    counts = Counter(task_id for got in claims for task_id in got)
    assert len(counts) == TOTAL and set(counts.values()) == {1}
    assert all(got for got in claims), "every claimer should have won some tasks"
    assert depths(app) == {"ready": 0, "scheduled": 0, "active": TOTAL, "dead": 0,
                           "finished": 0}


@pytest.mark.slow
def test_eight_threads_claim_each_task_exactly_once(app: taskq.App) -> None:
    """Eight threads racing over 10,000 ready tasks never claim one twice or lose one."""
    fill(app)
    claims: list[list[str]] = [[] for _ in range(8)]
    start = threading.Barrier(8)

    def claimer(index: int) -> None:
        start.wait()
        claims[index] = claim_until_empty(app, f"thread-{index}")

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    assert_each_claimed_once(app, claims)


@pytest.mark.slow
def test_four_processes_claim_each_task_exactly_once(real_redis_url: str) -> None:
    """Four processes, each with its own connection, split 10,000 tasks without overlap."""
    app = taskq.App(real_redis_url, settings=with_settings())
    fill(app)
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue = context.Queue()
    processes = [context.Process(target=_claim_in_process,
                                 args=(real_redis_url, f"process-{i}", results))
                 for i in range(4)]
    for process in processes:
        process.start()
    claims = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(30)

    assert [p.exitcode for p in processes] == [0, 0, 0, 0]
    assert_each_claimed_once(app, claims)


@pytest.mark.slow
def test_worker_processes_run_each_task_exactly_once(real_redis_url: str) -> None:
    """Two `taskq worker` processes with four slots each, and a promoter each racing over the
    delayed half, run 2,000 tasks: every id exactly once, all succeeded, then both stop
    cleanly on SIGTERM."""
    app = taskq.App(real_redis_url, settings=with_settings())
    app.task("record_run", max_retries=3)(lambda log_key: None)
    log_key = "concurrency:runs"
    now_calls = [taskq.Call("record_run", (log_key,), task_id=f"now-{i}") for i in range(1000)]
    later_calls = [taskq.Call("record_run", (log_key,), task_id=f"later-{i}", delay_s=0.5)
                   for i in range(1000)]
    app.enqueue_many(now_calls + later_calls)

    workers = [start_worker_process(real_redis_url, concurrency=4,
                                    extra=["--worker-id", f"proc-{i}"]) for i in range(2)]
    try:
        wait_for(lambda: app.client.llen(log_key) >= 2000 and depths(app)["active"] == 0,
                 timeout_s=60, interval_s=0.1, message="2,000 runs")
        for process in workers:
            process.send_signal(signal.SIGTERM)
        codes = [process.wait(15) for process in workers]
    finally:
        for process in workers:
            if process.poll() is None:
                process.kill()
                process.wait(5)

    runs = Counter(x.decode() for x in app.client.lrange(log_key, 0, -1))
    assert codes == [0, 0]
    assert len(runs) == 2000 and set(runs.values()) == {1}
    snapshot = taskq.take_snapshot(app, ["default"])
    assert snapshot.queues["default"].counters["succeeded"] == 2000
    assert (snapshot.ready, snapshot.scheduled, snapshot.active, snapshot.dead) == (0, 0, 0, 0)
    assert {w.id: w.processed for w in snapshot.workers}.keys() == {"proc-0", "proc-1"}
    assert all(w.processed > 0 for w in snapshot.workers), "both workers should share the work"
