"""taskq: an at-least-once task queue on Redis where every state change is one Lua call.

Quick start::

    import taskq

    app = taskq.App()                      # TASKQ_REDIS_URL, or the embedded fakeredis server

    @app.task(queue="default", max_retries=3)
    def add(x: int, y: int) -> int:
        return x + y

    handle = add.enqueue(2, 3)
    worker = taskq.Worker(app, queues=["default"], concurrency=4)
    worker.start()
    assert handle.result(timeout_s=5) == 5
    worker.stop()
"""

from __future__ import annotations

import logging

from taskq.app import App, TaskFunction, TaskHandle
from taskq.clock import Clock, FakeClock, ServerClock
from taskq.connection import mask_url, open_redis
from taskq.errors import (
    ConfigurationError,
    InvalidTaskError,
    PayloadTooLargeError,
    ResultTimeoutError,
    Retry,
    TaskFailedError,
    TaskNotFoundError,
    TaskqError,
    TaskTimeoutError,
    UnknownTaskError,
)
from taskq.events import Event, follow, latest_events, read_events, task_timeline
from taskq.explain import Explanation, explain
from taskq.promoter import Promoter
from taskq.reaper import Reaper
from taskq.settings import DEFAULT_PRIORITY, MAX_PRIORITY, MIN_PRIORITY, Settings
from taskq.snapshot import Snapshot, take_snapshot
from taskq.task import Backoff, Call, State, TaskContext, TaskRecord, current_task
from taskq.worker import Worker

logging.getLogger(__name__).addHandler(logging.NullHandler())

__version__ = "0.1.0"

__all__ = [
    "App", "Backoff", "Call", "Clock", "ConfigurationError", "DEFAULT_PRIORITY", "Event",
    "Explanation", "FakeClock", "InvalidTaskError", "MAX_PRIORITY", "MIN_PRIORITY",
    "PayloadTooLargeError", "Promoter", "Reaper", "ResultTimeoutError", "Retry", "ServerClock",
    "Settings", "Snapshot", "State", "TaskContext", "TaskFailedError", "TaskFunction",
    "TaskHandle", "TaskNotFoundError", "TaskRecord", "TaskTimeoutError", "TaskqError",
    "UnknownTaskError", "Worker", "current_task", "explain", "follow", "latest_events",
    "mask_url", "open_redis", "read_events", "take_snapshot", "task_timeline",
]
