"""Dead tasks expire with all their data: record, arguments and result, not only the dead entry.

Tasks with a 10 KB argument fail at once (no retries, no result retention). Time rule: dead
letters are kept 3 s (the case's 30 s, divided by 10) and the janitor runs every 0.2 s. Count
rule: only the newest 1,000 dead letters are kept. Each rule runs on a private Redis server, so
its used memory belongs to this test alone.

Memory is read with no client but the measuring one connected, after deleting the queue's
metrics and worker keys (counters, rates, histograms, event streams, worker records), the script
cache and the slow log, which all hold data that is not a task's. Redis 7.0 also keeps some
internal allocations at their high-water mark once a run of a given size has happened (about
128 KB with no key left at all), so the time rule runs its 10,000 tasks as two batches of 5,000
and compares the memory after the second with the memory after the first: a residue per task
would grow it by 5,000 times that residue.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import redis

import taskq
from tests.cases.case_apps import (
    RETENTION_COUNT_SETTINGS,
    RETENTION_TIME_SETTINGS,
    retention_count_app,
    retention_time_app,
)
from tests.cases.support import WorkerProcess, counters, mirror_app, text
from tests.conftest import wait_until, with_settings
from tests.redis_servers import RedisServer

pytestmark = pytest.mark.chaos  # the reported-failure scenarios are part of the chaos suite

TASKS = 10_000
PAYLOAD = "x" * 10_240
CHUNK = 250
WORKERS = 4
# Allowance for process scheduling on a loaded two-core machine, added to computed bounds.
SCHEDULING_SLACK_S = 5.0


def metrics_and_worker_keys(app: taskq.App) -> list[str]:
    keys = app.keys.queue("default")
    names = app.keys.global_keys
    return [keys.counters, keys.rate, keys.wait_hist, keys.run_hist, keys.events, keys.wake,
            keys.promoter_wake, names.queues, names.workers, names.worker_info,
            names.worker_control, names.events]


def data_footprint(server: RedisServer, app: taskq.App) -> tuple[set[str], int]:
    """The keys left and the used memory once every client but this one is gone and the
    metrics and worker keys, scripts and slow log are deleted."""
    client = server.client()
    try:
        wait_until(lambda: client.info("clients")["connected_clients"] == 1, timeout_s=10,
                   message="other clients disconnected")
        client.delete(*metrics_and_worker_keys(app))
        client.script_flush("SYNC")
        client.slowlog_reset()
        keys = {text(k) for k in client.keys("*")}
        return keys, int(client.info("memory")["used_memory"])
    finally:
        client.close()


def run_failing(url: str, app: taskq.App, app_spec: str, ids: list[str],
                worker_processes: Callable[..., WorkerProcess]) -> list[WorkerProcess]:
    """Enqueue one failing task per id and start the workers that run them."""
    for start in range(0, len(ids), CHUNK):
        app.enqueue_many(taskq.Call("fail_with_payload", (PAYLOAD,), task_id=task_id)
                         for task_id in ids[start:start + CHUNK])
    return [worker_processes(url, app_spec=app_spec, concurrency=4) for _ in range(WORKERS)]


def records_left(client: redis.Redis, app: taskq.App, ids: list[str]) -> int:
    """Ids that still have a record, arguments or a result."""
    keys = app.keys.queue("default")
    pipe = client.pipeline(transaction=False)
    for task_id in ids:
        pipe.hexists(keys.tasks, task_id)
        pipe.hexists(keys.args, task_id)
        pipe.hexists(keys.results, task_id)
    replies = pipe.execute()
    return sum(1 for i in range(0, len(replies), 3) if any(replies[i:i + 3]))


def stop_all(workers: list[WorkerProcess], app: taskq.App) -> None:
    for worker in workers:
        worker.kill()
    app.client.connection_pool.disconnect()


def test_dead_retention_by_time(redis_server: RedisServer,
                                worker_processes: Callable[..., WorkerProcess]) -> None:
    """Every trace of the dead tasks goes; keys and used memory return to the baseline."""
    url, spec = redis_server.url, "tests.cases.case_apps:retention_time_app"
    app = mirror_app(retention_time_app, url)
    retention_s = RETENTION_TIME_SETTINGS.dead_retention_s
    janitor_s = RETENTION_TIME_SETTINGS.janitor_interval_s
    assert retention_s is not None
    keys_at_start, _ = data_footprint(redis_server, app)
    batches = [[f"c08-{b}-{i:05d}" for i in range(TASKS // 2)] for b in range(2)]
    footprints: list[tuple[set[str], int]] = []
    emptied_after: list[float] = []

    for ids in batches:
        workers = run_failing(url, app, spec, ids, worker_processes)
        # data_footprint deleted the counters after the previous batch: they count this one.
        wait_until(lambda ids=ids: counters(app)["dead"] == len(ids), timeout_s=120,
                   interval_s=0.1, message="every task of the batch dead")
        last_dead = time.monotonic()
        wait_until(lambda: app.client.zcard(app.keys.queue("default").dead) == 0,
                   timeout_s=retention_s + 30, interval_s=0.05, message="dead set empty")
        emptied_after.append(time.monotonic() - last_dead)
        trimmed = counters(app)["dead_trimmed"]
        stop_all(workers, app)
        footprints.append(data_footprint(redis_server, app))
        assert trimmed == len(ids)

    (keys_first, bytes_first), (keys_second, bytes_second) = footprints
    assert max(emptied_after) <= retention_s + janitor_s + SCHEDULING_SLACK_S
    assert records_left(app.client, app, batches[0] + batches[1]) == 0
    assert keys_first == keys_at_start
    assert keys_second == keys_at_start
    assert abs(bytes_second - bytes_first) <= 0.05 * bytes_first, (bytes_first, bytes_second)


def test_dead_retention_by_count(redis_server: RedisServer,
                                 worker_processes: Callable[..., WorkerProcess]) -> None:
    """Exactly 1,000 dead tasks stay; the others leave no record behind."""
    url, spec = redis_server.url, "tests.cases.case_apps:retention_count_app"
    app = mirror_app(retention_count_app, url)
    cap = RETENTION_COUNT_SETTINGS.dead_max_count
    assert cap is not None
    ids = [f"c08-{i:05d}" for i in range(TASKS)]

    workers = run_failing(url, app, spec, ids, worker_processes)
    wait_until(lambda: counters(app)["dead"] == TASKS, timeout_s=120, interval_s=0.1,
               message="every task dead")
    wait_until(lambda: counters(app)["dead_trimmed"] == TASKS - cap, timeout_s=30,
               message="dead letters over the cap trimmed")
    stop_all(workers, app)

    kept = [text(task_id) for task_id in app.client.zrange(app.keys.queue("default").dead, 0, -1)]
    trimmed = sorted(set(ids) - set(kept))
    assert len(kept) == cap
    assert records_left(app.client, app, trimmed) == 0
    assert records_left(app.client, app, kept) == cap
    assert taskq.take_snapshot(app, ["default"]).to_dict()["totals"]["dead_trimmed"] == (
        TASKS - cap)


def test_dead_cap_keeps_newest(redis_url: str | None) -> None:
    """The count rule removes the dead tasks that died first."""
    clock = taskq.FakeClock(1_800_000_000.0)
    app = taskq.App(redis_url, settings=with_settings(dead_retention_s=None, dead_max_count=2),
                    clock=clock)
    app.task("fail_with_payload", max_retries=0)(retention_count_app.lookup(
        "fail_with_payload").func)
    worker = taskq.Worker(app, run_promoter=False, run_reaper=False)
    worker.start()
    died_in_order = []
    try:
        for i in range(5):
            task_id = app.enqueue("fail_with_payload", ("x",), task_id=f"died-{i}").id
            wait_until(lambda task_id=task_id: app.get(task_id).state is taskq.State.DEAD,
                       timeout_s=10, message=f"{task_id} dead")
            died_in_order.append(task_id)
            clock.advance(1.0)
    finally:
        worker.stop(grace_s=1)

    taskq.Reaper(app, ["default"], "test").trim_queue("default")

    kept = [text(x) for x in app.client.zrange(app.keys.queue("default").dead, 0, -1)]
    assert kept == died_in_order[-2:]
