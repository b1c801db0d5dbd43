"""arq driver: ``ArqRedis.enqueue_job`` and the ``arq`` command.

Modes: ``jobs`` with ``max_jobs`` of 1 or 8 concurrent jobs. The arq worker
reads its queue (a sorted set) every ``poll_delay`` seconds, 0.5 by default.
A job stays in the queue until it finishes, and an in-progress key with a
timeout marks it as running. arq 0.28.0 requires redis-py below 6, so the
benchmark runs it in its own virtualenv (``--python arq=PATH``).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from arq import create_pool
from arq.connections import RedisSettings

from benchmarks.peers.common import Driver, queue_name, redis_url, run_noop, worker_concurrency

# arq's own default logs every job at INFO; the benchmark keeps every system at WARNING.
LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler", "level": "WARNING"}},
    "loggers": {"arq": {"handlers": ["stderr"], "level": "WARNING"}},
}

BULK_CONCURRENCY = 50


async def noop(ctx: dict[str, Any], seq: int) -> None:
    run_noop(seq)


class WorkerSettings:
    functions = [noop]
    redis_settings = RedisSettings.from_dsn(redis_url())
    queue_name = queue_name()
    max_jobs = worker_concurrency()


class ArqDriver(Driver):
    name = "arq"
    is_async = True
    bulk_method = "asyncio.gather, 50 enqueue_job calls at a time (no bulk API)"
    supports_schedule = True

    async def open(self) -> None:
        self.pool = await create_pool(
            RedisSettings.from_dsn(redis_url()), default_queue_name=queue_name()
        )

    async def close(self) -> None:
        await self.pool.aclose()

    async def enqueue_one(self, seq: int) -> None:
        await self.pool.enqueue_job("noop", seq)

    async def enqueue_bulk(self, seqs: Sequence[int]) -> None:
        # Each call uses its own connection while it runs, so at most BULK_CONCURRENCY run at once.
        for start in range(0, len(seqs), BULK_CONCURRENCY):
            await asyncio.gather(
                *(
                    self.pool.enqueue_job("noop", seq)
                    for seq in seqs[start : start + BULK_CONCURRENCY]
                )
            )

    async def schedule(self, seq: int, due_wall_s: float) -> None:
        await self.pool.enqueue_job(
            "noop", seq, _defer_until=datetime.fromtimestamp(due_wall_s, tz=timezone.utc)
        )

    def worker_argv(self, mode: str, concurrency: int, scheduler: bool) -> list[str]:
        return [
            sys.executable,
            "-m",
            "arq",
            f"{__name__}.WorkerSettings",
            "--custom-log-dict",
            f"{__name__}.LOG_CONFIG",
        ]


DRIVER = ArqDriver
