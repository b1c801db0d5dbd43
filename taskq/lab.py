"""Experiments for the teaching notebooks, run on the real engine and its Redis backend.

Each lesson opens a ``Lab``: an App with short intervals under its own key prefix
(``lab-<lesson>``), so lessons never see each other's keys or the production prefix ``taskq``.
The experiments below enqueue real tasks, run real workers, promoters and reapers, and read
their outcomes back from Redis. This module imports no Jupyter, ipywidgets or plotly code: the
notebooks draw what it returns.

Demo length comes from ``TASKQ_DEMO_SECONDS`` (seconds of simulated traffic per experiment run);
every random choice takes a seed, so a run enqueues the same tasks in the same order every time.
Wall-clock effects (how long a sleep really takes on a loaded machine) still vary a little.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import redis

from taskq.app import App
from taskq.errors import ConfigurationError
from taskq.events import Event, read_events
from taskq.keys import QueueKeys
from taskq.metrics import HISTOGRAM_BOUNDS_US, histogram_counts, percentile_ms
from taskq.promoter import Promoter
from taskq.settings import Settings
from taskq.snapshot import take_snapshot
from taskq.task import Backoff, Call, current_task
from taskq.worker import Worker

log = logging.getLogger(__name__)

DEMO_SECONDS_ENV = "TASKQ_DEMO_SECONDS"
DEFAULT_DEMO_SECONDS = 3.0
MAX_DEMO_SECONDS = 600.0
DEFAULT_SEED = 7

# Short intervals so that leases expire, retries fall due and promoters wake within a demo.
LAB_SETTINGS = Settings(
    heartbeat_interval_s=0.2,
    lease_s=1.0,
    worker_dead_after_s=1.0,
    worker_retention_s=60.0,
    reaper_interval_s=0.1,
    promoter_max_sleep_s=0.2,
    idle_block_s=0.2,
    janitor_interval_s=1.0,
    shutdown_grace_s=1.0,
    default_backoff_min_s=0.05,
    default_backoff_max_s=0.5,
)

# Maximum seconds any experiment waits for its tasks to settle, whatever its parameters.
SETTLE_TIMEOUT_S = 60.0


def demo_seconds(default: float = DEFAULT_DEMO_SECONDS) -> float:
    """Return the demo length in seconds from ``TASKQ_DEMO_SECONDS``, else ``default``.

    Raises ConfigurationError naming the value when it is not a number in (0, 600].
    """
    raw = os.environ.get(DEMO_SECONDS_ENV, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(
            f"{DEMO_SECONDS_ENV}={raw!r} is invalid: use a number of seconds such as 2") from None
    if not 0 < value <= MAX_DEMO_SECONDS:
        raise ConfigurationError(
            f"{DEMO_SECONDS_ENV}={raw!r} is out of range: use more than 0 and at most "
            f"{MAX_DEMO_SECONDS:g} seconds")
    return value


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile of ``values`` (``fraction`` in [0, 1]); None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _wait_for(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.02) -> bool:
    """Poll ``predicate`` until it is true or ``timeout_s`` passes; return its last value."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)
    return True


class Lab:
    """One lesson's App, key prefix, seed, and every worker and loop it started.

    Opening a Lab deletes the keys an earlier run of the same lesson left under its prefix;
    ``close`` stops what the lesson started and deletes its keys again.
    """

    def __init__(self, lesson: str, redis_url: str | None = None, *,
                 settings: Settings = LAB_SETTINGS, seed: int = DEFAULT_SEED) -> None:
        if not lesson or not lesson.replace("-", "").isalnum():
            raise ConfigurationError(
                f"lesson name {lesson!r} is invalid: use letters, digits and dashes")
        self.lesson = lesson
        self.seed = seed
        self.app = App(redis_url, settings=replace(settings, key_prefix=f"lab-{lesson}"))
        self._workers: list[Worker] = []
        self._stoppables: list[Any] = []
        self._registered: set[str] = set()
        self.clear()

    @property
    def backend(self) -> str:
        return str(self.app.backend)

    @property
    def prefix(self) -> str:
        return self.app.settings.key_prefix

    def rng(self, salt: str = "") -> random.Random:
        """A random generator seeded from the lab's seed and ``salt``, the same on every run."""
        return random.Random(f"{self.seed}:{salt}")

    def register(self, name: str, func: Callable[..., Any], **options: Any) -> None:
        """Register a task once per lab; later calls with the same name keep the first."""
        if name not in self._registered:
            self.app.task(name=name, **options)(func)
            self._registered.add(name)

    def worker(self, queues: Sequence[str], concurrency: int = 1, *, name: str = "worker",
               start: bool = True, **options: Any) -> Worker:
        """Create (and by default start) a worker that ``close`` stops."""
        worker = Worker(self.app, queues, concurrency,
                        worker_id=f"{self.prefix}-{name}-{uuid.uuid4().hex[:4]}", **options)
        self._workers.append(worker)
        if start:
            worker.start()
        return worker

    def track(self, stoppable: Any) -> Any:
        """Remember an object with a ``stop()`` method so that ``close`` stops it."""
        self._stoppables.append(stoppable)
        return stoppable

    def stop_workers(self, grace_s: float = 0.0) -> None:
        for worker in self._workers:
            if not worker._finished.is_set():
                worker.stop(grace_s=grace_s)
        self._workers.clear()

    def clear_queue(self, queue: str) -> None:
        """Delete every key of one queue under this lab's prefix."""
        self._delete_matching(self.app.keys.queue(queue).pattern)
        self.app.client.srem(self.app.keys.global_keys.queues, queue)

    def clear(self) -> None:
        """Delete every key under this lab's prefix (never any other key)."""
        self._delete_matching(self.app.keys.pattern)

    def _delete_matching(self, pattern: str) -> None:
        batch: list[Any] = []
        for key in self.app.client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= 500:
                self.app.client.delete(*batch)
                batch.clear()
        if batch:
            self.app.client.delete(*batch)

    @staticmethod
    def running_threads() -> list[str]:
        """Names of live engine threads (slots, loops, watchdogs, demo pollers) in this process."""
        return sorted(t.name for t in threading.enumerate() if t.name.startswith("taskq-"))

    def close(self, join_s: float = 5.0) -> None:
        """Stop every worker and tracked loop, delete the lab's keys, and wait for the threads.

        A killed worker's slots end when their current body returns, so this waits up to
        ``join_s`` seconds in total for engine threads to finish.
        """
        for stoppable in reversed(self._stoppables):
            stoppable.stop()
        self._stoppables.clear()
        self.stop_workers()
        deadline = time.monotonic() + join_s
        for thread in threading.enumerate():
            if thread.name.startswith("taskq-") and thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        self.clear()
        log.info("lab closed lesson=%s backend=%s", self.lesson, self.backend)


def sleep_task(seconds: float) -> None:
    time.sleep(seconds)


def noop_task(*_args: Any) -> None:
    return None


# Priority queues.

PRIORITY_CLASSES: dict[str, int] = {"high": 9, "normal": 5, "low": 1}
"""The three traffic classes of the priority lesson and the engine priority each gets."""

PRIORITY_MODES = ("fifo", "strict", "weighted")


@dataclass
class ClassStats:
    """Outcome of one traffic class in one priority run; times in ms."""

    name: str
    arrived: int = 0
    served: int = 0
    waits_ms: list[float] = field(default_factory=list)
    """Queue wait of each served task: start minus enqueue."""
    ages_ms: list[float] = field(default_factory=list)
    """Time each unserved task had waited when the run ended."""

    @property
    def served_fraction(self) -> float:
        return self.served / self.arrived if self.arrived else 1.0

    @property
    def delays_ms(self) -> list[float]:
        """Waits of served tasks plus ages of unserved ones: how long the class was kept."""
        return self.waits_ms + self.ages_ms

    def p95_delay_ms(self) -> float:
        return percentile(self.delays_ms, 0.95) or 0.0

    def mean_delay_ms(self) -> float:
        delays = self.delays_ms
        return statistics.fmean(delays) if delays else 0.0


@dataclass
class PriorityRun:
    """One run of the priority experiment: per-class results and one sample per task."""

    mode: str
    duration_s: float
    speed_per_s: float
    classes: dict[str, ClassStats]
    samples: list[tuple[str, float, float, bool]]
    """(class, arrival offset s, delay s, served) per task, in arrival order."""

    def summary(self) -> dict[str, dict[str, float]]:
        return {name: {"arrived": c.arrived, "served": c.served,
                       "served_fraction": round(c.served_fraction, 3),
                       "mean_delay_ms": round(c.mean_delay_ms(), 1),
                       "p95_delay_ms": round(c.p95_delay_ms(), 1)}
                for name, c in self.classes.items()}


def arrival_schedule(rates_per_s: dict[str, float], duration_s: float,
                     rng: random.Random) -> list[tuple[float, str]]:
    """Poisson arrivals per class over ``duration_s``: (offset s, class), sorted by time."""
    arrivals: list[tuple[float, str]] = []
    for name, rate in rates_per_s.items():
        if rate < 0:
            raise ConfigurationError(f"arrival rate {rate!r} for {name!r} is invalid: use 0 or "
                                     "more tasks per second")
        t = 0.0
        while rate > 0:
            t += rng.expovariate(rate)
            if t >= duration_s:
                break
            arrivals.append((t, name))
    arrivals.sort()
    return arrivals


def _priority_targets(mode: str) -> dict[str, tuple[str, int]]:
    """Queue and priority each class goes to in one mode."""
    if mode == "fifo":
        return {name: ("fifo", 5) for name in PRIORITY_CLASSES}
    if mode == "strict":
        return {name: ("strict", p) for name, p in PRIORITY_CLASSES.items()}
    if mode == "weighted":
        return {name: (f"weighted-{name}", 5) for name in PRIORITY_CLASSES}
    raise ConfigurationError(f"mode {mode!r} is invalid: use one of {', '.join(PRIORITY_MODES)}")


def simulate_priorities(lab: Lab, mode: str, rates_per_s: dict[str, float], speed_per_s: float,
                        duration_s: float, weights: dict[str, float] | None = None
                        ) -> PriorityRun:
    """Feed Poisson traffic of three classes to one single-slot worker for ``duration_s``.

    ``fifo`` puts every class in one queue at one priority; ``strict`` uses one queue and the
    engine's priorities (the highest non-empty priority is always claimed first); ``weighted``
    gives each class its own queue and the worker weighted queue order (``weights``, class ->
    positive number). Each task sleeps ``1 / speed_per_s`` seconds. When the time is up the
    worker stops at once and tasks still queued count as unserved, with their age so far.
    """
    if speed_per_s <= 0:
        raise ConfigurationError(f"speed_per_s={speed_per_s!r} is invalid: use a positive "
                                 "number of tasks per second")
    targets = _priority_targets(mode)
    queues = sorted({q for q, _ in targets.values()},
                    key=lambda q: -PRIORITY_CLASSES.get(q.removeprefix("weighted-"), 0))
    for queue in queues:
        lab.clear_queue(queue)
    lab.register("lab.sleep", sleep_task, max_retries=0)
    queue_weights = None
    if mode == "weighted":
        weights = weights or {"high": 6, "normal": 3, "low": 1}
        queue_weights = {targets[name][0]: float(w) for name, w in weights.items()}

    arrivals = arrival_schedule(rates_per_s, duration_s, lab.rng(f"arrivals:{mode}"))
    service_s = 1.0 / speed_per_s
    worker = lab.worker(queues, 1, name=f"priority-{mode}", weights=queue_weights,
                        run_promoter=False, run_reaper=False, rng=lab.rng(f"order:{mode}"))
    ids: list[tuple[str, str, float]] = []
    start = time.monotonic()
    index = 0
    while index < len(arrivals):
        now = time.monotonic() - start
        batch = []
        while index < len(arrivals) and arrivals[index][0] <= now:
            offset, name = arrivals[index]
            queue, priority = targets[name]
            task_id = f"{mode}-{index}"
            batch.append(Call("lab.sleep", (service_s,), {}, queue, priority, task_id=task_id))
            ids.append((task_id, name, offset))
            index += 1
        if batch:
            lab.app.enqueue_many(batch)
        if index < len(arrivals):
            time.sleep(max(0.0, min(arrivals[index][0] - now, 0.01)))
    remaining = duration_s - (time.monotonic() - start)
    if remaining > 0:
        time.sleep(remaining)
    worker.stop(grace_s=0)
    return _collect_priority_run(lab, mode, duration_s, speed_per_s, targets, ids)


def _collect_priority_run(lab: Lab, mode: str, duration_s: float, speed_per_s: float,
                          targets: dict[str, tuple[str, int]],
                          ids: list[tuple[str, str, float]]) -> PriorityRun:
    seconds, micros = lab.app.client.time()
    end_ms = int(seconds) * 1000 + int(micros) // 1000
    classes = {name: ClassStats(name) for name in PRIORITY_CLASSES}
    samples = []
    for task_id, name, offset in ids:
        rec = lab.app.get(task_id, targets[name][0])
        stats = classes[name]
        stats.arrived += 1
        enqueued = rec.enqueued_ms or end_ms
        if rec.state.value == "succeeded" and rec.started_ms is not None:
            stats.served += 1
            delay = float(rec.started_ms - enqueued)
            stats.waits_ms.append(delay)
            samples.append((name, offset, delay / 1000, True))
        else:
            delay = float(end_ms - enqueued)
            stats.ages_ms.append(delay)
            samples.append((name, offset, delay / 1000, False))
    return PriorityRun(mode, duration_s, speed_per_s, classes, samples)


def starvation_threshold(rates_per_s: dict[str, float], speed_per_s: float) -> bool:
    """True when strict priority must starve the low class: the others fill the worker."""
    return rates_per_s.get("high", 0) + rates_per_s.get("normal", 0) >= speed_per_s


# Atomic dequeue.

CLAIM_STRATEGIES = ("naive", "watch", "lua")
RETRY = object()
"""Returned by a claim attempt that must be retried (an optimistic transaction aborted)."""


class ClaimContext:
    """What one claiming thread uses: its client, the ready list, the gap, and its counters."""

    def __init__(self, lab: Lab, queue: str, thread_index: int, gap_s: float) -> None:
        self.lab = lab
        self.client = lab.app.client
        self.queue = queue
        self.keys: QueueKeys = lab.app.keys.queue(queue)
        self.ready = self.keys.ready(5)
        self.thread_index = thread_index
        self.gap_s = gap_s
        self.round_trips = 0
        self.retries = 0
        self._rng = lab.rng(f"gap:{thread_index}")

    def round_trip(self, count: int = 1) -> None:
        """Count requests sent to Redis; each call or pipeline flush is one round trip."""
        self.round_trips += count

    def gap(self) -> None:
        """The client's work between reading and removing: a context switch, a network hop.

        The pause is drawn uniformly from [0, 2 * gap_s]: a fixed pause lets threads fall into
        lockstep, each reading just after the previous one removed, which hides the race.
        """
        if self.gap_s > 0:
            time.sleep(self._rng.uniform(0, 2 * self.gap_s))


ClaimFunction = Callable[[ClaimContext], Any]


def claim_naive(ctx: ClaimContext) -> Any:
    """Read the oldest id, then remove the tail: two commands, with a window between them."""
    task_id = ctx.client.lindex(ctx.ready, -1)
    ctx.round_trip()
    if task_id is None:
        return None
    ctx.gap()
    # RPOP removes whatever is at the tail now, which may already be another task.
    ctx.client.rpop(ctx.ready)
    ctx.round_trip()
    return _text(task_id)


def claim_watch(ctx: ClaimContext) -> Any:
    """WATCH the list, read the oldest id, then MULTI/RPOP/EXEC; EXEC aborts if the list moved."""
    with ctx.client.pipeline() as pipe:
        try:
            pipe.watch(ctx.ready)
            ctx.round_trip()
            task_id = pipe.lindex(ctx.ready, -1)
            ctx.round_trip()
            if task_id is None:
                pipe.unwatch()
                ctx.round_trip()
                return None
            ctx.gap()
            pipe.multi()
            pipe.rpop(ctx.ready)
            # MULTI, RPOP and EXEC go in one flush: one round trip.
            popped = pipe.execute()[0]
            ctx.round_trip()
        except redis.WatchError:
            ctx.round_trip()
            return RETRY
    return _text(popped)


def claim_lua(ctx: ClaimContext) -> Any:
    """The engine's claim script: pop, lease and record in one atomic call."""
    claimed, _ = ctx.lab.app.scripts.claim(
        ctx.lab.app.now(), f"race-{ctx.thread_index}", 60_000, 1, [ctx.keys], [])
    ctx.round_trip()
    if not claimed:
        return None
    return claimed[0].task_id


_STRATEGY_FUNCTIONS: dict[str, ClaimFunction] = {
    "naive": claim_naive, "watch": claim_watch, "lua": claim_lua}


@dataclass
class ClaimStats:
    """Outcome of one claim race: what the claimers got and what the queue lost."""

    strategy: str
    threads: int
    tasks: int
    claims: int
    unique: int
    duplicates: int
    lost: int
    left: int
    retries: int
    round_trips: int
    elapsed_s: float

    @property
    def round_trips_per_claim(self) -> float:
        return self.round_trips / self.claims if self.claims else 0.0

    @property
    def retries_per_claim(self) -> float:
        return self.retries / self.claims if self.claims else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "threads": self.threads, "tasks": self.tasks,
                "claims": self.claims, "unique": self.unique, "duplicates": self.duplicates,
                "lost": self.lost, "left": self.left, "retries": self.retries,
                "round_trips": self.round_trips,
                "round_trips_per_claim": round(self.round_trips_per_claim, 2),
                "retries_per_claim": round(self.retries_per_claim, 2),
                "elapsed_s": round(self.elapsed_s, 3)}


def race_claims(lab: Lab, strategy: str | ClaimFunction, threads: int, tasks: int = 200,
                gap_s: float = 0.0005, max_attempts: int = 100_000) -> ClaimStats:
    """Let ``threads`` threads drain one queue of ``tasks`` tasks with one claim strategy.

    ``strategy`` is "naive", "watch", "lua", or a function ``f(ctx) -> id | None | RETRY``.
    ``gap_s`` is the mean pause between read and remove, standing in for the time a real
    client spends between two commands; each thread also pauses as long again after every
    claim, as if it ran the task (the Lua claim has no read-remove window to pause in). The race
    stops when every thread sees an empty queue or after ``max_attempts`` attempts in total.
    """
    if threads < 1:
        raise ConfigurationError(f"threads={threads} is invalid: use at least 1")
    if tasks < 1:
        raise ConfigurationError(f"tasks={tasks} is invalid: use at least 1")
    if callable(strategy):
        name, claim = getattr(strategy, "__name__", "custom"), strategy
    elif strategy in _STRATEGY_FUNCTIONS:
        name, claim = strategy, _STRATEGY_FUNCTIONS[strategy]
    else:
        raise ConfigurationError(f"strategy {strategy!r} is invalid: use one of "
                                 f"{', '.join(CLAIM_STRATEGIES)} or a function")
    queue = f"race-{name}"
    lab.clear_queue(queue)
    lab.register("lab.noop", noop_task)
    lab.app.enqueue_many(Call("lab.noop", (i,), {}, queue, 5, task_id=f"t{i:05d}")
                         for i in range(tasks))

    contexts = [ClaimContext(lab, queue, i, gap_s) for i in range(threads)]
    claimed: list[list[str]] = [[] for _ in range(threads)]
    attempts = [0]
    attempts_lock = threading.Lock()
    barrier = threading.Barrier(threads)

    def run(index: int) -> None:
        ctx = contexts[index]
        barrier.wait()
        while True:
            with attempts_lock:
                attempts[0] += 1
                if attempts[0] > max_attempts:
                    return
            got = claim(ctx)
            if got is RETRY:
                ctx.retries += 1
                continue
            if got is None:
                return
            claimed[index].append(str(got))
            # Run the claimed task: without this pause the embedded server, which never
            # releases the GIL between two commands, makes each remove and the next read of
            # one thread adjacent, and the race shows far fewer collisions than a real client.
            ctx.gap()

    started = time.perf_counter()
    pool = [threading.Thread(target=run, args=(i,), name=f"lab-claim-{i}", daemon=True)
            for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(SETTLE_TIMEOUT_S)
    elapsed = time.perf_counter() - started

    everything = [task_id for ids in claimed for task_id in ids]
    unique = len(set(everything))
    left = int(lab.app.client.llen(contexts[0].ready))
    return ClaimStats(
        strategy=name, threads=threads, tasks=tasks, claims=len(everything), unique=unique,
        duplicates=len(everything) - unique, lost=tasks - unique - left, left=left,
        retries=sum(c.retries for c in contexts),
        round_trips=sum(c.round_trips for c in contexts), elapsed_s=elapsed)


# Delayed scheduling.

class PollingPromoter(Promoter):
    """A promoter that wakes on a fixed interval only: what the engine's promoter avoids.

    It promotes with the same atomic script, but ignores the next due time and the wake list,
    so a task waits on average half an interval past its due time.
    """

    name = "polling-promoter"

    def __init__(self, app: App, queues: list[str], owner_id: str, interval_s: float) -> None:
        super().__init__(app, queues, owner_id)
        self.interval_s = interval_s

    def tick(self) -> float:
        super().tick()
        return self.interval_s

    def wait(self, seconds: float) -> None:
        self._stop.wait(seconds)


@dataclass
class DelayRun:
    """Intended and actual starts of delayed tasks under one promoter; offsets in seconds."""

    mode: str
    cap_s: float
    intended_s: list[float]
    actual_s: list[float]
    lags_ms: list[float]
    """Start minus due time per task: promoter lag plus the claim."""
    promote_lags_ms: list[float]
    """Lag the promote script itself recorded (promotion minus due time) per task."""
    schedule: list[tuple[str, float]]
    """The first entries of the scheduled sorted set right after enqueue: (id, due offset s)."""

    def summary(self) -> dict[str, float]:
        return {"tasks": len(self.lags_ms),
                "p50_lag_ms": round(percentile(self.lags_ms, 0.5) or 0.0, 1),
                "p95_lag_ms": round(percentile(self.lags_ms, 0.95) or 0.0, 1),
                "max_lag_ms": round(max(self.lags_ms, default=0.0), 1)}


def scheduled_entries(app: App, queue: str, limit: int = 10) -> list[tuple[str, int]]:
    """The earliest ``limit`` members of a queue's scheduled set: (task id, due time in ms)."""
    raw = app.client.zrange(app.keys.queue(queue).scheduled, 0, limit - 1, withscores=True)
    return [(_text(member), int(score)) for member, score in raw]


def measure_promotion(lab: Lab, delays_s: Sequence[float], mode: str = "engine",
                      cap_s: float = 0.5) -> DelayRun:
    """Schedule one task per delay, promote them with one promoter, and time their starts.

    ``mode`` "engine" runs the engine's promoter with ``promoter_max_sleep_s = cap_s``: it
    sleeps until the next due time and wakes early when a sooner task is scheduled. "polling"
    runs ``PollingPromoter`` with ``cap_s`` as its fixed interval.
    """
    if mode not in ("engine", "polling"):
        raise ConfigurationError(f"mode {mode!r} is invalid: use 'engine' or 'polling'")
    if cap_s <= 0:
        raise ConfigurationError(f"cap_s={cap_s!r} is invalid: use a positive number of seconds")
    queue = f"delayed-{mode}"
    lab.clear_queue(queue)
    lab.register("lab.noop", noop_task)
    worker = lab.worker([queue], 4, name=f"delay-{mode}", run_promoter=False, run_reaper=False)
    if mode == "engine":
        capped = App(client=lab.app.client,
                     settings=replace(lab.app.settings, promoter_max_sleep_s=cap_s))
        promoter: Promoter = Promoter(capped, [queue], f"{lab.prefix}-promoter")
    else:
        promoter = PollingPromoter(lab.app, [queue], f"{lab.prefix}-poller", cap_s)
    promoter.start()
    try:
        handles = lab.app.enqueue_many(
            Call("lab.noop", (), {}, queue, 5, delay_s=d, task_id=f"d{i:04d}")
            for i, d in enumerate(delays_s))
        first = lab.app.get(handles[0].id, queue).enqueued_ms or 0
        schedule = [(task_id, (due - first) / 1000)
                    for task_id, due in scheduled_entries(lab.app, queue)]
        counters = lab.app.keys.queue(queue).counters

        def all_done() -> bool:
            return int(lab.app.client.hget(counters, "succeeded") or 0) >= len(handles)

        _wait_for(all_done, max(delays_s, default=0) + cap_s + SETTLE_TIMEOUT_S / 6)
    finally:
        promoter.stop()
        worker.stop(grace_s=0)
    intended, actual, lags = [], [], []
    for handle in handles:
        rec = lab.app.get(handle.id, queue)
        if rec.started_ms is None or rec.due_ms is None:
            continue
        intended.append((rec.due_ms - first) / 1000)
        actual.append((rec.started_ms - first) / 1000)
        lags.append(float(rec.started_ms - rec.due_ms))
    events = queue_events(lab.app, queue)
    promote_lags = [float(e.fields.get("lag_ms", 0)) for e in events if e.kind == "promoted"]
    return DelayRun(mode, cap_s, intended, actual, lags, promote_lags, schedule)


def queue_events(app: App, queue: str, limit: int = 100_000) -> list[Event]:
    """Every event still in one queue's stream, oldest first."""
    key = app.keys.queue(queue).events
    events: list[Event] = []
    offsets = {key: "0"}
    while len(events) < limit:
        batch, offsets = read_events(app, offsets, count=1000)
        if not batch:
            break
        events.extend(batch)
    return events


# Retries and dead letters.

def backoff_table(backoff: Backoff, retries: int, samples: int = 200,
                  seed: int = DEFAULT_SEED) -> list[dict[str, float]]:
    """Per retry number: the delay without jitter and the min, mean and max with it (seconds)."""
    rng = random.Random(seed)
    plain = replace(backoff, jitter=0.0)
    rows = []
    for retry in range(1, retries + 1):
        drawn = [backoff.delay_s(retry, rng) for _ in range(samples)]
        rows.append({"retry": retry, "base_s": plain.delay_s(retry),
                     "min_s": min(drawn), "mean_s": statistics.fmean(drawn), "max_s": max(drawn)})
    return rows


def herd_retry_times(backoff: Backoff, clients: int, retry: int = 1,
                     seed: int = DEFAULT_SEED) -> list[float]:
    """When ``clients`` tasks that failed at the same instant retry, in seconds after it."""
    rng = random.Random(seed)
    return sorted(backoff.delay_s(retry, rng) for _ in range(clients))


class FlakyService:
    """A stand-in for a dependency that fails some calls, decided by a seeded hash.

    ``fails(index, attempt)`` is the same on every run for one seed, so the experiment and its
    expected outcome agree call by call. Set ``failure_rate`` to 0 to "deploy the fix".
    """

    def __init__(self, failure_rate: float, seed: int = DEFAULT_SEED) -> None:
        if not 0 <= failure_rate <= 1:
            raise ConfigurationError(f"failure_rate={failure_rate!r} is invalid: use a number "
                                     "from 0 to 1")
        self.failure_rate = failure_rate
        self.seed = seed

    def fails(self, index: int, attempt: int) -> bool:
        return random.Random(f"{self.seed}:{index}:{attempt}").random() < self.failure_rate

    def expected_attempts(self, index: int, max_retries: int) -> tuple[int, bool]:
        """How many attempts task ``index`` takes, and whether it ends dead."""
        for attempt in range(1, max_retries + 2):
            if not self.fails(index, attempt):
                return attempt, False
        return max_retries + 1, True

    def call(self, index: int) -> str:
        attempt = current_task().attempt
        if self.fails(index, attempt):
            raise ConnectionError(f"payment service timed out for order {index} "
                                  f"(attempt {attempt})")
        return f"order {index} paid"


@dataclass
class Attempt:
    """One attempt of one task, from the event stream; times are offsets in seconds."""

    task: int
    attempt: int
    start_s: float
    end_s: float
    outcome: str
    """succeeded, retrying or dead."""
    error: str = ""


@dataclass
class FlakyRun:
    """Outcome of a batch of tasks calling a flaky service."""

    queue: str
    tasks: int
    max_retries: int
    attempts: list[Attempt]
    succeeded: int
    dead: int
    retried: int
    task_ids: list[str]

    def summary(self) -> dict[str, int]:
        return {"tasks": self.tasks, "succeeded": self.succeeded, "dead": self.dead,
                "retried": self.retried, "attempts": len(self.attempts)}


def _record_states(app: App, queue: str, task_ids: Sequence[str]) -> list[str]:
    """The state of each task (``missing`` when it has no record), in one round trip."""
    if not task_ids:
        return []
    raws = app.client.hmget(app.keys.queue(queue).tasks, list(task_ids))
    states = []
    for raw in raws:
        if raw is None:
            states.append("missing")
            continue
        try:
            states.append(str(json.loads(raw).get("state", "missing")))
        except ValueError:
            states.append("missing")
    return states


def _wait_terminal(app: App, queue: str, task_ids: Sequence[str], timeout_s: float) -> bool:
    def settled() -> bool:
        return all(s in ("succeeded", "dead", "cancelled", "missing")
                   for s in _record_states(app, queue, task_ids))

    return _wait_for(settled, timeout_s, interval_s=0.03)


def attempts_from_events(events: Iterable[Event], t0_ms: int,
                         index_of: Callable[[str], int]) -> list[Attempt]:
    """Pair each 'started' event with the event that ended the attempt."""
    open_attempts: dict[str, Attempt] = {}
    done: list[Attempt] = []
    for event in events:
        offset = (event.t_ms - t0_ms) / 1000
        if event.kind == "started":
            open_attempts[event.task_id] = Attempt(index_of(event.task_id), event.attempt,
                                                   offset, offset, "running")
            continue
        attempt = open_attempts.get(event.task_id)
        if attempt is None:
            continue
        if event.kind == "succeeded":
            attempt.end_s, attempt.outcome = offset, "succeeded"
        elif event.kind == "failed":
            attempt.end_s, attempt.error = offset, event.fields.get("error", "")
            continue
        elif event.kind == "retry_scheduled":
            attempt.outcome = "retrying"
        elif event.kind == "dead":
            attempt.outcome = "dead"
        else:
            continue
        done.append(open_attempts.pop(event.task_id))
    return sorted(done, key=lambda a: (a.task, a.attempt))


class RetryLab:
    """The retries lesson: a queue of payment tasks that call a ``FlakyService``.

    The retry policy is stored on each task record from its registered task's options, so
    every policy gets its own task name (``lab.pay-r<retries>-...``), registered on first use.
    """

    QUEUE = "payments"

    def __init__(self, lab: Lab, service: FlakyService) -> None:
        self.lab = lab
        self.service = service
        self.worker: Worker | None = None
        self.t0_ms = 0
        self.last_ids: list[str] = []

    def task_name(self, max_retries: int, backoff: Backoff) -> str:
        name = (f"lab.pay-r{max_retries}-min{backoff.min_s:g}-max{backoff.max_s:g}"
                f"-x{backoff.factor:g}-j{backoff.jitter:g}")
        self.lab.register(name, self.service.call, max_retries=max_retries,
                          backoff_min_s=backoff.min_s, backoff_max_s=backoff.max_s,
                          backoff_factor=backoff.factor, backoff_jitter=backoff.jitter)
        return name

    def run(self, tasks: int, max_retries: int, backoff: Backoff) -> FlakyRun:
        """Enqueue ``tasks`` payments and wait until each succeeded or went dead."""
        lab = self.lab
        lab.clear_queue(self.QUEUE)
        if self.worker is None:
            self.worker = lab.worker([self.QUEUE], 4, name="payments",
                                     rng=lab.rng("retry-jitter"))
        name = self.task_name(max_retries, backoff)
        handles = lab.app.enqueue_many(
            Call(name, (i,), {}, self.QUEUE, task_id=f"pay-{i:03d}") for i in range(tasks))
        self.last_ids = [h.id for h in handles]
        self.t0_ms = lab.app.get(self.last_ids[0], self.QUEUE).enqueued_ms or 0
        longest = (max_retries + 1) * backoff.max_s + SETTLE_TIMEOUT_S / 6
        _wait_terminal(lab.app, self.QUEUE, self.last_ids, longest)
        return self.collect(max_retries)

    def collect(self, max_retries: int) -> FlakyRun:
        app = self.lab.app
        states = _record_states(app, self.QUEUE, self.last_ids)
        events = queue_events(app, self.QUEUE)
        attempts = attempts_from_events(events, self.t0_ms, lambda task_id: int(task_id[4:]))
        counters = app.client.hgetall(app.keys.queue(self.QUEUE).counters)
        return FlakyRun(
            queue=self.QUEUE, tasks=len(self.last_ids), max_retries=max_retries,
            attempts=attempts, succeeded=states.count("succeeded"), dead=states.count("dead"),
            retried=int(counters.get(b"retried", 0)), task_ids=list(self.last_ids))

    def dead_letters(self) -> list[dict[str, Any]]:
        """The dead set, newest first: id, attempts and the last error of each task."""
        rows = []
        for rec in self.lab.app.dead_letters(self.QUEUE):
            error = rec.error or {}
            rows.append({"id": rec.id, "attempts": rec.attempts,
                         "error": f"{error.get('type', '')}: {error.get('message', '')}"})
        return rows

    def requeue_dead(self, timeout_s: float = 10.0) -> int:
        """Move every dead task back to ready and wait until each settles again."""
        ids = [row["id"] for row in self.dead_letters()]
        moved = self.lab.app.requeue_dead(self.QUEUE, ids)
        _wait_terminal(self.lab.app, self.QUEUE, ids, timeout_s)
        return moved


# Workers, heartbeats and recovery.

def _ledger_keys(lab: Lab) -> dict[str, str]:
    base = f"{lab.prefix}:ledger"
    return {"runs": f"{base}:runs", "naive": f"{base}:naive-balance",
            "idempotent": f"{base}:idempotent-balance", "paid": f"{base}:paid:"}


def make_charge_task(lab: Lab) -> Callable[[int, float], str]:
    keys = _ledger_keys(lab)

    def charge(order: int, seconds: float) -> str:
        """Charge one order: count the run, call the provider, then book the money twice."""
        client = lab.app.client
        client.hincrby(keys["runs"], str(order), 1)
        time.sleep(seconds)
        # Without a key every run books the charge again.
        client.incr(keys["naive"])
        # With the order id as idempotency key only the first run books it.
        if client.set(f"{keys['paid']}{order}", current_task().task_id, nx=True):
            client.incr(keys["idempotent"])
        return f"order {order} charged"

    return charge


@dataclass
class CrashRun:
    """What happened when one of two workers was killed in the middle of its tasks."""

    orders: int
    lease_s: float
    kill_s: float
    held_at_kill: list[str]
    recovered: list[str]
    recovered_at_s: list[float]
    runs_per_order: dict[int, int]
    naive_balance: int
    idempotent_balance: int
    succeeded: int
    heartbeats: list[tuple[float, str, float, str]]
    """(offset s, worker label, heartbeat age s, state) samples, every ~50 ms."""

    @property
    def duplicate_runs(self) -> int:
        return sum(runs - 1 for runs in self.runs_per_order.values() if runs > 1)

    def summary(self) -> dict[str, Any]:
        return {"orders": self.orders, "succeeded": self.succeeded,
                "held_at_kill": len(self.held_at_kill), "recovered": len(self.recovered),
                "duplicate_runs": self.duplicate_runs, "naive_balance": self.naive_balance,
                "idempotent_balance": self.idempotent_balance,
                "first_recovery_after_kill_s": round(
                    min(self.recovered_at_s, default=self.kill_s) - self.kill_s, 3)}


def crash_and_recover(lab: Lab, orders: int = 12, task_s: float = 0.3, slots: int = 2,
                      kill_after_s: float = 0.15) -> CrashRun:
    """Run ``orders`` charges on workers A and B, kill A abruptly, and watch B recover.

    A is killed once ``kill_after_s`` seconds have passed and it holds at least one task (on a
    loaded machine that can be later). A's slots are mid-charge when it dies. Their bodies still
    finish, because a thread cannot be stopped from outside, so the money is booked but no
    success is recorded. Once A's leases expire, B's reaper puts those tasks back and B charges
    them again: delivery is at least once.
    """
    queue = "orders"
    lab.clear_queue(queue)
    keys = _ledger_keys(lab)
    lab._delete_matching(f"{lab.prefix}:ledger:*")
    lab.register("lab.charge", make_charge_task(lab), max_retries=3)
    worker_a = lab.worker([queue], slots, name="A", start=False)
    worker_b = lab.worker([queue], slots, name="B", start=False)
    labels = {worker_a.id: "A", worker_b.id: "B"}
    handles = lab.app.enqueue_many(
        Call("lab.charge", (i, task_s), {}, queue, task_id=f"order-{i:03d}")
        for i in range(orders))
    ids = [h.id for h in handles]
    seconds, micros = lab.app.client.time()
    t0_ms = int(seconds) * 1000 + int(micros) // 1000
    start = time.monotonic()
    worker_a.start()
    worker_b.start()

    heartbeats: list[tuple[float, str, float, str]] = []

    def sample() -> None:
        snap = take_snapshot(lab.app, [queue])
        offset = (snap.now_ms - t0_ms) / 1000
        for view in snap.workers:
            if view.id in labels:
                heartbeats.append((offset, labels[view.id], view.heartbeat_age_s, view.state))

    # Kill A once the time has come and A holds a task (on a loaded machine it may start late).
    held: list[str] = []
    give_up = start + kill_after_s + SETTLE_TIMEOUT_S / 6
    while True:
        sample()
        held = [item["id"] for item in worker_a.info()["current"]]
        elapsed = time.monotonic() - start
        if (elapsed >= kill_after_s and held) or time.monotonic() >= give_up:
            break
        time.sleep(0.02)
    kill_s = time.monotonic() - start
    worker_a.kill()

    deadline = time.monotonic() + orders * task_s + lab.app.settings.lease_s + SETTLE_TIMEOUT_S / 6
    while time.monotonic() < deadline:
        sample()
        if all(s == "succeeded" for s in _record_states(lab.app, queue, ids)):
            break
        time.sleep(0.05)
    # Two more samples show A staying silent after the work is done.
    for _ in range(2):
        time.sleep(0.05)
        sample()
    worker_b.stop(grace_s=1.0)

    events = queue_events(lab.app, queue)
    recovered = [e for e in events if e.kind == "recovered"]
    client = lab.app.client
    runs = {int(k): int(v) for k, v in client.hgetall(keys["runs"]).items()}
    return CrashRun(
        orders=orders, lease_s=lab.app.settings.lease_s, kill_s=kill_s, held_at_kill=held,
        recovered=[e.task_id for e in recovered],
        recovered_at_s=[(e.t_ms - t0_ms) / 1000 for e in recovered],
        runs_per_order=runs, naive_balance=int(client.get(keys["naive"]) or 0),
        idempotent_balance=int(client.get(keys["idempotent"]) or 0),
        succeeded=_record_states(lab.app, queue, ids).count("succeeded"),
        heartbeats=heartbeats)


def measure_pool(lab: Lab, sizes: Sequence[int], task_s: float = 0.02,
                 seconds_each: float = 0.5) -> list[tuple[int, float]]:
    """Throughput (tasks/s) of one worker resized through ``sizes`` while a backlog waits."""
    queue = "pool"
    lab.clear_queue(queue)
    lab.register("lab.sleep", sleep_task, max_retries=0)
    backlog = int(max(sizes) * seconds_each / task_s * len(sizes) * 1.5) + 10
    lab.app.enqueue_many(Call("lab.sleep", (task_s,), {}, queue) for _ in range(backlog))
    worker = lab.worker([queue], sizes[0], name="pool", run_promoter=False, run_reaper=False)
    counters = lab.app.keys.queue(queue).counters
    out = []
    try:
        for size in sizes:
            worker.resize(size)
            # Let retiring or new slots settle before measuring.
            time.sleep(min(0.1, seconds_each / 4))
            before = int(lab.app.client.hget(counters, "succeeded") or 0)
            started = time.monotonic()
            time.sleep(seconds_each)
            after = int(lab.app.client.hget(counters, "succeeded") or 0)
            out.append((size, (after - before) / (time.monotonic() - started)))
    finally:
        worker.stop(grace_s=0)
        lab.clear_queue(queue)
    return out


# Metrics and observability.

@dataclass
class MetricsRun:
    """A finished seeded load, with the exact durations read from the event stream."""

    queue: str
    tasks: int
    wait_ms: list[float]
    run_ms: list[float]
    event_counts: dict[str, int]


def work_task(seconds: float, fail: bool) -> float:
    time.sleep(seconds)
    if fail:
        raise ValueError(f"input rejected after {seconds * 1000:.0f} ms")
    return seconds


def run_metrics_load(lab: Lab, tasks: int = 120, failure_rate: float = 0.1,
                     slots: int = 4) -> MetricsRun:
    """Run ``tasks`` tasks with seeded run times (1 to 60 ms) and failures to completion.

    Failed tasks are not retried (``max_retries=0``), so each task has exactly one attempt and
    every counter has one obvious expected value.
    """
    queue = "metrics"
    lab.clear_queue(queue)
    lab.register("lab.work", work_task, max_retries=0)
    rng = lab.rng("metrics")
    calls = [Call("lab.work", (round(rng.choice((1, 2, 4, 8, 15, 30, 60)) / 1000, 3),
                               rng.random() < failure_rate), {}, queue, task_id=f"m{i:04d}")
             for i in range(tasks)]
    worker = lab.worker([queue], slots, name="metrics", run_promoter=False, run_reaper=False)
    try:
        handles = lab.app.enqueue_many(calls)
        _wait_terminal(lab.app, queue, [h.id for h in handles], SETTLE_TIMEOUT_S / 2)
    finally:
        worker.stop(grace_s=1.0)
    events = queue_events(lab.app, queue)
    counts: dict[str, int] = {}
    for event in events:
        counts[event.kind] = counts.get(event.kind, 0) + 1
    wait = [int(e.fields["wait_us"]) / 1000 for e in events
            if e.kind == "started" and "wait_us" in e.fields]
    run = [int(e.fields["run_us"]) / 1000 for e in events
           if e.kind in ("succeeded", "failed") and "run_us" in e.fields]
    return MetricsRun(queue, tasks, wait, run, counts)


def raw_metrics(app: App, queue: str) -> dict[str, Any]:
    """The raw Redis structures behind the dashboard's figures for one queue."""
    keys = app.keys.queue(queue)
    client = app.client
    rate: dict[str, dict[int, int]] = {}
    for field_name, value in client.hgetall(keys.rate).items():
        kind, _, second = _text(field_name).partition(":")
        rate.setdefault(kind, {})[int(second)] = int(value)
    return {
        "counters": {_text(k): int(v) for k, v in client.hgetall(keys.counters).items()},
        "rate": {kind: dict(sorted(per.items())) for kind, per in rate.items()},
        "wait_hist": histogram_counts({_text(k): int(v)
                                       for k, v in client.hgetall(keys.wait_hist).items()}),
        "run_hist": histogram_counts({_text(k): int(v)
                                      for k, v in client.hgetall(keys.run_hist).items()}),
        "events_len": int(client.xlen(keys.events)),
    }


def bucket_bounds_ms(index: int) -> tuple[float, float]:
    """Lower and upper bound in ms of histogram bucket ``index`` (the last is open-ended)."""
    lower = HISTOGRAM_BOUNDS_US[index - 1] / 1000 if index > 0 else 0.0
    upper = (HISTOGRAM_BOUNDS_US[index] / 1000 if index < len(HISTOGRAM_BOUNDS_US)
             else math.inf)
    return lower, upper


def bucket_of_ms(value_ms: float) -> int:
    """Index of the histogram bucket a duration in ms falls into (as the Lua side counts)."""
    value_us = value_ms * 1000
    for index, bound in enumerate(HISTOGRAM_BOUNDS_US):
        if value_us <= bound:
            return index
    return len(HISTOGRAM_BOUNDS_US)


def compare_percentile(counts: Sequence[int], exact_ms: Sequence[float],
                       fraction: float) -> dict[str, Any]:
    """The histogram's percentile estimate beside the exact value and the estimate's bucket."""
    estimate = percentile_ms(counts, fraction)
    exact = percentile(exact_ms, fraction)
    bucket = bucket_of_ms(exact) if exact is not None else None
    lower, upper = bucket_bounds_ms(bucket) if bucket is not None else (None, None)
    return {"fraction": fraction, "estimate_ms": estimate, "exact_ms": exact,
            "bucket": bucket, "bucket_lower_ms": lower, "bucket_upper_ms": upper}
