"""The promoter: moves scheduled and retrying tasks to ready when they fall due.

It sleeps until the earliest due time (never longer than ``promoter_max_sleep_s``) by blocking
on the queues' promoter-wake lists, so a producer that schedules a sooner task wakes it at once.
There is no fixed polling and no lock: the promote script is atomic, so several promoters can
run against the same queues and every task still moves exactly once.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from taskq.cluster import blpop_any
from taskq.loops import Loop

if TYPE_CHECKING:
    from taskq.app import App

log = logging.getLogger(__name__)

MIN_BLOCK_S = 0.001


class Promoter(Loop):
    name = "promoter"

    def __init__(self, app: App, queues: list[str], owner_id: str) -> None:
        super().__init__(owner_id)
        self.app = app
        self.queues = queues
        self.moved_total = 0
        self._block_s = app.settings.promoter_max_sleep_s

    def tick(self) -> float:
        """Promote every due task of each queue; return the wait until the next due time."""
        settings = self.app.settings
        next_wait_s = settings.promoter_max_sleep_s
        for queue in self.queues:
            keys = self.app.keys.queue(queue)
            moved, next_due_ms, now_ms = self.app.scripts.promote(
                self.app.now(), keys, settings.promoter_batch)
            while moved == settings.promoter_batch and not self.stopping:
                self.moved_total += moved
                moved, next_due_ms, now_ms = self.app.scripts.promote(
                    self.app.now(), keys, settings.promoter_batch)
            self.moved_total += moved
            if moved:
                log.debug("promoted queue=%s count=%d owner=%s", queue, moved, self.owner_id)
            if next_due_ms >= 0:
                next_wait_s = min(next_wait_s, max(next_due_ms - now_ms, 0) / 1000)
        self._block_s = next_wait_s
        return next_wait_s

    def wait(self, seconds: float) -> None:
        # Block on the wake lists so a newly scheduled, sooner task cuts the sleep short. The
        # 1 ms floor keeps BLPOP from reading 0 as "block forever".
        if self.stopping:
            return
        keys = [self.app.keys.queue(q).promoter_wake for q in self.queues]
        blpop_any(self.app, keys, max(seconds, MIN_BLOCK_S))
