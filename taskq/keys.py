"""Every Redis key the engine uses, one function each. Nothing else builds a key string.

All keys of one queue share the hash tag ``{<queue>}``, so a script that touches one queue runs
on Redis Cluster. Keys that belong to no queue (workers, the queue registry) share the tag
``{_global}``. Queue names are escaped inside the tag (``%`` as ``%25``, ``{`` as ``%7B``,
``}`` as ``%7D``, and a leading ``_`` as ``%5F``, so no queue takes the global tag), so any
valid queue name maps to exactly one tag and two names never collide.

Times stored in scores are in milliseconds since the Unix epoch unless a key says otherwise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from taskq.settings import MAX_PRIORITY, MIN_PRIORITY

GLOBAL_TAG = "_global"


def escape_queue_name(queue: str) -> str:
    """Return ``queue`` with the characters that would break a hash tag percent-encoded.

    A leading ``_`` is encoded too, so that a queue named ``_global`` cannot share the tag,
    and so the keys, of the global keys.
    """
    escaped = queue.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")
    return "%5F" + escaped[1:] if escaped.startswith("_") else escaped


def glob_escape(text: str) -> str:
    """Return ``text`` with the characters special to SCAN MATCH patterns backslash-escaped."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


@dataclass(frozen=True)
class QueueKeys:
    """The keys of one queue, built once per queue name."""

    prefix: str
    queue: str

    def _key(self, suffix: str) -> str:
        return f"{self.prefix}:{{{escape_queue_name(self.queue)}}}:{suffix}"

    @property
    def pattern(self) -> str:
        """SCAN MATCH pattern that matches every key of this queue and no key of another."""
        return glob_escape(self._key("")) + "*"

    def ready(self, priority: int) -> str:
        """List of ready task ids at one priority; producers push left, FIFO claims pop right."""
        return self._key(f"ready:{priority}")

    def ready_all(self) -> list[str]:
        """The ready lists from the highest priority to the lowest: the claim order."""
        return [self.ready(p) for p in range(MAX_PRIORITY, MIN_PRIORITY - 1, -1)]

    @property
    def scheduled(self) -> str:
        """Sorted set of scheduled and retrying task ids; score is the due time in ms."""
        return self._key("scheduled")

    @property
    def active(self) -> str:
        """Sorted set of leased task ids; score is the lease deadline in ms."""
        return self._key("active")

    @property
    def dead(self) -> str:
        """Sorted set of dead task ids; score is the time the task went dead, in ms."""
        return self._key("dead")

    @property
    def finished(self) -> str:
        """Sorted set of succeeded and cancelled task ids; score is when the record expires, ms."""
        return self._key("finished")

    @property
    def tasks(self) -> str:
        """Hash of task id to the task record as JSON (everything but arguments and result)."""
        return self._key("tasks")

    @property
    def args(self) -> str:
        """Hash of task id to the JSON-encoded arguments ``{"args": [...], "kwargs": {...}}``."""
        return self._key("args")

    @property
    def results(self) -> str:
        """Hash of task id to the JSON-encoded return value of a succeeded task."""
        return self._key("results")

    @property
    def config(self) -> str:
        """Hash of per-queue options: ``paused`` ("1" when paused) and ``lifo`` ("1" for LIFO)."""
        return self._key("config")

    @property
    def counters(self) -> str:
        """Hash of lifetime counters (enqueued, succeeded, failed, retried, dead, recovered...)."""
        return self._key("counters")

    @property
    def rate(self) -> str:
        """Hash of per-second outcome counts; field ``<kind>:<unix second>``, kind s/f/r/d/e."""
        return self._key("rate")

    @property
    def wait_hist(self) -> str:
        """Hash of queue-wait histogram bucket index to count (bounds in ``metrics.py``)."""
        return self._key("hist:wait")

    @property
    def run_hist(self) -> str:
        """Hash of run-time histogram bucket index to count (bounds in ``metrics.py``)."""
        return self._key("hist:run")

    @property
    def events(self) -> str:
        """Stream of task transitions of this queue, capped near ``Settings.events_max_len``."""
        return self._key("events")

    @property
    def wake(self) -> str:
        """List of wake-up tokens: each push to ready adds one, idle workers block on it."""
        return self._key("wake")

    @property
    def promoter_wake(self) -> str:
        """List a producer pushes to when it schedules a task due sooner than any other."""
        return self._key("promoter-wake")


@dataclass(frozen=True)
class GlobalKeys:
    """Keys that belong to no queue."""

    prefix: str

    def _key(self, suffix: str) -> str:
        return f"{self.prefix}:{{{GLOBAL_TAG}}}:{suffix}"

    @property
    def queues(self) -> str:
        """Set of every queue name that has had a task enqueued."""
        return self._key("queues")

    @property
    def workers(self) -> str:
        """Sorted set of worker ids; score is the worker's last heartbeat in ms."""
        return self._key("workers")

    @property
    def worker_info(self) -> str:
        """Hash of worker id to the worker record as JSON."""
        return self._key("worker-info")

    @property
    def worker_control(self) -> str:
        """Hash of worker id to a pending JSON command (resize, stop) read at its heartbeat."""
        return self._key("worker-control")

    @property
    def events(self) -> str:
        """Stream of worker transitions (online, offline, pool resized, removed)."""
        return self._key("events")


class KeySpace:
    """Builds and caches the key objects for one key prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.global_keys = GlobalKeys(prefix)
        self._queues: dict[str, QueueKeys] = {}

    @property
    def pattern(self) -> str:
        """SCAN MATCH pattern that matches every key under this prefix."""
        return glob_escape(f"{self.prefix}:") + "*"

    def queue(self, name: str) -> QueueKeys:
        keys = self._queues.get(name)
        if keys is None:
            keys = QueueKeys(self.prefix, name)
            self._queues[name] = keys
        return keys
