"""Any exception a task raises reaches the dead set intact, however hostile its text.

One worker process runs three failing tasks and then a normal one: a message with non-ASCII
letters, CJK, an emoji and a NUL byte; an exception whose ``str()`` raises; and a 2 MB message,
which is cut to ``Settings.max_error_message_chars`` (8 KiB by default) and flagged as cut.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

import taskq
from tests.cases.support import WorkerProcess, mirror_app, wait_for_state
from tests.sample_tasks import HOSTILE_MESSAGE
from tests.sample_tasks import app as sample_app

pytestmark = pytest.mark.chaos  # the reported-failure scenarios are part of the chaos suite

LONG_CHARS = 2 * 1024 * 1024


def test_hostile_error_text_reaches_dead_set(real_redis_url: str,
                                             worker_processes: Callable[..., WorkerProcess]
                                             ) -> None:
    """Each error is stored as documented and the worker keeps running the next task."""
    app = mirror_app(sample_app, real_redis_url)
    limit = app.settings.max_error_message_chars
    hostile = app.enqueue("raise_hostile_text").id
    unprintable = app.enqueue("raise_unprintable").id
    long_message = app.enqueue("raise_long_message", (LONG_CHARS,)).id
    normal = app.enqueue("add", (2, 3)).id
    worker = worker_processes(real_redis_url)

    wait_for_state(app, normal, taskq.State.SUCCEEDED, timeout_s=20)
    for task_id in (hostile, unprintable, long_message):
        wait_for_state(app, task_id, taskq.State.DEAD, timeout_s=5)

    error = app.get(hostile).error or {}
    assert error["type"] == "ValueError"
    assert error["message"] == HOSTILE_MESSAGE
    assert "raise_hostile_text" in error["traceback"]
    assert error["truncated"] is False

    error = app.get(unprintable).error or {}
    assert error["type"] == "UnprintableError"
    assert "UnprintableError" in error["message"]
    assert "str() raised RuntimeError" in error["message"]

    error = app.get(long_message).error or {}
    assert error["message"] == "L" * limit
    assert error["truncated"] is True
    assert len(error["traceback"]) <= app.settings.max_traceback_chars

    assert app.get(normal).result == 5
    assert worker.alive()
    assert worker.count("slot crashed") == 0
    assert worker.count("worker started") == 1

    shown = {rec.id: rec.error for rec in app.dead_letters("default")}
    for task_id in (hostile, unprintable, long_message):
        assert shown[task_id] == app.get(task_id).error
