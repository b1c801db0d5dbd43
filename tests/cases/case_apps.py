"""Apps with case-specific settings, for worker processes started with ``--app``.

``FAST_SETTINGS`` suit most tests; the apps here scale a reported scenario's own intervals down while
keeping their ratios, so the scenario stays the same and the test stays short.
"""

from __future__ import annotations

from dataclasses import replace

import taskq
from tests.conftest import FAST_SETTINGS, with_settings
from tests.sample_tasks import busy_loop, record_run, sleep_and_count

# Heartbeat every 2 s, a worker dead after 10 s of silence and a 10 s lease, all divided by 5.
CPU_BOUND_SETTINGS = replace(FAST_SETTINGS, heartbeat_interval_s=0.4, worker_dead_after_s=2.0,
                             lease_s=2.0, reaper_interval_s=0.1)
cpu_bound_app = taskq.App(settings=CPU_BOUND_SETTINGS)
cpu_bound_app.task(name="busy_loop", max_retries=0)(busy_loop.definition.func)

# For runs where leases are not the subject: a 10 s lease (the production default) so that a
# loaded machine's late heartbeat cannot expire one and add a second run.
LONG_LEASE_SETTINGS = replace(FAST_SETTINGS, lease_s=10.0, heartbeat_interval_s=1.0)
long_lease_app = taskq.App(settings=LONG_LEASE_SETTINGS)
long_lease_app.task(name="record_run", max_retries=3)(record_run.definition.func)


def fail_with_payload(payload: str) -> None:
    """Fail at once; ``payload`` is only there to make the stored arguments large."""
    raise ValueError(f"this task always fails ({len(payload)} characters of payload)")


# Dead letters kept 3 s (the case's 30 s, divided by 10), or only the newest 1,000 of them.
RETENTION_TIME_SETTINGS = with_settings(dead_retention_s=3.0, dead_max_count=None,
                                        events_max_len=1000)
RETENTION_COUNT_SETTINGS = with_settings(dead_retention_s=None, dead_max_count=1000,
                                         events_max_len=1000)
retention_time_app = taskq.App(settings=RETENTION_TIME_SETTINGS)
retention_count_app = taskq.App(settings=RETENTION_COUNT_SETTINGS)
for _retention_app in (retention_time_app, retention_count_app):
    _retention_app.task(name="fail_with_payload", max_retries=0,
                        result_ttl_s=0)(fail_with_payload)

# A 5 s lease with a heartbeat every 0.5 s, against a Redis outage of 3 s: the lease outlives
# the outage, as the production 10 s lease does.
RESTART_SETTINGS = replace(FAST_SETTINGS, lease_s=5.0, heartbeat_interval_s=0.5,
                           worker_dead_after_s=5.0)
restart_app = taskq.App(settings=RESTART_SETTINGS)
restart_app.task(name="sleep_and_count", max_retries=5)(sleep_and_count.definition.func)
