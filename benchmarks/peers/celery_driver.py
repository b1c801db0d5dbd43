"""Celery driver: ``apply_async`` on a Redis broker and the ``celery worker`` command.

Celery runs with its defaults apart from the log level: no result backend,
early acknowledgement (``acks_late`` off) and a prefetch multiplier of 4.
Modes: ``solo`` (the solo pool) and ``threads`` (the thread pool).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import datetime, timezone

from celery import Celery, group

from benchmarks.peers.common import Driver, queue_name, redis_url, run_noop

app = Celery("bench", broker=redis_url())
app.conf.task_default_queue = queue_name()


@app.task(name="noop")
def noop(seq: int) -> None:
    run_noop(seq)


class CeleryDriver(Driver):
    name = "celery"
    bulk_method = "group(...).apply_async() per 1,000 tasks"
    supports_schedule = True

    def enqueue_one(self, seq: int) -> None:
        noop.apply_async((seq,))

    def enqueue_bulk(self, seqs: Sequence[int]) -> None:
        group(noop.s(seq) for seq in seqs).apply_async()

    def schedule(self, seq: int, due_wall_s: float) -> None:
        noop.apply_async((seq,), eta=datetime.fromtimestamp(due_wall_s, tz=timezone.utc))

    def worker_argv(self, mode: str, concurrency: int, scheduler: bool) -> list[str]:
        # ETA tasks need no extra process, because the worker keeps them in memory until due.
        pools = {"solo": "solo", "threads": "threads"}
        return [
            sys.executable,
            "-m",
            "celery",
            "-A",
            __name__,
            "worker",
            "--pool",
            pools[mode],
            "--concurrency",
            str(concurrency),
            "--queues",
            queue_name(),
            "--loglevel",
            "WARNING",
        ]


DRIVER = CeleryDriver
