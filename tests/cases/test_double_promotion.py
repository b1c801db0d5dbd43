"""Two promoters over one big backlog of due tasks move each task to ready exactly once.

The backlog is loaded through a producer whose fake clock runs an hour behind the server, so
every task lands in the scheduled set yet is already due on the server's clock. Two promoters
start at once, each with every batch slowed down, so one pass lasts far longer than any lock
would; the four worker processes run their own promoters too. Their 10 s lease keeps a loaded
machine from expiring a lease, which would add a legitimate second run and hide the subject.
The promote script needs no lock: a task is pushed to ready only by the call that removed it
from the scheduled set.

The case loads 200,000 tasks; ``BACKLOG_TASKS`` (default 25,000, environment variable
``TASKQ_BACKLOG_TASKS``) keeps the default suite within its time budget.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

import taskq
from tests.cases.case_apps import long_lease_app
from tests.cases.support import WorkerProcess, census, counters, mirror_app, text
from tests.conftest import FAST_SETTINGS
from tests.redis_servers import RedisServer

pytestmark = pytest.mark.chaos  # the reported-failure scenarios are part of the chaos suite

BACKLOG_TASKS = int(os.environ.get("TASKQ_BACKLOG_TASKS", "25000"))
BATCH = 200
SLOW_BATCH_S = 0.01
LOAD_CHUNK = 5000
RUN_LOG = "c04:runs"


def slowed_promoter(url: str, name: str) -> taskq.Promoter:
    """A promoter on its own connection whose every promote call takes SLOW_BATCH_S longer."""
    app = taskq.App(url, settings=replace(FAST_SETTINGS, promoter_batch=BATCH))
    scripts = app.scripts
    promote = scripts.promote

    def slow_promote(*args: Any, **kwargs: Any) -> tuple[int, int, int]:
        moved = promote(*args, **kwargs)
        time.sleep(SLOW_BATCH_S)  # the test hook: stretch each batch, as a slow host would
        return moved

    scripts.promote = slow_promote  # type: ignore[method-assign]
    return taskq.Promoter(app, ["default"], name)


def test_two_promoters_move_each_once(redis_server: RedisServer,
                                      worker_processes: Callable[..., WorkerProcess]) -> None:
    """Scheduled and ready end empty; every id ran once and entered ready once."""
    url = redis_server.url
    producer = mirror_app(long_lease_app, url, clock=taskq.FakeClock(time.time() - 3600))
    ids = [f"c04-{i:06d}" for i in range(BACKLOG_TASKS)]
    for start in range(0, BACKLOG_TASKS, LOAD_CHUNK):
        producer.enqueue_many(taskq.Call("record_run", (RUN_LOG,), delay_s=60, task_id=task_id)
                              for task_id in ids[start:start + LOAD_CHUNK])
    keys = producer.keys.queue("default")
    assert producer.client.zcard(keys.scheduled) == BACKLOG_TASKS

    promoters = [slowed_promoter(url, "promoter-1"), slowed_promoter(url, "promoter-2")]
    gate = threading.Barrier(len(promoters))
    starters = [threading.Thread(target=lambda p=p: (gate.wait(5), p.start()))
                for p in promoters]
    for thread in starters:
        thread.start()
    workers = [worker_processes(url, app_spec="tests.cases.case_apps:long_lease_app",
                                concurrency=4) for _ in range(4)]
    try:
        deadline = time.monotonic() + 180
        while producer.client.llen(RUN_LOG) < BACKLOG_TASKS and time.monotonic() < deadline:
            if not all(w.alive() for w in workers):
                break
            time.sleep(0.2)
    finally:
        for promoter in promoters:
            promoter.stop()
        for thread in starters:
            thread.join(5)

    runs = Counter(text(x) for x in producer.client.lrange(RUN_LOG, 0, -1))
    after = census(producer.client, keys)
    tally = counters(producer)
    assert after.count("scheduled") == 0
    assert after.count("ready") == 0
    assert sum(runs.values()) == BACKLOG_TASKS
    assert len(runs) == BACKLOG_TASKS
    assert set(runs) == set(ids)
    assert tally["promoted"] == BACKLOG_TASKS
    assert tally["stale"] == 0
    assert tally["recovered"] == 0
    assert sum(p.moved_total for p in promoters) > 0
