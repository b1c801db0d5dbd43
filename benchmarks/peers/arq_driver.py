"""arq driver: ``ArqRedis.enqueue_job`` and the ``arq`` command.

Modes: ``jobs`` with ``max_jobs`` of 1 or 8 concurrent jobs. The arq worker
polls its queue (a sorted set) every ``poll_delay`` seconds, 0.5 by default,
when it finds nothing to run; jobs stay in Redis until they finish, and arq
documents that a job may run more than once.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime, timezone
from typing import Any, Sequence

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
    bulk_method = "asyncio.gather of 1,000 enqueue_job calls (no bulk API)"
    supports_schedule = True

    async def open(self) -> None:
        self.pool = await create_pool(RedisSettings.from_dsn(redis_url()), default_queue_name=queue_name())

    async def close(self) -> None:
        await self.pool.aclose()

    async def enqueue_one(self, seq: int) -> None:
        await self.pool.enqueue_job("noop", seq)

    async def enqueue_bulk(self, seqs: Sequence[int]) -> None:
        await asyncio.gather(*(self.pool.enqueue_job("noop", seq) for seq in seqs))

    async def schedule(self, seq: int, due_wall_s: float) -> None:
        await self.pool.enqueue_job("noop", seq, _defer_until=datetime.fromtimestamp(due_wall_s, tz=timezone.utc))

    def worker_argv(self, mode: str, concurrency: int, scheduler: bool) -> list[str]:
        return [
            sys.executable, "-m", "arq", f"{__name__}.WorkerSettings",
            "--custom-log-dict", f"{__name__}.LOG_CONFIG",
        ]


DRIVER = ArqDriver
