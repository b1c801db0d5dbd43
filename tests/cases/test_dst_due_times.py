"""Due times given as local wall-clock times keep their meaning across daylight saving changes.

The process runs in ``America/New_York``. A naive ``eta`` is read as local time with the offset
in force on that date; an aware one is converted exactly, ``fold`` choosing the reading of an
ambiguous hour; a naive time that a spring-forward change skips is rejected. The producer's
fake clock stands in late 2023, so every due time below is in the future and is stored both on
the record and as the task's score in the scheduled set.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

import taskq

pytestmark = pytest.mark.chaos  # the reported-failure scenarios are part of the chaos suite

NEW_YORK = ZoneInfo("America/New_York")
BEFORE_2024_S = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC

# (label, eta, expected due time in Unix seconds)
ETA_CASES = [
    ("naive summer", datetime(2024, 7, 1, 22, 0), 1719885600),
    ("naive winter", datetime(2024, 1, 15, 22, 0), 1705374000),
    ("aware ambiguous fold=0", datetime(2024, 11, 3, 1, 30, tzinfo=NEW_YORK), 1730611800),
    ("aware ambiguous fold=1", datetime(2024, 11, 3, 1, 30, fold=1, tzinfo=NEW_YORK),
     1730615400),
    ("naive ambiguous fold=0", datetime(2024, 11, 3, 1, 30), 1730611800),
    ("naive ambiguous fold=1", datetime(2024, 11, 3, 1, 30, fold=1), 1730615400),
    ("aware UTC", datetime(2024, 3, 10, 7, 30, tzinfo=timezone.utc), 1710055800),
    # PEP 495: an aware wall time inside the gap is read with the offset before the change.
    ("aware skipped hour", datetime(2024, 3, 10, 2, 30, tzinfo=NEW_YORK), 1710055800),
]


@pytest.fixture
def new_york_time() -> Iterator[None]:
    """Run the test with the process time zone set to America/New_York, then restore it."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = saved
        time.tzset()


@pytest.fixture
def producer(redis_url: str | None, new_york_time: None) -> taskq.App:
    app = taskq.App(redis_url, clock=taskq.FakeClock(BEFORE_2024_S))
    app.task("report")(lambda: None)
    return app


@pytest.mark.parametrize(("label", "eta", "expected_s"), ETA_CASES,
                         ids=[case[0] for case in ETA_CASES])
def test_eta_stored_as_utc_instant(producer: taskq.App, label: str, eta: datetime,
                                   expected_s: int) -> None:
    """The record's due time and the scheduled score are the expected Unix instant."""
    handle = producer.enqueue("report", eta=eta)

    rec = producer.get(handle.id)
    score = producer.client.zscore(producer.keys.queue("default").scheduled, handle.id)
    assert rec.state is taskq.State.SCHEDULED
    assert rec.due_ms == expected_s * 1000
    assert score == expected_s * 1000


def test_skipped_local_time_rejected(producer: taskq.App) -> None:
    """A naive time that the spring-forward change skips raises and writes nothing."""
    skipped = datetime(2024, 3, 10, 2, 30)
    keys_before = producer.client.dbsize()

    with pytest.raises(taskq.InvalidTaskError) as caught:
        producer.enqueue("report", eta=skipped)

    message = str(caught.value)
    assert "2024-03-10T02:30:00" in message
    assert "does not exist" in message
    assert "timezone-aware" in message
    assert producer.client.dbsize() == keys_before


def test_due_time_uses_server_clock(real_redis_url: str,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A producer whose own clock is an hour fast still schedules from the server's clock."""
    app = taskq.App(real_redis_url)
    app.task("report")(lambda: None)
    server_s, server_us = app.client.time()
    server_ms = server_s * 1000 + server_us // 1000
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 3600)

    handle = app.enqueue("report", delay_s=2.0)

    rec = app.get(handle.id)
    assert rec.enqueued_ms is not None
    assert rec.due_ms == rec.enqueued_ms + 2000
    assert abs(rec.enqueued_ms - server_ms) < 5000
