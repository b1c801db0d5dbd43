"""RQ driver: ``Queue.enqueue`` and the ``rq worker`` command.

Modes: ``fork`` is RQ's default ``Worker``, which forks a work horse per job;
``simple`` is ``SimpleWorker``, which runs jobs in the worker process.
Delayed tasks need the worker's scheduler (``--with-scheduler``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import datetime, timezone

import redis
from rq import Queue

from benchmarks.peers.common import Driver, queue_name, redis_url, run_noop

WORKER_CLASSES = {"fork": "rq.worker.Worker", "simple": "rq.worker.SimpleWorker"}


def noop(seq: int) -> None:
    run_noop(seq)


class RQDriver(Driver):
    name = "rq"
    bulk_method = "Queue.enqueue_many (one pipeline per 1,000 jobs)"
    supports_schedule = True

    def open(self) -> None:
        self.client = redis.Redis.from_url(redis_url())
        self.queue = Queue(queue_name(), connection=self.client)

    def close(self) -> None:
        self.client.close()

    def enqueue_one(self, seq: int) -> None:
        self.queue.enqueue(noop, seq)

    def enqueue_bulk(self, seqs: Sequence[int]) -> None:
        self.queue.enqueue_many([Queue.prepare_data(noop, args=(seq,)) for seq in seqs])

    def schedule(self, seq: int, due_wall_s: float) -> None:
        self.queue.enqueue_at(datetime.fromtimestamp(due_wall_s, tz=timezone.utc), noop, seq)

    def worker_argv(self, mode: str, concurrency: int, scheduler: bool) -> list[str]:
        if concurrency != 1:
            raise ValueError("an RQ worker runs one job at a time")
        argv = [
            sys.executable,
            "-m",
            "rq.cli",
            "worker",
            "--url",
            redis_url(),
            "--worker-class",
            WORKER_CLASSES[mode],
            "--logging_level",
            "WARNING",
        ]
        if scheduler:
            argv.append("--with-scheduler")
        argv.append(queue_name())
        return argv


DRIVER = RQDriver
