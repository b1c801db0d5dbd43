"""A worker extends only the leases it still holds, however many tasks it has run."""

from __future__ import annotations

import taskq
from tests.conftest import wait_until, with_settings


def test_heartbeat_carries_only_held_leases(redis_url: str | None) -> None:
    """After 300 tasks finish, the next heartbeat extends no lease at all."""
    # No background heartbeat runs during the test, so only the settles can clear the leases.
    app = taskq.App(redis_url, settings=with_settings(heartbeat_interval_s=60, lease_s=120))

    @app.task(name="noop")
    def noop() -> None:
        return None

    extended: list[int] = []
    real_extend = app.scripts.extend

    def counting_extend(now: str, keys: object, lease_ms: int, held: list[tuple[str, str]]
                        ) -> tuple[list[str], list[str]]:
        extended.append(len(held))
        return real_extend(now, keys, lease_ms, held)  # type: ignore[arg-type]

    app.scripts.extend = counting_extend  # type: ignore[method-assign]
    worker = taskq.Worker(app, ["default"], concurrency=2, prefetch=4)
    worker.start()
    try:
        app.enqueue_many([taskq.Call("noop") for _ in range(300)])
        wait_until(lambda: taskq.take_snapshot(app).total("succeeded") == 300, 30,
                   message="300 tasks succeeded")
        extended.clear()
        worker.beat()
    finally:
        worker.stop(grace_s=1)
    assert sum(extended) == 0
