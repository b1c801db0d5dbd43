"""Connections cut with CLIENT KILL and Redis stalled with CLIENT PAUSE: workers carry on.

Settings: a 2 s lease renewed every 0.2 s and the reaper every 0.1 s. A stall of 1 s lasts five
heartbeats but less than the lease, so no lease may expire; a stall of 3 s outlasts the lease,
so the stalled task's lease must expire and the task be recovered and run again.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import pytest

import taskq
from tests.cases.figures import report
from tests.cases.support import WorkerProcess, census, counters, mirror_app, text, wait_for_state
from tests.chaos.chaos_apps import STALL_SETTINGS, stall_app
from tests.conftest import wait_until
from tests.redis_servers import RedisServer

pytestmark = pytest.mark.chaos

APP_SPEC = "tests.chaos.chaos_apps:stall_app"
RUN_LOG = "chaos:runs"


def test_client_kill_recovers_without_restart(
        redis_server: RedisServer, worker_processes: Callable[..., WorkerProcess]) -> None:
    """Every connection is cut three times under load; all tasks succeed, workers stay up."""
    app = mirror_app(stall_app, redis_server.url)
    admin = redis_server.client()
    tasks = 3000
    ids = [f"ck{i:05d}" for i in range(tasks)]
    workers = [worker_processes(redis_server.url, app_spec=APP_SPEC, concurrency=4)
               for _ in range(2)]
    for worker in workers:
        worker.wait_started()

    cuts = 0
    for start in range(0, tasks, tasks // 3):
        app.enqueue_many(taskq.Call("record_run", (RUN_LOG,), task_id=task_id)
                         for task_id in ids[start:start + tasks // 3])
        wait_until(lambda start=start: admin.llen(RUN_LOG) > start + 100, timeout_s=30,
                   message="the batch is running")
        cuts += 1
        killed = admin.client_kill_filter(_type="normal", skipme=True)
        assert killed > 0
    wait_until(lambda: admin.zcard(app.keys.queue("default").finished) == tasks,
               timeout_s=60, message="every task succeeded")

    runs = Counter(text(x) for x in admin.lrange(RUN_LOG, 0, -1))
    after = census(admin, app.keys.queue("default"))
    report("client kill", tasks=tasks, cuts=cuts, lost=tasks - after.count("finished"),
           duplicates=sum(runs.values()) - len(runs))
    assert set(runs) == set(ids)
    assert after.in_several() == {}
    for worker in workers:
        assert worker.alive()
        assert worker.count("worker started") == 1
        assert worker.count("Exception in thread") == 0
        assert worker.count("slot crashed") == 0


@pytest.mark.parametrize(("stall_s", "expires"), [(1.0, False), (3.0, True)],
                         ids=["shorter-than-lease", "longer-than-lease"])
def test_client_pause_and_leases(stall_s: float, expires: bool, redis_server: RedisServer,
                                 worker_processes: Callable[..., WorkerProcess]) -> None:
    """A stall shorter than the lease expires nothing; a longer one recovers the task."""
    assert stall_s > STALL_SETTINGS.heartbeat_interval_s
    assert (stall_s > STALL_SETTINGS.lease_s) is expires
    app = mirror_app(stall_app, redis_server.url)
    admin = redis_server.client()
    worker = worker_processes(redis_server.url, app_spec=APP_SPEC, concurrency=2,
                              worker_id="stalled")
    task = app.enqueue("sleep_and_count", (stall_s + 2.0, "runs:long"), task_id="long").id
    wait_for_state(app, task, taskq.State.ACTIVE, timeout_s=15)
    time.sleep(STALL_SETTINGS.heartbeat_interval_s * 2)  # let a heartbeat extend the lease

    admin.execute_command("CLIENT", "PAUSE", int(stall_s * 1000), "ALL")
    admin.ping()  # returns once the pause is over
    after_stall = app.enqueue("sleep_and_count", (0.1, "runs:after"), task_id="after").id

    wait_for_state(app, task, taskq.State.SUCCEEDED, timeout_s=stall_s + 20)
    wait_for_state(app, after_stall, taskq.State.SUCCEEDED, timeout_s=10)
    recovered = counters(app)["recovered"]
    report(f"client pause {stall_s:g} s", lease_s=STALL_SETTINGS.lease_s, recovered=recovered,
           runs=int(admin.get("runs:long") or 0))
    if expires:
        assert recovered >= 1
        assert int(admin.get("runs:long") or 0) >= 1
    else:
        assert recovered == 0
        assert int(admin.get("runs:long") or 0) == 1
        assert app.get(task).attempts == 1
    assert worker.alive()
    assert worker.count("Exception in thread") == 0


def test_late_heartbeat_cannot_revive_lease(clocked_app: taskq.App,
                                            fake_clock: taskq.FakeClock) -> None:
    """A lease past its deadline is lost to its holder even before any reaper has run."""
    clocked_app.task("noop")(lambda: None)
    handle = clocked_app.enqueue("noop")
    keys = clocked_app.keys.queue("default")
    lease_ms = round(clocked_app.settings.lease_s * 1000)
    claimed, _ = clocked_app.scripts.claim(clocked_app.now(), "stalled", lease_ms, 1, [keys], [])
    token = "stalled#1"  # the lease token of attempt 1: "<worker>#<attempt>"
    assert claimed[0].task_id == handle.id

    fake_clock.advance(clocked_app.settings.lease_s)
    lost, _ = clocked_app.scripts.extend(clocked_app.now(), keys, lease_ms, [(handle.id, token)])
    recovered, _ = clocked_app.scripts.reap(clocked_app.now(), keys, 10)

    assert lost == [handle.id]
    assert recovered == [handle.id]


def test_prefetched_tasks_keep_leases(real_redis_url: str) -> None:
    """Tasks a slot claimed ahead, and successes it has not settled yet, keep their leases
    while the slot works through a batch longer than the lease: each task runs once."""
    app = taskq.App(real_redis_url, settings=STALL_SETTINGS)
    runs: list[int] = []

    @app.task("slow")
    def slow(number: int) -> None:
        runs.append(number)
        time.sleep(STALL_SETTINGS.lease_s / 4)

    tasks = 8  # two leases' worth of work for one slot
    for number in range(tasks):
        app.enqueue("slow", (number,))
    batching = taskq.Worker(app, concurrency=1, prefetch=tasks - 1)
    helper = taskq.Worker(app, concurrency=1)  # would run any task whose lease expired
    batching.start()
    wait_until(lambda: runs, timeout_s=10, message="the batch started")
    helper.start()
    try:
        wait_until(lambda: app.client.zcard(app.keys.queue("default").finished) == tasks,
                   timeout_s=30, message="every task succeeded")
    finally:
        batching.stop(grace_s=1)
        helper.stop(grace_s=1)

    assert sorted(runs) == list(range(tasks))
    assert counters(app)["recovered"] == 0
