"""Huey driver: ``RedisHuey`` and the ``huey_consumer`` command.

Modes: ``threads`` with 1 or 8 worker threads. Huey's Redis storage pops a
task off the list before running it (``BRPOP``), so a task in flight when a
consumer dies is lost. The consumer's scheduler runs delayed tasks, checking
once a second by default.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

from huey import RedisHuey

from benchmarks.peers.common import Driver, queue_name, redis_url, run_noop

huey = RedisHuey(queue_name(), url=redis_url())


@huey.task(name="noop")
def noop(seq: int) -> None:
    run_noop(seq)


class HueyDriver(Driver):
    name = "huey"
    bulk_method = "TaskWrapper.map per 1,000 tasks"
    supports_schedule = True

    def enqueue_one(self, seq: int) -> None:
        noop(seq)

    def enqueue_bulk(self, seqs: Sequence[int]) -> None:
        noop.map(seqs)

    def schedule(self, seq: int, due_wall_s: float) -> None:
        noop.schedule(args=(seq,), delay=max(0.0, due_wall_s - time.time()))

    def worker_argv(self, mode: str, concurrency: int, scheduler: bool) -> list[str]:
        return [
            sys.executable,
            "-m",
            "huey.bin.huey_consumer",
            f"{__name__}.huey",
            "--workers",
            str(concurrency),
            "--worker-type",
            "thread",
            "--quiet",
        ]


DRIVER = HueyDriver
