"""The dashboard's data: one ``Frame`` per refresh, built from one snapshot and the newest events.

Everything a panel shows comes from a Frame, and every figure of a Frame comes from the one
``taskq.Snapshot`` it was built from (plus the depth history of earlier frames), so the numbers
on the page always describe one instant. This module imports only the engine: tests check the
data without a browser, and the views turn a Frame into widgets.

Invariants, checked by the tests:
- ``tiles["active"]`` is the snapshot's active count (the in-flight count in Redis);
- ``in_flight`` lists every leased task once: those on worker cards plus ``unowned`` ones, so
  ``len(in_flight) == tiles["active"]`` while no queue holds more than the snapshot's listing
  limit (1,000 leased tasks);
- ``busy_workers`` is the number of cards whose state is busy.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import taskq
from taskq.events import Event, events_since, stream_keys
from taskq.health import Health
from taskq.metrics import HISTOGRAM_BOUNDS_US
from taskq.settings import MAX_PRIORITY, MIN_PRIORITY

PRIORITIES = tuple(range(MAX_PRIORITY, MIN_PRIORITY - 1, -1))
"""Priority levels from the highest to the lowest: the order of the ready lists."""

OUTCOME_KINDS = {"e": "enqueued", "s": "succeeded", "r": "retried", "d": "dead"}
"""Per-second rate kinds drawn on the throughput chart, with their names."""

FLOW_WINDOW_S = 5
"""Per-second flows are averaged over this many complete seconds."""

TILE_NAMES = ("enqueued", "ready", "scheduled", "active", "succeeded", "retrying", "dead",
              "success_rate", "throughput_per_s", "wait_p50_ms", "wait_p95_ms", "wait_p99_ms",
              "run_p50_ms", "run_p95_ms")


def _short(value: float) -> str:
    """Two significant digits below 10, whole numbers above: 0.79, 6.3, 50, 400."""
    return f"{value:.2g}" if value < 10 else f"{value:.0f}"


def bucket_labels() -> list[str]:
    """Histogram bucket labels, one per bucket: its upper bound, then the overflow bucket."""
    labels = []
    for bound_us in HISTOGRAM_BOUNDS_US:
        labels.append(f"≤{_short(bound_us / 1000)} ms" if bound_us < 1_000_000
                      else f"≤{_short(bound_us / 1_000_000)} s")
    labels.append(f">{_short(HISTOGRAM_BOUNDS_US[-1] / 1_000_000)} s")
    return labels


@dataclass(frozen=True)
class TaskRow:
    """One leased task as the worker detail shows it."""

    task_id: str
    queue: str
    name: str
    worker: str
    worker_state: str      # idle/busy/offline of its holder, or "unknown" for no such worker
    attempt: int
    elapsed_s: float       # since the attempt started, on the Redis server's clock
    lease_left_s: float    # until the lease expires; negative once the reaper may recover it


@dataclass(frozen=True)
class WorkerCard:
    """One worker's card."""

    id: str
    state: str
    host: str
    pid: int
    pool: str
    concurrency: int
    queues: tuple[str, ...]
    processed: int
    failed: int
    heartbeat_age_s: float
    tasks: tuple[TaskRow, ...]


@dataclass(frozen=True)
class QueueRow:
    name: str
    paused: bool
    ready: int
    scheduled: int
    active: int
    dead: int


@dataclass(frozen=True)
class Pipeline:
    """Counts per stage and flows per second between stages (averaged over FLOW_WINDOW_S)."""

    scheduled: int
    ready_by_priority: dict[int, int]
    active: int
    succeeded: int
    retried: int
    dead: int
    enqueued_per_s: float
    succeeded_per_s: float
    retried_per_s: float
    dead_per_s: float

    @property
    def ready(self) -> int:
        return sum(self.ready_by_priority.values())


@dataclass(frozen=True)
class Frame:
    """Everything one refresh shows. ``snapshot`` is kept so tests can compare against it."""

    seq: int
    now_ms: int
    snapshot: taskq.Snapshot
    health: Health | None
    tiles: dict[str, float | int | None]
    queues: tuple[QueueRow, ...]
    workers: tuple[WorkerCard, ...]
    in_flight: tuple[TaskRow, ...]
    unowned: tuple[TaskRow, ...]
    busy_workers: int
    pipeline: Pipeline
    throughput: dict[str, list[int]]          # kind name -> counts per complete second
    depth_times_ms: list[int]                 # start of each depth point's second, server ms
    depth_by_priority: dict[int, list[int]]   # priority -> ready depth at those times
    wait_hist: list[int]
    run_hist: list[int]
    events: tuple[Event, ...]                 # newest first
    events_skipped: bool                      # this refresh read only the newest events


def _row(task: Any, worker_state: str, now_ms: int) -> TaskRow:
    return TaskRow(task.task_id, task.queue, task.name, task.worker, worker_state, task.attempt,
                   max(now_ms - task.started_ms, 0) / 1000,
                   (task.lease_deadline_ms - now_ms) / 1000)


def _summed_hist(snapshot: taskq.Snapshot, name: str) -> list[int]:
    total = [0] * (len(HISTOGRAM_BOUNDS_US) + 1)
    for queue in snapshot.queues.values():
        for i, count in enumerate(getattr(queue, name)):
            total[i] += count
    return total


def complete_seconds(snapshot: taskq.Snapshot, kind: str) -> list[int]:
    """Per-second counts of ``kind`` over the snapshot's window without the current, partial
    second, oldest first: what the throughput chart draws."""
    return snapshot.rate_series(kind)[:-1]


def _flow(snapshot: taskq.Snapshot, kind: str) -> float:
    series = complete_seconds(snapshot, kind)[-FLOW_WINDOW_S:]
    return sum(series) / max(len(series), 1)


def tiles_of(snapshot: taskq.Snapshot) -> dict[str, float | int | None]:
    """Read the overview tiles from ``snapshot``."""
    return {
        "enqueued": snapshot.total("enqueued"), "ready": snapshot.ready,
        "scheduled": snapshot.scheduled, "active": snapshot.active,
        "succeeded": snapshot.total("succeeded"),
        "retrying": snapshot.retrying,
        "dead": snapshot.dead, "success_rate": snapshot.success_rate(),
        "throughput_per_s": _flow(snapshot, "s"),
        "wait_p50_ms": snapshot.wait_percentile_ms(0.5),
        "wait_p95_ms": snapshot.wait_percentile_ms(0.95),
        "wait_p99_ms": snapshot.wait_percentile_ms(0.99),
        "run_p50_ms": snapshot.run_percentile_ms(0.5),
        "run_p95_ms": snapshot.run_percentile_ms(0.95),
    }


def pipeline_of(snapshot: taskq.Snapshot) -> Pipeline:
    ready = dict.fromkeys(PRIORITIES, 0)
    for queue in snapshot.queues.values():
        for priority, depth in queue.ready_by_priority.items():
            ready[priority] = ready.get(priority, 0) + depth
    return Pipeline(
        scheduled=snapshot.scheduled, ready_by_priority=ready, active=snapshot.active,
        succeeded=snapshot.total("succeeded"), retried=snapshot.total("retried"),
        dead=snapshot.dead, enqueued_per_s=_flow(snapshot, "e"),
        succeeded_per_s=_flow(snapshot, "s"), retried_per_s=_flow(snapshot, "r"),
        dead_per_s=_flow(snapshot, "d"))


def workers_of(snapshot: taskq.Snapshot) -> tuple[tuple[WorkerCard, ...], tuple[TaskRow, ...]]:
    """Worker cards sorted by id, and the leased tasks whose worker is unknown."""
    now_ms = snapshot.now_ms
    cards = tuple(
        WorkerCard(w.id, w.state, w.host, w.pid, w.pool, w.concurrency, tuple(w.queues),
                   w.processed, w.failed, w.heartbeat_age_s,
                   tuple(_row(t, w.state, now_ms) for t in w.tasks))
        for w in sorted(snapshot.workers, key=lambda w: w.id))
    unowned = tuple(_row(t, "unknown", now_ms) for t in snapshot.unowned_tasks)
    return cards, unowned


class DepthHistory:
    """Ready depth per priority for the last ``keep_s`` seconds, one point per second.

    A point is stamped with the start of its second; a refresh within the same second replaces
    it. So the chart stays small (about 120 points a line), its last point is always the newest
    snapshot's, and the x values change only once a second.
    """

    def __init__(self, keep_s: float = 120.0) -> None:
        self.keep_ms = keep_s * 1000
        self._points: deque[tuple[int, dict[int, int]]] = deque()

    def add(self, now_ms: int, ready_by_priority: dict[int, int]) -> None:
        second_ms = now_ms - now_ms % 1000
        if self._points and self._points[-1][0] == second_ms:
            self._points.pop()
        self._points.append((second_ms, dict(ready_by_priority)))
        while self._points and self._points[0][0] < now_ms - self.keep_ms:
            self._points.popleft()

    def series(self) -> tuple[list[int], dict[int, list[int]]]:
        times = [t for t, _ in self._points]
        return times, {p: [d.get(p, 0) for _, d in self._points] for p in PRIORITIES}


class EventWindow:
    """The activity log's source: per refresh, the newest ``per_stream`` events of each stream
    since the last one seen, kept in a ring of ``keep`` events, newest first."""

    def __init__(self, per_stream: int = 50, keep: int = 300) -> None:
        self.per_stream = per_stream
        self.offsets: dict[str, str] = {}
        self.ring: deque[Event] = deque(maxlen=keep)
        self.skipped = False

    def poll(self, app: taskq.App, snapshot: taskq.Snapshot) -> None:
        """Read what is new, skipping streams whose newest id the snapshot shows unchanged."""
        keys = stream_keys(app, list(snapshot.queues))
        newest = {app.keys.queue(name).events: view.last_event_id
                  for name, view in snapshot.queues.items()}
        wanted = {}
        for key in keys:
            since = self.offsets.get(key, "0")
            last = newest.get(key)
            if last is not None and last in ("", since):
                continue  # an empty stream, or nothing new since the last refresh
            wanted[key] = since
        self.skipped = False
        if not wanted:
            return
        events, offsets, truncated = events_since(app, wanted, self.per_stream)
        self.offsets.update(offsets)
        self.skipped = truncated
        # ``events`` is newest first; the ring keeps the newest at its left end.
        for event in reversed(events):
            self.ring.appendleft(event)


@dataclass
class FrameBuilder:
    """Turns successive snapshots into frames, keeping the depth history and the event window."""

    history: DepthHistory = field(default_factory=DepthHistory)
    window: EventWindow = field(default_factory=EventWindow)
    seq: int = 0

    def build(self, app: taskq.App, snapshot: taskq.Snapshot, health: Health | None) -> Frame:
        """Read the newest events, then build the frame of ``snapshot``."""
        self.window.poll(app, snapshot)
        pipeline = pipeline_of(snapshot)
        self.history.add(snapshot.now_ms, pipeline.ready_by_priority)
        times, depths = self.history.series()
        cards, unowned = workers_of(snapshot)
        in_flight = tuple(row for card in cards for row in card.tasks) + unowned
        self.seq += 1
        return Frame(
            seq=self.seq, now_ms=snapshot.now_ms, snapshot=snapshot, health=health,
            tiles=tiles_of(snapshot),
            queues=tuple(QueueRow(q.name, q.paused, q.ready, q.scheduled, q.active, q.dead)
                         for q in snapshot.queues.values()),
            workers=cards, in_flight=in_flight, unowned=unowned,
            busy_workers=sum(1 for card in cards if card.state == "busy"),
            pipeline=pipeline,
            throughput={name: complete_seconds(snapshot, kind)
                        for kind, name in OUTCOME_KINDS.items()},
            depth_times_ms=times, depth_by_priority=depths,
            wait_hist=_summed_hist(snapshot, "wait_hist"),
            run_hist=_summed_hist(snapshot, "run_hist"),
            events=tuple(self.window.ring), events_skipped=self.window.skipped)
