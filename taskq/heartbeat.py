"""The heartbeat: refreshes the worker record, extends leases, and applies control commands.

It runs in its own thread, never in a slot, so a task body cannot delay it; in the thread pool a
pure-Python busy loop still yields the GIL every few milliseconds, and the process pool keeps
task bodies out of the worker process altogether.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from taskq.loops import Loop

if TYPE_CHECKING:
    from taskq.worker import Worker


class Heartbeat(Loop):
    name = "heartbeat"

    def __init__(self, worker: Worker) -> None:
        super().__init__(worker.id)
        self.worker = worker
        # Retry a failed beat at least once per interval: a longer backoff after a short Redis
        # outage would let the leases it extends expire although the worker is alive.
        self.error_backoff_max_s = min(self.error_backoff_max_s,
                                       worker.app.settings.heartbeat_interval_s)

    def tick(self) -> float:
        self.worker.beat()
        return self.worker.app.settings.heartbeat_interval_s
