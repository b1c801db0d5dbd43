"""Apps with chaos-specific settings, for worker processes started with ``--app``."""

from __future__ import annotations

from dataclasses import replace

import taskq
from tests.conftest import FAST_SETTINGS
from tests.sample_tasks import record_run, sleep_and_count

# A 2 s lease renewed every 0.2 s: a stall of 1 s is five heartbeats long yet shorter than the
# lease, and a stall of 3 s is longer than the lease.
STALL_SETTINGS = replace(FAST_SETTINGS, lease_s=2.0, heartbeat_interval_s=0.2,
                         worker_dead_after_s=2.0)
stall_app = taskq.App(settings=STALL_SETTINGS)
stall_app.task(name="sleep_and_count", max_retries=5)(sleep_and_count.definition.func)
stall_app.task(name="record_run", max_retries=3)(record_run.definition.func)

# A 5 s lease renewed every 0.5 s, longer than each Redis outage of the restart test.
OUTAGE_SETTINGS = replace(FAST_SETTINGS, lease_s=5.0, heartbeat_interval_s=0.5,
                          worker_dead_after_s=5.0)
outage_app = taskq.App(settings=OUTAGE_SETTINGS)
outage_app.task(name="record_run", max_retries=3)(record_run.definition.func)
