"""The reaper: recovers tasks whose lease expired, marks silent workers offline, and applies
retention (finished records, dead letters, the rate window) every janitor interval.

Every worker runs one for the queues it serves, and the dashboard runs one for all queues; the
scripts are idempotent, so any number may run at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from taskq.loops import Loop

if TYPE_CHECKING:
    from taskq.app import App

log = logging.getLogger(__name__)


def _ms(seconds: float | None) -> int:
    return -1 if seconds is None else round(seconds * 1000)


class Reaper(Loop):
    name = "reaper"

    def __init__(self, app: App, queues: list[str] | Callable[[], list[str]],
                 owner_id: str) -> None:
        super().__init__(owner_id)
        self.app = app
        self._queues = queues
        self._next_trim = 0.0
        self.recovered_total = 0

    def queues(self) -> list[str]:
        return self._queues() if callable(self._queues) else self._queues

    def tick(self) -> float:
        settings = self.app.settings
        for queue in self.queues():
            self.reap_queue(queue)
        offline, removed = self.app.scripts.reap_workers(
            self.app.now(), self.app.keys.global_keys, _ms(settings.worker_dead_after_s),
            _ms(settings.worker_retention_s))
        for worker in offline:
            log.warning("worker offline worker=%s reason=no heartbeat for %.1f s reaper=%s",
                        worker, settings.worker_dead_after_s, self.owner_id)
        for worker in removed:
            log.info("worker removed worker=%s reaper=%s", worker, self.owner_id)
        if time.monotonic() >= self._next_trim:
            for queue in self.queues():
                self.trim_queue(queue)
            self._next_trim = time.monotonic() + settings.janitor_interval_s
        return settings.reaper_interval_s

    def reap_queue(self, queue: str) -> tuple[list[str], list[str]]:
        """Recover expired leases of one queue; returns (recovered ids, ids sent dead)."""
        recovered, buried = self.app.scripts.reap(
            self.app.now(), self.app.keys.queue(queue), self.app.settings.reaper_batch)
        for task_id in recovered:
            log.warning("lease expired, task recovered task=%s queue=%s reaper=%s",
                        task_id, queue, self.owner_id)
        for task_id in buried:
            log.warning("lease expired on last attempt, task dead task=%s queue=%s reaper=%s",
                        task_id, queue, self.owner_id)
        self.recovered_total += len(recovered)
        return recovered, buried

    def trim_queue(self, queue: str) -> tuple[int, int, int]:
        """Apply retention to one queue; returns (expired, dead trimmed, rate fields removed)."""
        settings = self.app.settings
        expired = trimmed = fields = 0
        while True:
            batch = self.app.scripts.trim(
                self.app.now(), self.app.keys.queue(queue), _ms(settings.dead_retention_s),
                -1 if settings.dead_max_count is None else settings.dead_max_count,
                settings.rate_window_s, settings.reaper_batch)
            expired, trimmed, fields = expired + batch[0], trimmed + batch[1], fields + batch[2]
            # Each call removes at most one batch of each kind; go on while a batch was full.
            if max(batch[0], batch[1]) < settings.reaper_batch or self.stopping:
                break
        if expired or trimmed:
            log.info("retention applied queue=%s expired=%d dead_trimmed=%d reaper=%s",
                     queue, expired, trimmed, self.owner_id)
        return expired, trimmed, fields
