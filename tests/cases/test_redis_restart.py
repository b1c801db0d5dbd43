"""A Redis restart while a task runs: the worker reconnects by itself and nothing is lost.

Redis keeps an append-only file fsynced on every write. While t1 runs, Redis is stopped cleanly
and started again 3 s later from the same data; the worker is not restarted. Settings: a 5 s
lease with a heartbeat every 0.5 s and the reaper every 0.1 s, so the lease outlives the outage
as the production 10 s lease does; t1 runs 5 s, t2 and t3 0.5 s each.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

import taskq
from tests.cases.case_apps import RESTART_SETTINGS, restart_app
from tests.cases.support import WorkerProcess, census, counters, mirror_app, wait_for_state
from tests.conftest import wait_until
from tests.redis_servers import RedisServer

pytestmark = pytest.mark.chaos  # the reported-failure scenarios are part of the chaos suite

OUTAGE_S = 3.0
# Allowance for process scheduling on a loaded two-core machine, added to computed bounds.
SCHEDULING_SLACK_S = 1.0


def test_worker_survives_redis_restart(aof_redis_server: RedisServer,
                                       worker_processes: Callable[..., WorkerProcess]) -> None:
    """All three tasks succeed soon after Redis returns, the worker's promoter still works,
    and a later stop command takes effect."""
    url = aof_redis_server.url
    app = mirror_app(restart_app, url)
    durations = {"t1": 5.0, "t2": 0.5, "t3": 0.5}
    for task_id, seconds in durations.items():
        app.enqueue("sleep_and_count", (seconds, f"runs:{task_id}"), task_id=task_id)
    worker = worker_processes(url, app_spec="tests.cases.case_apps:restart_app",
                              worker_id="survivor")
    wait_for_state(app, "t1", taskq.State.ACTIVE, timeout_s=15)
    app.client.connection_pool.disconnect()

    back = aof_redis_server.restart(down_s=OUTAGE_S)
    # Only the worker's own promoter can move this one to ready.
    app.enqueue("sleep_and_count", (0.1, "runs:t4"), delay_s=0.5, task_id="t4")
    for task_id in durations:
        wait_for_state(app, task_id, taskq.State.SUCCEEDED, timeout_s=30)
    done_after_s = time.monotonic() - back
    wait_for_state(app, "t4", taskq.State.SUCCEEDED, timeout_s=10)

    bound_s = (RESTART_SETTINGS.lease_s + RESTART_SETTINGS.reaper_interval_s
               + SCHEDULING_SLACK_S)
    assert done_after_s <= bound_s
    assert int(app.client.get("runs:t1") or 0) >= 1
    assert int(app.client.get("runs:t2") or 0) == 1
    assert int(app.client.get("runs:t3") or 0) == 1
    after = census(app.client, app.keys.queue("default"))
    assert after.count("active") == 0
    assert after.count("dead") == 0
    assert counters(app)["recovered"] == 0  # the 5 s lease outlived the 3 s outage

    output = worker.output()
    assert "heartbeat tick failed" in output
    assert "retry_in_s=" in output
    assert "heartbeat recovered" in output
    assert worker.alive()
    assert worker.count("worker started") == 1
    assert worker.count("slot crashed") == 0
    assert worker.count("Exception in thread") == 0

    app.send_worker_command("survivor", {"stop": True})
    wait_until(lambda: not worker.alive(), timeout_s=RESTART_SETTINGS.heartbeat_interval_s
               + RESTART_SETTINGS.shutdown_grace_s + 5, message="worker stopped by command")
    assert worker.wait(1) == 0
