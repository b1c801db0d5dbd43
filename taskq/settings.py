"""Every interval, limit and default of the engine, in one frozen object.

Times carry their unit in the name (``_s`` seconds, ``_ms`` milliseconds). Tests and the demo
build a ``Settings`` with short intervals through ``dataclasses.replace``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

# Priorities are integers in [MIN_PRIORITY, MAX_PRIORITY]; a higher number runs first. Each level
# has its own Redis list, so the range is small and fixed.
MIN_PRIORITY = 0
MAX_PRIORITY = 9
DEFAULT_PRIORITY = 5

# Settings where 0 is a meaningful value: no grace, no retention, retry at once, no jitter.
_MAY_BE_ZERO = frozenset({
    "shutdown_grace_s", "dead_retention_s", "dead_max_count", "default_result_ttl_s",
    "default_max_retries", "default_backoff_min_s", "default_backoff_jitter",
})


def _check_number(name: str, value: object) -> None:
    if name in ("dead_retention_s", "dead_max_count") and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name}={value!r} must be a finite number")
    if name in _MAY_BE_ZERO and value < 0:
        raise ValueError(f"{name}={value!r} must be 0 or more")
    if name not in _MAY_BE_ZERO and value <= 0:
        raise ValueError(f"{name}={value!r} must be more than 0")


@dataclass(frozen=True)
class Settings:
    """Engine intervals and limits shared by workers, promoters, reapers and producers."""

    key_prefix: str = "taskq"

    # A worker refreshes its record and extends its leases every heartbeat interval. A lease
    # that is not extended for lease_s expires and the reaper returns its task to ready.
    heartbeat_interval_s: float = 2.0
    lease_s: float = 10.0
    # A worker whose heartbeat is older than this shows as offline; after the retention its
    # record is removed.
    worker_dead_after_s: float = 10.0
    worker_retention_s: float = 300.0

    reaper_interval_s: float = 1.0
    reaper_batch: int = 500
    # The promoter sleeps until the next due time, but never longer than this cap.
    promoter_max_sleep_s: float = 1.0
    promoter_batch: int = 1000
    # Idle slots block in Redis for at most this long before they look at their stop flag.
    idle_block_s: float = 1.0

    # Cleanup of finished records and dead letters runs every janitor interval.
    janitor_interval_s: float = 5.0
    dead_retention_s: float | None = 7 * 24 * 3600.0
    dead_max_count: int | None = 100_000
    default_result_ttl_s: float = 24 * 3600.0

    # Per-queue event stream length (approximate trimming) and per-second rate window.
    events_max_len: int = 10_000
    rate_window_s: int = 600

    # Size limits, checked before anything is written.
    max_payload_bytes: int = 1024 * 1024
    max_error_message_chars: int = 8 * 1024
    max_traceback_chars: int = 32 * 1024
    max_progress_message_chars: int = 200
    max_id_chars: int = 200
    max_queue_name_chars: int = 128
    max_tasks_per_call: int = 500

    # Graceful shutdown: how long running tasks may finish before their leases are released.
    shutdown_grace_s: float = 30.0

    # Default retry policy for tasks that do not set one.
    default_max_retries: int = 3
    default_backoff_min_s: float = 1.0
    default_backoff_max_s: float = 300.0
    default_backoff_factor: float = 2.0
    # Jitter adds up to this fraction of the computed delay, then the delay is clamped to
    # [min, max], so jitter never takes a delay below the configured minimum.
    default_backoff_jitter: float = 0.25

    def validate(self) -> None:
        """Raise ValueError naming the first setting that cannot work.

        Every interval must be a finite number above 0 (NaN compares false with everything, so
        it would silently disable a check), limits and counts positive integers, and the optional
        retention limits None or at least 0.
        """
        if not isinstance(self.key_prefix, str) or not self.key_prefix:
            raise ValueError(f"key_prefix={self.key_prefix!r} must be a non-empty string")
        for item in fields(self):
            if item.name != "key_prefix":
                _check_number(item.name, getattr(self, item.name))
        if self.lease_s <= self.heartbeat_interval_s:
            raise ValueError(
                f"lease_s={self.lease_s} must be longer than heartbeat_interval_s="
                f"{self.heartbeat_interval_s}, or leases expire between heartbeats"
            )
        for name in ("heartbeat_interval_s", "reaper_interval_s", "idle_block_s",
                     "promoter_max_sleep_s", "janitor_interval_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}={getattr(self, name)} must be positive")
        if self.max_tasks_per_call < 1:
            raise ValueError(f"max_tasks_per_call={self.max_tasks_per_call} must be at least 1")


DEFAULT_SETTINGS = Settings()
