"""SAQ driver: ``Queue.enqueue`` and the ``saq`` command.

Modes: ``jobs`` with a worker ``concurrency`` of 1 or 8. SAQ takes a job's
scheduled time in whole seconds since the epoch, and its worker moves due
jobs to the queue on a timer (1 s by default). ``saq[redis]`` 0.26.4
requires redis-py below 8, so the benchmark runs it in its own virtualenv
(``--python saq=PATH``).
"""

from __future__ import annotations

import asyncio
import math
import sys
from collections.abc import Sequence
from typing import Any

from saq import Queue

from benchmarks.peers.common import Driver, queue_name, redis_url, run_noop, worker_concurrency

BULK_CONCURRENCY = 50


async def noop(ctx: dict[str, Any], *, seq: int) -> None:
    run_noop(seq)


# Read by the ``saq`` command. Creating the queue opens no connection yet.
settings: dict[str, Any] = {
    "queue": Queue.from_url(redis_url(), name=queue_name()),
    "functions": [noop],
    "concurrency": worker_concurrency(),
}


class SaqDriver(Driver):
    name = "saq"
    is_async = True
    bulk_method = "asyncio.gather, 50 enqueue calls at a time (no bulk API)"
    supports_schedule = True

    async def open(self) -> None:
        self.queue = Queue.from_url(redis_url(), name=queue_name())
        await self.queue.connect()

    async def close(self) -> None:
        await self.queue.disconnect()

    async def enqueue_one(self, seq: int) -> None:
        await self.queue.enqueue("noop", seq=seq)

    async def enqueue_bulk(self, seqs: Sequence[int]) -> None:
        # Each call uses its own connection while it runs, so at most BULK_CONCURRENCY run at once.
        for start in range(0, len(seqs), BULK_CONCURRENCY):
            await asyncio.gather(
                *(
                    self.queue.enqueue("noop", seq=seq)
                    for seq in seqs[start : start + BULK_CONCURRENCY]
                )
            )

    async def schedule(self, seq: int, due_wall_s: float) -> None:
        # SAQ's scheduled time is an integer number of seconds; round up so no task is early.
        await self.queue.enqueue("noop", seq=seq, scheduled=math.ceil(due_wall_s))

    def worker_argv(self, mode: str, concurrency: int, scheduler: bool) -> list[str]:
        return [sys.executable, "-m", "saq", f"{__name__}.settings", "--quiet"]


DRIVER = SaqDriver
