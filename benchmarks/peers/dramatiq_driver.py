"""Dramatiq driver: ``Actor.send`` on the Redis broker and the ``dramatiq`` command.

Modes: ``threads`` with one worker process and 1 or 8 worker threads. The
Redis broker acknowledges a message after the actor returns, and a worker
whose heartbeat stops has its unacknowledged messages requeued.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from benchmarks.peers.common import Driver, queue_name, redis_url, run_noop

broker = RedisBroker(url=redis_url())
dramatiq.set_broker(broker)


@dramatiq.actor(actor_name="noop", queue_name=queue_name())
def noop(seq: int) -> None:
    run_noop(seq)


class DramatiqDriver(Driver):
    name = "dramatiq"
    bulk_method = "group(...).run() per 1,000 messages"
    supports_schedule = True

    def enqueue_one(self, seq: int) -> None:
        noop.send(seq)

    def enqueue_bulk(self, seqs: Sequence[int]) -> None:
        dramatiq.group([noop.message(seq) for seq in seqs]).run()

    def schedule(self, seq: int, due_wall_s: float) -> None:
        # Dramatiq takes a relative delay in whole milliseconds.
        delay_ms = max(0, round((due_wall_s - time.time()) * 1000))
        noop.send_with_options(args=(seq,), delay=delay_ms)

    def worker_argv(self, mode: str, concurrency: int, scheduler: bool) -> list[str]:
        # Delayed messages are handled by every worker; there is no separate scheduler.
        return [
            sys.executable,
            "-m",
            "dramatiq",
            __name__,
            "--processes",
            "1",
            "--threads",
            str(concurrency),
            "--queues",
            queue_name(),
        ]


DRIVER = DramatiqDriver
