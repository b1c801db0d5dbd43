"""taskq driver: ``App.enqueue``/``App.enqueue_many`` and ``taskq.Worker``.

Modes: ``slots`` runs the worker with ``prefetch=0`` (one claim per task);
``batched`` passes ``prefetch`` so that one claim fetches several tasks.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Sequence

import taskq

from benchmarks.peers.common import Driver, queue_name, redis_url, run_noop

BATCHED_PREFETCH = 16

app = taskq.App(redis_url=redis_url())


@app.task(name="noop", queue=queue_name())
def noop(seq: int) -> None:
    run_noop(seq)


class TaskqDriver(Driver):
    name = "taskq"
    bulk_method = "App.enqueue_many per 1,000 tasks"
    supports_schedule = True

    def enqueue_one(self, seq: int) -> None:
        app.enqueue("noop", args=[seq], queue=queue_name())

    def enqueue_bulk(self, seqs: Sequence[int]) -> None:
        app.enqueue_many([taskq.Call("noop", args=[seq]) for seq in seqs])

    def schedule(self, seq: int, due_wall_s: float) -> None:
        app.enqueue("noop", args=[seq], queue=queue_name(), delay_s=max(0.0, due_wall_s - time.time()))

    def worker_argv(self, mode: str, concurrency: int, scheduler: bool) -> list[str]:
        prefetch = BATCHED_PREFETCH if mode == "batched" else 0
        os.environ["BENCH_PREFETCH"] = str(prefetch)
        return [sys.executable, "-c", "from benchmarks.peers.taskq_driver import work; work()"]


def work() -> None:
    """Run a taskq worker until SIGTERM or SIGINT."""
    worker = taskq.Worker(
        app,
        queues=[queue_name()],
        concurrency=int(os.environ.get("BENCH_CONCURRENCY", "1")),
        prefetch=int(os.environ.get("BENCH_PREFETCH", "0")),
    )
    worker.run()


DRIVER = TaskqDriver
