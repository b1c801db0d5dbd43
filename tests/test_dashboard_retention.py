"""The dashboard states dead-letter retention and how much it removed."""

from __future__ import annotations

import taskq
from taskq_widgets.dead import retention_text
from tests.conftest import with_settings
from tests.helpers import Stepper


def test_retention_text_counts_trimmed(redis_url: str | None) -> None:
    """After a count cap trims dead letters, the text names the cap and the number removed."""
    app = taskq.App(redis_url, settings=with_settings(dead_max_count=1))

    @app.task(name="fails", max_retries=0)
    def fails() -> None:
        raise ValueError("always")

    for _ in range(3):
        app.enqueue("fails")
    Stepper(app).drain()
    taskq.Reaper(app, ["default"], "test").trim_queue("default")
    view = taskq.take_snapshot(app).queues["default"]
    text = retention_text(app.settings, view.counters.get("dead_trimmed", 0))
    assert view.dead == 1
    assert "at most the newest 1 per queue" in text
    assert "2 removed by retention" in text
