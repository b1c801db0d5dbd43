"""SIGTERM to every worker under load: running tasks finish within the grace or are released.

Three worker processes (4 slots each, 2 s grace) run a mix of short tasks, 0.5 s tasks that fit
in the grace, and 5 s tasks that do not. All three get SIGTERM at once. Each exits by itself
soon after the grace; afterwards no task is active, the long tasks are ready again with
their attempt not counted, and fresh workers then run every task to success.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import pytest

import taskq
from tests.cases.figures import report
from tests.cases.support import WorkerProcess, census, counters, mirror_app, text
from tests.conftest import FAST_SETTINGS, wait_until
from tests.redis_servers import RedisServer
from tests.sample_tasks import app as sample_app

pytestmark = pytest.mark.chaos

GRACE_S = FAST_SETTINGS.shutdown_grace_s
SHORT_TASKS = 3000
MEDIUM_TASKS = 12
LONG_TASKS = 6
RUN_LOG = "chaos:runs"
# Process teardown after the worker's own stop, on a loaded two-core machine (about 0.3 s when
# idle, up to about 1.2 s measured under this test's load).
EXIT_SLACK_S = 2.0


def test_sigterm_finishes_or_releases(redis_server: RedisServer,
                                      worker_processes: Callable[..., WorkerProcess]) -> None:
    """Nothing is lost and nothing is left active after a graceful stop under load."""
    url = redis_server.url
    app = mirror_app(sample_app, url)
    keys = app.keys.queue("default")
    long_ids = [app.enqueue("sleep_for", (5.0,), priority=9, task_id=f"long-{i}").id
                for i in range(LONG_TASKS)]
    medium_ids = [app.enqueue("sleep_for", (0.5,), priority=8, task_id=f"medium-{i}").id
                  for i in range(MEDIUM_TASKS)]
    short_ids = [f"short-{i:05d}" for i in range(SHORT_TASKS)]
    app.enqueue_many(taskq.Call("record_run", (RUN_LOG,), task_id=t) for t in short_ids)
    workers = [worker_processes(url, concurrency=4, worker_id=f"w{i}") for i in range(3)]
    wait_until(lambda: all(app.get(t).state is taskq.State.ACTIVE for t in long_ids),
               timeout_s=20, message="every long task running")
    wait_until(lambda: app.client.llen(RUN_LOG) > 0, timeout_s=20, message="short tasks running")

    running_medium = [t for t in medium_ids if app.get(t).state is taskq.State.ACTIVE]
    signalled = time.monotonic()
    for worker in workers:
        worker.send(signal.SIGTERM)
    exited_at: dict[int, float] = {}
    while len(exited_at) < len(workers) and time.monotonic() < signalled + GRACE_S + 10:
        for index, worker in enumerate(workers):
            if index not in exited_at and not worker.alive():
                exited_at[index] = time.monotonic()
        time.sleep(0.01)
    exit_after_s = [exited_at.get(i, float("inf")) - signalled for i in range(len(workers))]
    for worker in workers:
        assert worker.wait(1) == 0, worker.tail()
    stopped = census(app.client, keys)
    released = counters(app)["released"]
    long_attempts = [app.get(t).attempts for t in long_ids]
    medium_states = [app.get(t).state for t in running_medium]

    fresh = [worker_processes(url, concurrency=4) for _ in range(2)]
    total = LONG_TASKS + MEDIUM_TASKS + SHORT_TASKS
    wait_until(lambda: app.client.zcard(keys.finished) == total, timeout_s=60,
               message="every task succeeded")
    after = census(app.client, keys)
    runs = [text(x) for x in app.client.lrange(RUN_LOG, 0, -1)]
    report("sigterm under load", tasks=total, workers_stopped=len(workers),
           finished_in_grace=len(running_medium), released=released,
           lost=total - after.count("finished"),
           duplicates=len(runs) - len(set(runs)),
           slowest_exit_s=round(max(exit_after_s), 2))

    assert max(exit_after_s) <= GRACE_S + EXIT_SLACK_S
    assert stopped.count("active") == 0
    assert set(long_ids) <= set(stopped.ids["ready"])
    assert long_attempts == [0] * LONG_TASKS
    assert medium_states == [taskq.State.SUCCEEDED] * len(running_medium)
    assert released >= LONG_TASKS
    assert after.count("finished") == total
    assert after.in_several() == {}
    assert set(runs) == set(short_ids)
    for worker in fresh:
        assert worker.alive()
