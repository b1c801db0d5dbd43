"""A worker killed right after its claim call returns leaves the task recoverable, never lost.

Worker A claims the task and the test hook ``TASKQ_TEST_PAUSE_AFTER_CLAIM_S`` holds A's slot
just after the claim returned, before the body starts. A is killed there (SIGTERM once, SIGKILL
once) and worker B takes over. ``FAST_SETTINGS`` stand for the production numbers: a 1 s lease
and a 0.1 s reaper interval, with a 2 s shutdown grace.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import pytest

import taskq
from tests.cases.support import Sampler, WorkerProcess, locate, mirror_app, wait_for_state
from tests.conftest import FAST_SETTINGS
from tests.sample_tasks import app as sample_app

pytestmark = pytest.mark.chaos  # the reported-failure scenarios are part of the chaos suite

TASK_S = 1.0
HOOK_PAUSE_S = 60.0  # longer than the test: A never leaves the hook by itself
# Allowance for process scheduling on a loaded two-core machine, added to computed bounds.
SCHEDULING_SLACK_S = 1.0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_kill_after_claim_recovers(signum: signal.Signals, real_redis_url: str,
                                   worker_processes: Callable[..., WorkerProcess]) -> None:
    """The task is always in exactly one structure and ends succeeded, run by worker B."""
    app = mirror_app(sample_app, real_redis_url)
    keys = app.keys.queue("default")
    counter_key = "c01:runs"
    handle = app.enqueue("sleep_and_count", (TASK_S, counter_key), task_id="c01-task")

    with Sampler(app.client, keys, [handle.id], interval_s=0.1) as sampler:
        worker_a = worker_processes(real_redis_url, worker_id="worker-a",
                                    env={"TASKQ_TEST_PAUSE_AFTER_CLAIM_S": str(HOOK_PAUSE_S)})
        worker_a.wait_for_output("test hook: pausing")
        assert locate(app.client, keys, handle.id) == ["active"]

        worker_a.send(signum)
        exit_code = worker_a.wait(FAST_SETTINGS.shutdown_grace_s + 10)
        assert exit_code is not None, f"worker A still runs after {signum.name}"

        worker_b = worker_processes(real_redis_url, worker_id="worker-b")
        worker_b.wait_started()
        b_started = time.monotonic()
        done = wait_for_state(app, handle.id, taskq.State.SUCCEEDED, timeout_s=30)
        sampler.stop()

    bound_s = (FAST_SETTINGS.lease_s + FAST_SETTINGS.reaper_interval_s + TASK_S
               + SCHEDULING_SLACK_S)
    assert done - b_started <= bound_s
    assert sampler.bad_samples() == []
    assert len(sampler.samples) >= 10
    rec = app.get(handle.id)
    assert rec.worker == "worker-b"
    runs = int(app.client.get(counter_key) or 0)
    if signum is signal.SIGTERM:
        assert runs == 1
    else:
        assert runs >= 1
    snapshot = taskq.take_snapshot(app, ["default"])
    assert snapshot.ready == 0
    assert snapshot.active == 0
