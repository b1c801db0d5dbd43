"""Demo support: a synthetic task, an in-process worker pool and a load generator.

The dashboard's built-in demo and the teaching notebooks use these to put live, reproducible
work on a queue without writing any task code::

    from taskq import playground

    app = taskq.App(settings=playground.DEMO_SETTINGS)
    demo = playground.Playground(app, workers=3, concurrency=2, rate_per_s=6, seed=1)
    demo.start()                       # workers, a reaper and the load generator
    demo.generator.burst(50, priority=9, failure_rate=0.5)
    demo.pool.kill(demo.pool.ids()[0]) # a crash: its leases recover after lease_s
    demo.stop()

The synthetic task ``playground.work(run_time_ms, failure_rate, seed)`` sleeps for its run time
and fails with the given probability. Its randomness comes only from ``seed`` and the attempt
number, so a run of the generator with the same seed enqueues the same tasks with the same
outcomes (timing aside), and a retry of a failed attempt may succeed.

Nothing here imports Jupyter, ipywidgets or plotly. To run demo workers in other processes, point
them at this module's ``app``: ``taskq worker --app taskq.playground --redis-url URL``.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

from taskq.app import App, TaskFunction, TaskHandle
from taskq.errors import ConfigurationError
from taskq.reaper import Reaper
from taskq.settings import MAX_PRIORITY, MIN_PRIORITY, Settings
from taskq.task import Call, TaskContext, current_task
from taskq.worker import Worker

log = logging.getLogger(__name__)

WORK_TASK = "playground.work"
DEMO_QUEUE = "default"

# Short intervals so that a killed worker shows offline and its tasks recover within seconds.
DEMO_SETTINGS = Settings(
    heartbeat_interval_s=0.5,
    lease_s=3.0,
    worker_dead_after_s=2.0,
    worker_retention_s=120.0,
    reaper_interval_s=0.25,
    promoter_max_sleep_s=0.25,
    idle_block_s=0.5,
    janitor_interval_s=2.0,
    shutdown_grace_s=2.0,
    default_max_retries=2,
    default_backoff_min_s=0.5,
    default_backoff_max_s=5.0,
)

# Error shapes the synthetic task raises: three types, each with a message whose numbers vary,
# so dead letters fall into three groups by fingerprint.
_FAILURES: tuple[tuple[type[Exception], str], ...] = (
    (TimeoutError, "upstream service did not answer within {n} ms"),
    (ValueError, "record {n} has no field 'email'"),
    (ConnectionError, "payment gateway refused the connection (attempt {n})"),
)


def _work(run_time_ms: float, failure_rate: float, seed: int) -> dict[str, Any]:
    """Sleep ``run_time_ms`` ms (in 50 ms steps, stopping early when cancelled), then fail
    with probability ``failure_rate``; returns the time slept."""
    try:
        context: TaskContext | None = current_task()
    except RuntimeError:  # called directly, outside a worker
        context = None
    attempt = context.attempt if context is not None else 1
    rng = random.Random(seed * 1009 + attempt)
    deadline = time.monotonic() + max(float(run_time_ms), 0.0) / 1000
    while True:
        left_s = deadline - time.monotonic()
        if left_s <= 0 or (context is not None and context.cancelled()):
            break
        time.sleep(min(left_s, 0.05))
    if rng.random() < failure_rate:
        error_type, message = _FAILURES[rng.randrange(len(_FAILURES))]
        raise error_type(message.format(n=rng.randrange(100, 10_000)))
    return {"slept_ms": round(float(run_time_ms), 1)}


def register_work_task(app: App, queue: str = DEMO_QUEUE, max_retries: int = 2,
                       name: str = WORK_TASK) -> TaskFunction[Any, Any]:
    """Register the synthetic task on ``app`` (idempotent) and return it."""
    registered = app.registered().get(name)
    if registered is not None:
        return TaskFunction(app, registered)
    return app.task(name=name, queue=queue, max_retries=max_retries)(_work)


@dataclass(frozen=True)
class Burst:
    """What one burst enqueues: ``count`` tasks with the same options.

    ``run_time_ms`` is each task's sleep, ``failure_rate`` the probability in [0, 1] that an
    attempt fails, ``delay_s`` schedules the whole burst that many seconds ahead.
    """

    count: int
    priority: int = 5
    delay_s: float = 0.0
    failure_rate: float = 0.0
    run_time_ms: float = 200.0
    queue: str = DEMO_QUEUE

    def validate(self) -> None:
        """Raise ConfigurationError naming the first field that cannot work."""
        if not 1 <= self.count <= 100_000:
            raise ConfigurationError(f"burst count={self.count} is invalid: use 1 to 100000")
        if not MIN_PRIORITY <= self.priority <= MAX_PRIORITY:
            raise ConfigurationError(f"burst priority={self.priority} is invalid: use "
                                     f"{MIN_PRIORITY} to {MAX_PRIORITY}")
        if not 0 <= self.failure_rate <= 1:
            raise ConfigurationError(f"burst failure_rate={self.failure_rate} is invalid: use "
                                     "a number from 0 to 1")
        if self.run_time_ms < 0 or self.delay_s < 0:
            raise ConfigurationError(f"burst run_time_ms={self.run_time_ms} and delay_s="
                                     f"{self.delay_s} must be 0 or more")


class WorkerPool:
    """In-process workers of one app, which a demo can grow, shrink and crash.

    Each worker is a ``taskq.Worker`` with ``concurrency`` slots and its own heartbeat, so the
    dashboard sees them exactly as it sees workers of other processes.
    """

    def __init__(self, app: App, queues: tuple[str, ...] = (DEMO_QUEUE,), concurrency: int = 2,
                 id_prefix: str = "demo") -> None:
        if concurrency < 1:
            raise ConfigurationError(f"concurrency={concurrency} must be at least 1")
        self.app = app
        self.queues = queues
        self.concurrency = concurrency
        self.id_prefix = id_prefix
        self._workers: list[Worker] = []
        self._serial = 0
        self._lock = threading.Lock()

    def ids(self) -> list[str]:
        """Ids of the workers started and neither stopped nor killed, oldest first."""
        with self._lock:
            return [w.id for w in self._workers]

    @property
    def size(self) -> int:
        with self._lock:
            return len(self._workers)

    def resize(self, size: int, grace_s: float = 1.0) -> list[str]:
        """Start or gracefully stop workers until ``size`` run; returns the ids now running.

        Stopping releases the leases of tasks still running after ``grace_s`` seconds; it runs
        in background threads, so this returns at once.
        """
        if not 0 <= size <= 64:
            raise ConfigurationError(f"pool size={size} is invalid: use 0 to 64")
        with self._lock:
            while len(self._workers) < size:
                self._serial += 1
                worker = Worker(self.app, self.queues, self.concurrency,
                                worker_id=f"{self.id_prefix}-{self._serial}")
                worker.start()
                self._workers.append(worker)
            retiring = self._workers[size:]
            del self._workers[size:]
            running = [w.id for w in self._workers]
        for worker in retiring:
            threading.Thread(target=worker.stop, args=(grace_s,), daemon=True,
                             name=f"taskq-demo-stop-{worker.id}").start()
        log.info("demo pool resized size=%d workers=%s", size, ",".join(running))
        return running

    def kill(self, worker_id: str) -> None:
        """Crash one worker: no release, no goodbye; its leases expire and the reaper recovers
        its tasks. Raises ConfigurationError for an id this pool does not run."""
        with self._lock:
            worker = next((w for w in self._workers if w.id == worker_id), None)
            if worker is None:
                running = ", ".join(w.id for w in self._workers) or "none"
                raise ConfigurationError(f"worker {worker_id!r} is not running in this demo "
                                         f"pool (running: {running})")
            self._workers.remove(worker)
        worker.kill()

    def stop(self, grace_s: float = 1.0) -> None:
        """Stop every worker gracefully and wait for them."""
        with self._lock:
            workers, self._workers = self._workers, []
        threads = [threading.Thread(target=w.stop, args=(grace_s,), daemon=True)
                   for w in workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(grace_s + 5)


class LoadGenerator:
    """Enqueues synthetic tasks at a steady rate, plus bursts on demand.

    Each tick (``tick_s``) enqueues the tasks due since the last one in one ``enqueue_many``.
    Tasks get a priority from ``priorities`` (weights per level), a run time drawn around
    ``run_time_ms`` (log-normal, so a few run long), and a delay of up to ``max_delay_s`` for a
    ``delayed_fraction`` of them. Everything is drawn from ``random.Random(seed)``. The loop
    stops on ``stop()``, after ``max_tasks`` tasks, or after ``duration_s`` seconds.
    """

    def __init__(self, app: App, *, rate_per_s: float = 5.0, seed: int = 0,
                 queue: str = DEMO_QUEUE, run_time_ms: float = 300.0, failure_rate: float = 0.05,
                 priorities: dict[int, float] | None = None, delayed_fraction: float = 0.1,
                 max_delay_s: float = 4.0, tick_s: float = 0.1, max_tasks: int | None = None,
                 duration_s: float | None = None) -> None:
        register_work_task(app, queue)
        self.app = app
        self.queue = queue
        self.rate_per_s = rate_per_s
        self.run_time_ms = run_time_ms
        self.failure_rate = failure_rate
        self.priorities = priorities or {2: 0.2, 5: 0.6, 8: 0.2}
        self.delayed_fraction = delayed_fraction
        self.max_delay_s = max_delay_s
        self.tick_s = tick_s
        self.max_tasks = max_tasks
        self.duration_s = duration_s
        self.enqueued = 0
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def set_rate(self, rate_per_s: float) -> None:
        """Change the steady rate (tasks per second, 0 to 10000) while running."""
        if not 0 <= rate_per_s <= 10_000:
            raise ConfigurationError(f"rate_per_s={rate_per_s} is invalid: use 0 to 10000")
        self.rate_per_s = rate_per_s

    def start(self) -> None:
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="taskq-demo-load", daemon=True)
        self._thread.start()
        log.info("load generator started rate_per_s=%.1f queue=%s", self.rate_per_s, self.queue)

    def stop(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)
        self._thread = None
        log.info("load generator stopped enqueued=%d", self.enqueued)

    def burst(self, burst: Burst) -> list[TaskHandle]:
        """Enqueue ``burst.count`` tasks at once (one Lua call per 500); returns their handles."""
        burst.validate()
        with self._rng_lock:
            seeds = [self._rng.randrange(2**31) for _ in range(burst.count)]
        calls = [Call(WORK_TASK, (burst.run_time_ms, burst.failure_rate, seed), {}, burst.queue,
                      burst.priority, burst.delay_s or None) for seed in seeds]
        handles = self.app.enqueue_many(calls)
        self.enqueued += len(handles)
        log.info("burst enqueued count=%d queue=%s priority=%d delay_s=%.1f", len(handles),
                 burst.queue, burst.priority, burst.delay_s)
        return handles

    def plan(self, count: int) -> list[Call]:
        """The next ``count`` calls of the steady load, drawn from the generator's seed."""
        with self._rng_lock:
            return [self._next_call() for _ in range(count)]

    def _next_call(self) -> Call:
        rng = self._rng
        levels = list(self.priorities)
        priority = rng.choices(levels, weights=[self.priorities[p] for p in levels])[0]
        run_time_ms = min(self.run_time_ms * rng.lognormvariate(-0.3, 0.8), 20_000.0)
        delay = None
        if rng.random() < self.delayed_fraction:
            delay = round(rng.uniform(0.2, self.max_delay_s), 3)
        return Call(WORK_TASK, (round(run_time_ms, 1), self.failure_rate,
                                rng.randrange(2**31)), {}, self.queue, priority, delay)

    def _run(self) -> None:
        started = time.monotonic()
        owed = 0.0
        last = started
        while not self._stop.wait(self.tick_s):
            now = time.monotonic()
            if self.duration_s is not None and now - started >= self.duration_s:
                break
            owed += self.rate_per_s * (now - last)
            last = now
            due = int(owed)
            if self.max_tasks is not None:
                due = min(due, self.max_tasks - self.enqueued)
            if due <= 0:
                if self.max_tasks is not None and self.enqueued >= self.max_tasks:
                    break
                continue
            owed -= due
            calls = self.plan(due)
            try:
                self.app.enqueue_many(calls)
                self.enqueued += due
            except Exception as exc:  # noqa: BLE001 - Redis down: skip this tick, keep going
                log.warning("load generator enqueue failed count=%d error=%s: %s", due,
                            type(exc).__name__, exc)
                self._stop.wait(1.0)
        log.info("load generator finished enqueued=%d", self.enqueued)


class Playground:
    """A complete demo on one app: the synthetic task, a worker pool, a reaper for every queue
    and a load generator. ``start`` brings all of them up; ``stop`` takes them down."""

    def __init__(self, app: App, *, workers: int = 3, concurrency: int = 2,
                 rate_per_s: float = 5.0, seed: int = 0, queue: str = DEMO_QUEUE,
                 run_reaper: bool = True, **load: Any) -> None:
        self.app = app
        self.task = register_work_task(app, queue)
        self.pool = WorkerPool(app, (queue,), concurrency)
        self.generator = LoadGenerator(app, rate_per_s=rate_per_s, seed=seed, queue=queue,
                                       **load)
        self.initial_workers = workers
        self.reaper = Reaper(app, app.queues, "playground") if run_reaper else None

    def start(self, load: bool = True) -> None:
        """Start the workers, the reaper and (with ``load``) the load generator."""
        self.pool.resize(self.initial_workers)
        if self.reaper is not None:
            self.reaper.start()
        if load:
            self.generator.start()

    def stop(self) -> None:
        self.generator.stop()
        self.pool.stop()
        if self.reaper is not None:
            self.reaper.stop()


def demo_settings(**changes: Any) -> Settings:
    """``DEMO_SETTINGS`` with some fields changed."""
    return replace(DEMO_SETTINGS, **changes)


# For worker processes: ``taskq worker --app taskq.playground`` serves the synthetic task.
app = App(settings=DEMO_SETTINGS)
register_work_task(app)
