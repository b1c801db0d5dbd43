"""The promoter: moves scheduled and retrying tasks to ready when they fall due.

It sleeps until the earliest due time (never longer than ``promoter_max_sleep_s``) by blocking
on the queues' promoter-wake lists, so a producer that schedules a sooner task wakes it at once.
In the last 0.2 s before a due time it sleeps in the client in 2 ms slices instead, because
Redis ends BLPOP timeouts only on its server cron. There is no fixed polling otherwise, and no
lock: the promote script is atomic, so several promoters can run against the same queues and
every task still moves exactly once.
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
# Within this many seconds of the next due time the promoter sleeps in the client, in slices
# of NEAR_DUE_SLICE_S, rather than in a Redis BLPOP whose timeout is only as precise as the
# server's cron (100 ms at hz 10).
NEAR_DUE_S = 0.2
NEAR_DUE_SLICE_S = 0.002


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
        if self.stopping:
            return
        if seconds <= NEAR_DUE_S:
            # Redis ends a blocking command's timeout on its server cron (every 100 ms at the
            # default hz 10), so a short BLPOP can return up to 100 ms late. Close to a due
            # time, sleep here instead, in slices, so a sooner task scheduled meanwhile is
            # still promoted within one slice.
            self._stop.wait(min(seconds, NEAR_DUE_SLICE_S))
            return
        # Far from any due time: block on the wake lists, so a newly scheduled, sooner task
        # cuts the sleep short, and wake early enough to finish the wait near the due time.
        keys = [self.app.keys.queue(q).promoter_wake for q in self.queues]
        blpop_any(self.app, keys, max(seconds - NEAR_DUE_S, MIN_BLOCK_S))
