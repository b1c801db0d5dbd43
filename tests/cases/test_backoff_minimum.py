"""Retry delays never undercut the configured minimum, and an explicit minimum of 0 is kept.

Policy: 3 retries, exponential (factor 2), minimum 1 s, maximum 5 s, jitter 0.25. The engine
computes ``min_s * factor**(retry-1)``, adds up to ``jitter`` times that, then clamps to
[min_s, max_s], so the delays before retries 1, 2 and 3 lie in [1, 1.25], [2, 2.5] and [4, 5] s.
Attempt starts and failures are read from the queue's event stream, whose times come from the
Redis server's clock. The promoter's tick (``promoter_max_sleep_s``) is the scheduler tick.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict

import pytest
from hypothesis import given
from hypothesis import strategies as st

import taskq
from tests.cases.support import events_of
from tests.conftest import FAST_SETTINGS, wait_until

pytestmark = pytest.mark.chaos  # the reported-failure scenarios are part of the chaos suite

FAILING_TASKS = 50
RETRIES = 3
MIN_S, MAX_S, FACTOR, JITTER = 1.0, 5.0, 2.0, 0.25
TICK_S = FAST_SETTINGS.promoter_max_sleep_s
SLACK_S = 0.5


def always_fail() -> None:
    raise RuntimeError("this task always fails")


def retry_delays_ms(app: taskq.App) -> dict[str, list[int]]:
    """Per task, the time from each failed attempt to the start of the next, in ms."""
    started: dict[str, list[int]] = defaultdict(list)
    failed: dict[str, list[int]] = defaultdict(list)
    for event in events_of(app):
        if event.kind == "started":
            started[event.task_id].append(event.t_ms)
        elif event.kind == "failed":
            failed[event.task_id].append(event.t_ms)
    return {task_id: [start - fail for fail, start in zip(failed[task_id], starts[1:])]
            for task_id, starts in started.items()}


def test_retry_delays_honour_minimum(real_redis_url: str) -> None:
    """Each retry waits at least its exponential minimum and at most max + tick + 0.5 s."""
    app = taskq.App(real_redis_url, settings=FAST_SETTINGS)
    app.task("flaky", max_retries=RETRIES, backoff_min_s=MIN_S, backoff_max_s=MAX_S,
             backoff_factor=FACTOR, backoff_jitter=JITTER)(always_fail)
    app.task("eager", max_retries=RETRIES, backoff_min_s=0, backoff_max_s=MAX_S,
             backoff_factor=FACTOR, backoff_jitter=JITTER)(always_fail)
    flaky = [app.enqueue("flaky").id for _ in range(FAILING_TASKS)]
    eager = app.enqueue("eager").id

    worker = taskq.Worker(app, concurrency=4)
    worker.start()
    try:
        wait_until(lambda: app.client.zcard(app.keys.queue("default").dead) == FAILING_TASKS + 1,
                   timeout_s=MIN_S + 2 * MIN_S + MAX_S + 15, interval_s=0.1,
                   message="every task dead")
    finally:
        worker.stop(grace_s=1)

    delays = retry_delays_ms(app)
    for task_id in flaky:
        rec = app.get(task_id)
        assert rec.state is taskq.State.DEAD
        assert rec.attempts == RETRIES + 1
        assert len(delays[task_id]) == RETRIES
        for retry, delay_ms in enumerate(delays[task_id], start=1):
            minimum_s = MIN_S * FACTOR ** (retry - 1)
            assert delay_ms >= minimum_s * 1000, (task_id, retry, delay_ms)
            assert delay_ms <= (MAX_S + TICK_S + SLACK_S) * 1000, (task_id, retry, delay_ms)
    assert app.get(eager).attempts == RETRIES + 1
    assert len(delays[eager]) == RETRIES
    assert max(delays[eager]) <= (TICK_S + SLACK_S) * 1000


@given(min_s=st.floats(0, 1e6), spread=st.floats(0, 1e6),
       factor=st.floats(0, 1e6), jitter=st.floats(0, 10),
       retry=st.integers(1, 100_000), seed=st.integers(0, 2**32 - 1))
def test_backoff_delay_within_bounds(min_s: float, spread: float, factor: float, jitter: float,
                                     retry: int, seed: int) -> None:
    """For any policy and retry number the delay is finite and within [min_s, max_s], and at
    least the exponential schedule's value when that is below max_s."""
    max_s = min_s + spread
    backoff = taskq.Backoff(min_s, max_s, factor, jitter)

    delay = backoff.delay_s(retry, random.Random(seed))

    assert math.isfinite(delay)
    assert min_s <= delay <= max_s
    try:
        scheduled = min_s * factor ** (retry - 1)
    except OverflowError:
        scheduled = math.inf if min_s > 0 else 0.0
    assert delay >= min(scheduled, max_s)


@pytest.mark.parametrize("retry", [1, 2, 3])
def test_backoff_zero_minimum_is_immediate(retry: int) -> None:
    """An explicit minimum of 0 gives a delay of 0, never the default minimum."""
    assert taskq.Backoff(0.0, MAX_S, FACTOR, JITTER).delay_s(retry) == 0.0
