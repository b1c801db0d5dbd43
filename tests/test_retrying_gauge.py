"""The 'retrying' counter is a gauge of tasks waiting to retry now, not a lifetime count."""

from __future__ import annotations

import taskq
from tests.helpers import Stepper, promote_all


def _flaky_app(app: taskq.App) -> None:
    @app.task(name="always_fails", max_retries=5, backoff_min_s=60, backoff_max_s=60)
    def always_fails() -> None:
        raise ValueError("try again later")


def test_gauge_counts_waiting_retries(clocked_app: taskq.App) -> None:
    """Each failed attempt with retries left adds one task waiting to retry."""
    _flaky_app(clocked_app)
    for _ in range(3):
        clocked_app.enqueue("always_fails")
    Stepper(clocked_app).drain()
    snap = taskq.take_snapshot(clocked_app)
    assert snap.retrying == 3
    assert snap.scheduled == 3


def test_gauge_drops_on_promotion(clocked_app: taskq.App,
                                  fake_clock: taskq.FakeClock) -> None:
    """A retry that falls due and moves to ready no longer counts as retrying."""
    _flaky_app(clocked_app)
    clocked_app.enqueue("always_fails")
    Stepper(clocked_app).drain()
    fake_clock.advance(61)
    assert promote_all(clocked_app) == 1
    assert taskq.take_snapshot(clocked_app).retrying == 0


def test_gauge_drops_on_cancel(clocked_app: taskq.App) -> None:
    """Cancelling a task that waits to retry removes it from the gauge."""
    _flaky_app(clocked_app)
    handle = clocked_app.enqueue("always_fails")
    Stepper(clocked_app).drain()
    assert clocked_app.cancel(handle.id) == "cancelled"
    assert taskq.take_snapshot(clocked_app).retrying == 0
