"""A worker told to stop hands its running task back to the queue instead of losing it.

The task runs for 600 s and the worker's shutdown grace is 2 s, so the task cannot finish
within the grace. After SIGTERM (and no SIGKILL) the worker releases the task and exits by
itself. The documented rule for the attempt: a released attempt is not counted, so the record's
``attempts`` goes back to what it was before the claim (0).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import pytest

import taskq
from tests.cases.support import WorkerProcess, census, mirror_app, wait_for_state
from tests.conftest import FAST_SETTINGS
from tests.sample_tasks import app as sample_app

pytestmark = pytest.mark.chaos  # the reported-failure scenarios are part of the chaos suite

GRACE_S = 2.0
TASK_S = 600.0


def test_sigterm_releases_running_task(real_redis_url: str,
                                       worker_processes: Callable[..., WorkerProcess]) -> None:
    """The worker exits within grace + 1 s; the task is ready again and a new worker runs it."""
    app = mirror_app(sample_app, real_redis_url)
    keys = app.keys.queue("default")
    handle = app.enqueue("sleep_for", (TASK_S,), task_id="c02-task")
    worker = worker_processes(real_redis_url, worker_id="stopping",
                              extra=["--grace", str(GRACE_S)])
    wait_for_state(app, handle.id, taskq.State.ACTIVE, timeout_s=15)

    signalled = time.monotonic()
    worker.send(signal.SIGTERM)
    exit_code = worker.wait(GRACE_S + 5)
    exited_after_s = time.monotonic() - signalled

    assert exit_code == 0, worker.tail()
    assert exited_after_s <= GRACE_S + 1.0
    rec = app.get(handle.id)
    assert rec.state is taskq.State.READY
    assert rec.attempts == 0
    after = census(app.client, keys)
    assert after.ids["ready"] == [handle.id]
    assert after.count("active") == 0
    assert after.count("dead") == 0
    assert "task released at shutdown task=c02-task" in worker.output()

    successor = worker_processes(real_redis_url, worker_id="successor")
    wait_for_state(app, handle.id, taskq.State.ACTIVE, timeout_s=15)
    rec = app.get(handle.id)
    assert rec.worker == "successor"
    assert rec.attempts == 1
    successor.kill()
    assert FAST_SETTINGS.shutdown_grace_s == GRACE_S
