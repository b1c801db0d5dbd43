"""One consistent view of the engine, read with a single script call: the dashboard's source.

Worker states are derived from the same read as the active set: a worker is busy exactly when
it holds an active task in this snapshot, so the busy count, the worker detail and the in-flight
count in Redis always agree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from taskq.metrics import RATE_KINDS, histogram_counts, percentile_ms
from taskq.settings import MAX_PRIORITY

if TYPE_CHECKING:
    from taskq.app import App

RATE_SECONDS = 120
ACTIVE_LIMIT = 1000


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _pairs(flat: list[Any]) -> dict[str, int]:
    return {_text(flat[i]): int(flat[i + 1]) for i in range(0, len(flat), 2)}


@dataclass
class ActiveTask:
    """A leased task: who holds it, since when, and until when the lease runs."""

    task_id: str
    queue: str
    worker: str
    name: str
    attempt: int
    started_ms: int
    lease_deadline_ms: int


@dataclass
class WorkerView:
    """A worker as the snapshot sees it; ``state`` is idle, busy or offline."""

    id: str
    state: str
    last_heartbeat_ms: int
    heartbeat_age_s: float
    concurrency: int
    queues: list[str]
    processed: int
    failed: int
    host: str
    pid: int
    pool: str
    tasks: list[ActiveTask] = field(default_factory=list)


@dataclass
class QueueView:
    """Depths, counters, rates and histograms of one queue."""

    name: str
    ready_by_priority: dict[int, int]
    scheduled: int
    active: int
    dead: int
    finished: int
    counters: dict[str, int]
    rate: dict[str, list[int]]
    wait_hist: list[int]
    run_hist: list[int]
    paused: bool
    lifo: bool
    last_event_id: str
    events_len: int
    active_tasks: list[ActiveTask]

    @property
    def ready(self) -> int:
        return sum(self.ready_by_priority.values())


@dataclass
class Snapshot:
    """Everything the dashboard shows, from one atomic read."""

    now_ms: int
    queues: dict[str, QueueView]
    workers: list[WorkerView]
    unowned_tasks: list[ActiveTask]
    rate_seconds: int

    def total(self, counter: str) -> int:
        return sum(q.counters.get(counter, 0) for q in self.queues.values())

    @property
    def ready(self) -> int:
        return sum(q.ready for q in self.queues.values())

    @property
    def scheduled(self) -> int:
        return sum(q.scheduled for q in self.queues.values())

    @property
    def active(self) -> int:
        return sum(q.active for q in self.queues.values())

    @property
    def retrying(self) -> int:
        """Tasks waiting to retry now (a part of ``scheduled``), from the 'retrying' gauge."""
        return self.total("retrying")

    @property
    def dead(self) -> int:
        return sum(q.dead for q in self.queues.values())

    @property
    def busy_workers(self) -> int:
        return sum(1 for w in self.workers if w.tasks and w.state != "offline")

    def rate_series(self, kind: str) -> list[int]:
        """Per-second counts of ``kind`` (e, s, f, r, d) summed over queues, oldest first."""
        total = [0] * self.rate_seconds
        for queue in self.queues.values():
            for i, value in enumerate(queue.rate.get(kind, [])):
                total[i] += value
        return total

    def throughput_per_s(self, seconds: int = 5) -> float:
        """Succeeded per second over the last ``seconds`` complete seconds."""
        series = self.rate_series("s")[-seconds - 1:-1]
        return sum(series) / max(len(series), 1)

    def success_rate(self) -> float | None:
        """Succeeded / (succeeded + dead) over the queues' lifetime; None before any outcome."""
        done = self.total("succeeded") + self.total("dead")
        return None if done == 0 else self.total("succeeded") / done

    def wait_percentile_ms(self, fraction: float) -> float | None:
        return percentile_ms(self._hist("wait_hist"), fraction)

    def run_percentile_ms(self, fraction: float) -> float | None:
        return percentile_ms(self._hist("run_hist"), fraction)

    def _hist(self, name: str) -> list[int]:
        counts: list[int] = []
        for queue in self.queues.values():
            values = getattr(queue, name)
            counts = values if not counts else [a + b for a, b in zip(counts, values)]
        return counts

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (used by ``taskq stats --json`` and the HTTP API)."""
        return {
            "now_ms": self.now_ms,
            "totals": {
                "enqueued": self.total("enqueued"), "ready": self.ready,
                "scheduled": self.scheduled, "active": self.active,
                "succeeded": self.total("succeeded"), "failed": self.total("failed"),
                "retried": self.total("retried"), "dead": self.dead,
                "recovered": self.total("recovered"), "cancelled": self.total("cancelled"),
                "expired": self.total("expired"), "dead_trimmed": self.total("dead_trimmed"),
                "success_rate": self.success_rate(),
                "throughput_per_s": self.throughput_per_s(),
                "wait_p50_ms": self.wait_percentile_ms(0.5),
                "wait_p95_ms": self.wait_percentile_ms(0.95),
                "wait_p99_ms": self.wait_percentile_ms(0.99),
                "run_p50_ms": self.run_percentile_ms(0.5),
                "run_p95_ms": self.run_percentile_ms(0.95),
            },
            "queues": {
                name: {"ready": q.ready, "ready_by_priority": q.ready_by_priority,
                       "scheduled": q.scheduled, "active": q.active, "dead": q.dead,
                       "paused": q.paused, "lifo": q.lifo, "counters": q.counters}
                for name, q in self.queues.items()
            },
            "workers": [{"id": w.id, "state": w.state, "concurrency": w.concurrency,
                         "queues": w.queues, "processed": w.processed, "failed": w.failed,
                         "heartbeat_age_s": w.heartbeat_age_s,
                         "tasks": [t.task_id for t in w.tasks]} for w in self.workers],
        }


def _active_tasks(queue: str, flat: list[Any]) -> list[ActiveTask]:
    out = []
    for i in range(0, len(flat), 6):
        task_id, deadline, worker, started, name, attempt = (_text(x) for x in flat[i:i + 6])
        out.append(ActiveTask(task_id, queue, worker, name, int(attempt or 0),
                              int(started or 0), int(float(deadline))))
    return out


def _queue_view(name: str, raw: list[Any], rate_seconds: int) -> QueueView:
    depths, scheduled, active, dead, finished, counters, rate, wait, run, config = raw[:10]
    last_event_id, events_len, active_flat = raw[10], raw[11], raw[12]
    config_map = {_text(config[i]): _text(config[i + 1]) for i in range(0, len(config), 2)}
    rates = {kind: [int(v) for v in rate[i * rate_seconds:(i + 1) * rate_seconds]]
             for i, kind in enumerate(RATE_KINDS)}
    return QueueView(
        name=name,
        ready_by_priority={MAX_PRIORITY - i: int(d) for i, d in enumerate(depths)},
        scheduled=int(scheduled), active=int(active), dead=int(dead), finished=int(finished),
        counters=_pairs(counters), rate=rates,
        wait_hist=histogram_counts(_pairs(wait)), run_hist=histogram_counts(_pairs(run)),
        paused=config_map.get("paused") == "1", lifo=config_map.get("lifo") == "1",
        last_event_id=_text(last_event_id), events_len=int(events_len),
        active_tasks=_active_tasks(name, active_flat),
    )


def _worker_view(worker_id: str, heartbeat_ms: int, info: dict[str, Any], now_ms: int,
                 dead_after_s: float) -> WorkerView:
    age_s = max(now_ms - heartbeat_ms, 0) / 1000
    offline = info.get("state") == "offline" or age_s > dead_after_s
    return WorkerView(
        id=worker_id, state="offline" if offline else "idle", last_heartbeat_ms=heartbeat_ms,
        heartbeat_age_s=age_s, concurrency=int(info.get("concurrency", 0) or 0),
        queues=list(info.get("queues", []) or []), processed=int(info.get("processed", 0) or 0),
        failed=int(info.get("failed", 0) or 0), host=str(info.get("host", "")),
        pid=int(info.get("pid", 0) or 0), pool=str(info.get("pool", "")),
    )


def _read_per_slot(app: App, names: list[str], rate_seconds: int) -> list[Any]:
    """Assemble the snapshot script's reply from one call for workers and one per queue."""
    head = app.scripts.snapshot(app.now(), app.keys.global_keys, [], rate_seconds, ACTIVE_LIMIT)
    blocks = [app.scripts.snapshot(app.now(), None, [app.keys.queue(name)], rate_seconds,
                                   ACTIVE_LIMIT)[2] for name in names]
    return [head[0], head[1], *blocks]


def take_snapshot(app: App, queues: list[str] | None = None, rate_seconds: int = RATE_SECONDS
                  ) -> Snapshot:
    """Read every queue (or the ones named) and all workers in one atomic script call.

    On Redis Cluster the workers and each queue are read by separate calls (one per hash slot),
    so the figures of different queues may be a few milliseconds apart.
    """
    names = app.queues() if queues is None else queues
    if app.cluster:
        raw = _read_per_slot(app, names, rate_seconds)
    else:
        raw = app.scripts.snapshot(app.now(), app.keys.global_keys,
                                   [app.keys.queue(n) for n in names], rate_seconds,
                                   ACTIVE_LIMIT)
    now_ms = int(raw[0])
    workers_flat = raw[1]
    workers: dict[str, WorkerView] = {}
    for i in range(0, len(workers_flat), 3):
        worker_id = _text(workers_flat[i])
        try:
            info = json.loads(_text(workers_flat[i + 2]))
        except ValueError:
            info = {}
        workers[worker_id] = _worker_view(worker_id, int(float(workers_flat[i + 1])),
                                          info if isinstance(info, dict) else {}, now_ms,
                                          app.settings.worker_dead_after_s)
    views = {name: _queue_view(name, raw[2 + i], rate_seconds) for i, name in enumerate(names)}
    unowned = []
    for view in views.values():
        for task in view.active_tasks:
            owner = workers.get(task.worker)
            if owner is None:
                unowned.append(task)
                continue
            owner.tasks.append(task)
            if owner.state != "offline":
                owner.state = "busy"
    return Snapshot(now_ms, views, list(workers.values()), unowned, rate_seconds)
