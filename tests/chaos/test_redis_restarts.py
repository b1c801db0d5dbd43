"""Redis with an append-only file (``appendfsync always``) restarted twice under load.

Two worker processes run tasks, some due at once and some delayed so the promoters have work,
while a producer keeps enqueueing. Redis is stopped cleanly once and killed once (SIGKILL), and
each time started again from the same folder after 1 s. With every write fsynced before Redis
replies, nothing acknowledged is lost, and the workers and promoters reconnect by
themselves. The producer retries a failed enqueue with the same task ids, which makes the retry
idempotent. Settings: a 5 s lease renewed every 0.5 s, longer than each outage.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

import pytest
import redis

import taskq
from tests.cases.figures import report
from tests.cases.support import WorkerProcess, census, mirror_app, text
from tests.chaos.chaos_apps import outage_app
from tests.redis_servers import RedisServer

pytestmark = pytest.mark.chaos

APP_SPEC = "tests.chaos.chaos_apps:outage_app"
RUN_LOG = "chaos:runs"
READY_TASKS = 4000
DELAYED_TASKS = 500
FED_TASKS = 2000
FEED_CHUNK = 100
FEED_PAUSE_S = 0.2
DOWN_S = 1.0


def enqueue_retrying(app: taskq.App, calls: list[taskq.Call], deadline: float) -> int:
    """Enqueue, retrying through a Redis outage; returns the number of failed attempts."""
    failures = 0
    while True:
        try:
            app.enqueue_many(calls)
            return failures
        except redis.ConnectionError:
            failures += 1
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_aof_restarts_lose_nothing(aof_redis_server: RedisServer,
                                   worker_processes: Callable[..., WorkerProcess]) -> None:
    """Every task enqueued succeeds; workers and promoters log their reconnection."""
    server = aof_redis_server
    app = mirror_app(outage_app, server.url)
    ids = [f"r{i:05d}" for i in range(READY_TASKS + DELAYED_TASKS + FED_TASKS)]
    ready_ids = ids[:READY_TASKS]
    delayed_ids = ids[READY_TASKS:READY_TASKS + DELAYED_TASKS]
    fed_ids = ids[READY_TASKS + DELAYED_TASKS:]
    deadline = time.monotonic() + 120
    enqueue_retrying(app, [taskq.Call("record_run", (RUN_LOG,), task_id=t) for t in ready_ids],
                     deadline)
    enqueue_retrying(app, [taskq.Call("record_run", (RUN_LOG,), delay_s=1 + i % 4, task_id=t)
                           for i, t in enumerate(delayed_ids)], deadline)
    workers = [worker_processes(server.url, app_spec=APP_SPEC, concurrency=4,
                                worker_id=f"w{i}") for i in range(2)]

    producer_failures = []

    def feed() -> None:
        for start in range(0, FED_TASKS, FEED_CHUNK):
            chunk = [taskq.Call("record_run", (RUN_LOG,), task_id=t)
                     for t in fed_ids[start:start + FEED_CHUNK]]
            producer_failures.append(enqueue_retrying(app, chunk, deadline))
            time.sleep(FEED_PAUSE_S)  # spreads the feed over both outages

    feeder = threading.Thread(target=feed, name="feeder")
    feeder.start()
    admin = server.client()
    outages = []
    for hard, share in ((False, 0.3), (True, 0.6)):
        while admin.llen(RUN_LOG) < share * READY_TASKS and time.monotonic() < deadline:
            time.sleep(0.05)
        admin.close()
        server.restart(down_s=DOWN_S, hard=hard)
        outages.append("kill" if hard else "shutdown")
    feeder.join(60)
    admin = server.client()
    while (admin.zcard(app.keys.queue("default").finished) < len(ids)
           and time.monotonic() < deadline):
        time.sleep(0.1)

    runs = Counter(text(x) for x in admin.lrange(RUN_LOG, 0, -1))
    after = census(admin, app.keys.queue("default"))
    lost = len(ids) - after.count("finished")
    # A claim whose reply was lost with its connection leaves its tasks leased to nobody: they
    # are recovered one lease later, which the figures count.
    recovered = int(admin.hget(app.keys.queue("default").counters, "recovered") or 0)
    report("redis restarts", tasks=len(ids), restarts=len(outages), kinds="+".join(outages),
           recovered=recovered, lost=lost, duplicates=sum(runs.values()) - len(runs),
           producer_retries=sum(producer_failures))
    assert lost == 0
    assert set(runs) == set(ids)
    assert after.count("active") == 0
    assert after.count("dead") == 0
    assert after.in_several() == {}
    assert not feeder.is_alive()
    for worker in workers:
        output = worker.output()
        assert worker.alive()
        assert worker.count("worker started") == 1
        assert worker.count("Exception in thread") == 0
        assert "heartbeat tick failed" in output
        assert "heartbeat recovered" in output
        assert "promoter recovered" in output
        assert "retry_in_s=" in output


def test_restart_without_persistence_loses_data(
        redis_server: RedisServer, worker_processes: Callable[..., WorkerProcess]) -> None:
    """Without an append-only file a Redis restart loses every task it held (the documented
    limit); the worker reconnects and runs tasks enqueued afterwards."""
    app = mirror_app(outage_app, redis_server.url)
    lost_ids = [app.enqueue("record_run", (RUN_LOG,), delay_s=3600).id for _ in range(5)]
    worker = worker_processes(redis_server.url, app_spec=APP_SPEC, concurrency=2)
    worker.wait_started()
    app.client.connection_pool.disconnect()

    redis_server.restart(down_s=DOWN_S, hard=True)
    after_restart = app.enqueue("record_run", (RUN_LOG,)).id
    wait_until_state = time.monotonic() + 20
    while (app.client.zcard(app.keys.queue("default").finished) < 1
           and time.monotonic() < wait_until_state):
        time.sleep(0.05)

    assert app.client.zcard(app.keys.queue("default").scheduled) == 0
    assert all(app.client.hget(app.keys.queue("default").tasks, t) is None for t in lost_ids)
    # The queue registry was lost too, and this producer registered the queue before: name it.
    assert app.get(after_restart, queue="default").state is taskq.State.SUCCEEDED
    assert worker.alive()
