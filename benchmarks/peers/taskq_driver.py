"""taskq driver: ``App.enqueue``/``App.enqueue_many`` and the ``taskq worker`` command.

Modes: ``slots`` runs the worker with ``--prefetch 0``, so each claim call
takes one task and settles the previous one. ``batched`` passes
``--prefetch``, so that one claim call takes several tasks per slot.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

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

    def __init__(self) -> None:
        self._ids: dict[int, str] = {}

    def enqueue_one(self, seq: int) -> None:
        app.enqueue("noop", args=[seq], queue=queue_name())

    def enqueue_bulk(self, seqs: Sequence[int]) -> None:
        app.enqueue_many([taskq.Call("noop", args=[seq]) for seq in seqs])

    def schedule(self, seq: int, due_wall_s: float) -> None:
        handle = app.enqueue(
            "noop", args=[seq], queue=queue_name(), delay_s=max(0.0, due_wall_s - time.time())
        )
        self._ids[seq] = handle.id

    def schedule_bulk(self, items: Sequence[tuple[int, float]]) -> None:
        now_s = time.time()
        calls = [
            taskq.Call("noop", args=[seq], delay_s=max(0.0, due_wall_s - now_s))
            for seq, due_wall_s in items
        ]
        for (seq, _), handle in zip(items, app.enqueue_many(calls)):
            self._ids[seq] = handle.id

    def scheduled_ids(self) -> dict[int, str]:
        return dict(self._ids)

    def forget_scheduled_ids(self) -> None:
        self._ids.clear()

    def ready_lags_ms(self, ids: dict[int, str]) -> dict[int, float] | None:
        """Read each task's record: ``ready_us`` (set by the promoter) minus ``due_ms``."""
        lags: dict[int, float] = {}
        for seq, task_id in ids.items():
            record = app.get(task_id, queue=queue_name())
            ready_us = record.raw.get("ready_us")
            if ready_us is None or record.due_ms is None:
                continue
            lags[seq] = int(ready_us) / 1000 - record.due_ms
        return lags

    def worker_argv(self, mode: str, concurrency: int, scheduler: bool) -> list[str]:
        # The worker always runs its promoter, so delayed tasks need no extra process.
        prefetch = BATCHED_PREFETCH if mode == "batched" else 0
        return [
            sys.executable,
            "-m",
            "taskq",
            "--log-level",
            "WARNING",
            "worker",
            "--app",
            f"{__name__}:app",
            "--redis-url",
            redis_url(),
            "--queues",
            queue_name(),
            "--concurrency",
            str(concurrency),
            "--prefetch",
            str(prefetch),
        ]


DRIVER = TaskqDriver
