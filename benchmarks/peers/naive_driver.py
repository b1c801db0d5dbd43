"""Floor loop: a plain redis-py list queue with at-most-once delivery.

Producer: ``LPUSH`` of a small JSON message. Worker: ``BRPOP``, run the task,
then ``INCR`` a done counter. A worker that dies after ``BRPOP`` loses the
task, which is why this loop is a floor and not a queue anyone should ship.
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Sequence

import redis

from benchmarks.peers.common import Driver, queue_name, redis_url, run_noop

DONE_KEY_SUFFIX = ":done"
BRPOP_TIMEOUT_S = 1


def _message(seq: int) -> str:
    return json.dumps({"task": "noop", "args": [seq]})


class NaiveDriver(Driver):
    name = "naive"
    bulk_method = "one LPUSH with 1,000 values"

    def open(self) -> None:
        self.client = redis.Redis.from_url(redis_url())
        self.key = queue_name()

    def close(self) -> None:
        self.client.close()

    def enqueue_one(self, seq: int) -> None:
        self.client.lpush(self.key, _message(seq))

    def enqueue_bulk(self, seqs: Sequence[int]) -> None:
        self.client.lpush(self.key, *[_message(seq) for seq in seqs])

    def worker_argv(self, mode: str, concurrency: int, scheduler: bool) -> list[str]:
        if concurrency != 1:
            raise ValueError("the floor loop runs with concurrency 1 only")
        return [sys.executable, "-c", "from benchmarks.peers.naive_driver import work; work()"]


def work() -> None:
    """Run the floor loop until SIGTERM or SIGINT."""
    tasks = {"noop": run_noop}
    client = redis.Redis.from_url(redis_url())
    key = queue_name()
    done_key = key + DONE_KEY_SUFFIX
    running = True

    def stop(signum: int, frame: object) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while running:
        item = client.brpop([key], timeout=BRPOP_TIMEOUT_S)
        if item is None:
            continue
        message = json.loads(item[1])
        tasks[message["task"]](*message["args"])
        client.incr(done_key)


DRIVER = NaiveDriver
