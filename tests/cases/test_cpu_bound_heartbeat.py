"""A task that keeps the CPU busy must not look dead: its lease is renewed all the time.

The case's numbers (heartbeat 2 s, worker dead after 10 s, lease 10 s, a 30 s busy loop) are
divided by 5: heartbeat 0.4 s, dead after 2 s, lease 2 s, a 6 s busy loop in pure Python, so the
body still outlives its lease three times over. A second, idle worker runs its reaper the whole
time. Thread pool: the heartbeat thread gets the GIL at every switch interval. Process pool: the
body runs in a child process, away from the heartbeat.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

import taskq
from tests.cases.case_apps import CPU_BOUND_SETTINGS, cpu_bound_app
from tests.cases.support import (
    Sampler,
    WorkerProcess,
    counters,
    events_of,
    mirror_app,
    wait_for_state,
)

pytestmark = pytest.mark.chaos  # the reported-failure scenarios are part of the chaos suite

APP_SPEC = "tests.cases.case_apps:cpu_bound_app"
BUSY_S = 6.0


@pytest.mark.parametrize("pool", ["thread", "process"])
def test_busy_task_keeps_its_lease(pool: str, real_redis_url: str,
                                   worker_processes: Callable[..., WorkerProcess]) -> None:
    """The busy task starts once, is never ready again, and ends succeeded."""
    assert 3 * CPU_BOUND_SETTINGS.lease_s <= BUSY_S
    app = mirror_app(cpu_bound_app, real_redis_url)
    keys = app.keys.queue("default")
    handle = app.enqueue("busy_loop", (BUSY_S,), task_id=f"busy-{pool}")
    with Sampler(app.client, keys, [handle.id], interval_s=0.1) as sampler:
        runner = worker_processes(real_redis_url, app_spec=APP_SPEC, worker_id="runner",
                                  extra=["--pool", pool])
        wait_for_state(app, handle.id, taskq.State.ACTIVE, timeout_s=20)
        # Started only now, so that the task runs in the pool under test.
        idle = worker_processes(real_redis_url, app_spec=APP_SPEC, worker_id="idle",
                                extra=["--pool", pool])
        idle.wait_started()
        wait_for_state(app, handle.id, taskq.State.SUCCEEDED, timeout_s=BUSY_S + 20)

    places = [where for _, _, where in sampler.samples]
    first_active = places.index(["active"])
    assert all(where != ["ready"] for where in places[first_active:])
    assert sampler.bad_samples() == []
    rec = app.get(handle.id)
    assert rec.attempts == 1
    assert rec.worker == "runner"
    assert len(events_of(app, kind="started")) == 1
    assert counters(app)["recovered"] == 0
    assert taskq.take_snapshot(app, ["default"]).dead == 0
    for worker in (runner, idle):
        assert worker.count("lease expired") == 0
        assert worker.count("lease lost") == 0
