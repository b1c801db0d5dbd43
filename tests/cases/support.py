"""Helpers for the field-case and chaos tests: worker processes and where tasks are.

``WorkerProcess`` runs ``taskq worker`` (through ``start_worker_process``) and reads its output
in a thread, so a chatty worker never blocks on a full pipe and tests can assert on its log.
``census`` reads every structure of a queue in one MULTI block, so the picture it returns is
one instant of Redis, never a mix of before and after a script call.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis

import taskq
from taskq.settings import MAX_PRIORITY, MIN_PRIORITY
from tests.conftest import start_worker_process

MAX_LOG_LINES = 100_000
STRUCTURES = ("ready", "scheduled", "active", "dead", "finished")


def text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class WorkerProcess:
    """One ``taskq worker`` process; its merged stdout and stderr are kept in ``lines``."""

    def __init__(self, redis_url: str, *, app_spec: str = "tests.sample_tasks:app",
                 queues: str = "default", concurrency: int = 1,
                 extra: Iterable[str] = (), env: dict[str, str] | None = None,
                 worker_id: str | None = None) -> None:
        self.id = worker_id
        args = list(extra)
        if worker_id is not None:
            args += ["--worker-id", worker_id]
        self.popen: subprocess.Popen[bytes] = start_worker_process(
            redis_url, app_spec, queues, concurrency, args, env)
        self.lines: list[str] = []
        self._lines_lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, name="worker-output", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for raw in self.popen.stdout:
            with self._lines_lock:
                if len(self.lines) < MAX_LOG_LINES:
                    self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        with self._lines_lock:
            return "\n".join(self.lines)

    def count(self, fragment: str) -> int:
        """Number of output lines that contain ``fragment``."""
        with self._lines_lock:
            return sum(1 for line in self.lines if fragment in line)

    def wait_for_output(self, fragment: str, timeout_s: float = 15.0) -> None:
        """Wait until a line contains ``fragment``; fail naming the output tail otherwise."""
        deadline = time.monotonic() + timeout_s
        while self.count(fragment) == 0:
            if time.monotonic() > deadline or (self.popen.poll() is not None
                                               and not self._reader.is_alive()):
                pytest.fail(f"worker output has no line with {fragment!r} after {timeout_s} s;"
                            f" last lines:\n{self.tail()}")
            time.sleep(0.02)

    def wait_started(self, timeout_s: float = 15.0) -> None:
        self.wait_for_output("worker started", timeout_s)

    def tail(self, lines: int = 30) -> str:
        with self._lines_lock:
            return "\n".join(self.lines[-lines:])

    def alive(self) -> bool:
        return self.popen.poll() is None

    def send(self, signum: signal.Signals) -> None:
        if self.alive():
            self.popen.send_signal(signum)

    def wait(self, timeout_s: float) -> int | None:
        """Wait for exit; returns the exit code, or None when still running at the timeout."""
        try:
            return self.popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        """SIGKILL and reap the process; safe to call on one that already exited."""
        if self.alive():
            self.popen.kill()
        self.popen.wait(10)
        self._reader.join(5)


@pytest.fixture
def worker_processes() -> Iterator[Callable[..., WorkerProcess]]:
    """A factory of worker processes (``WorkerProcess`` arguments); all are killed at the end."""
    started: list[WorkerProcess] = []

    def start(redis_url: str, **options: Any) -> WorkerProcess:
        worker = WorkerProcess(redis_url, **options)
        started.append(worker)
        return worker

    try:
        yield start
    finally:
        for worker in started:
            worker.kill()


# Where tasks are.

@dataclass
class Census:
    """Every id in each structure of one queue at one instant; ready ids keep duplicates."""

    ids: dict[str, list[str]] = field(default_factory=dict)

    def count(self, structure: str) -> int:
        return len(self.ids.get(structure, []))

    def holders(self) -> dict[str, list[str]]:
        """Task id to the structures holding it, once per occurrence."""
        out: dict[str, list[str]] = {}
        for structure, members in self.ids.items():
            for task_id in members:
                out.setdefault(task_id, []).append(structure)
        return out

    def in_several(self) -> dict[str, list[str]]:
        """Ids held more than once (by two structures, or twice by ready lists)."""
        return {task_id: where for task_id, where in self.holders().items() if len(where) > 1}


def census(client: redis.Redis, keys: Any) -> Census:
    """Read the ready lists and the four sorted sets of a queue in one MULTI block."""
    pipe = client.pipeline(transaction=True)
    for priority in range(MAX_PRIORITY, MIN_PRIORITY - 1, -1):
        pipe.lrange(keys.ready(priority), 0, -1)
    for name in STRUCTURES[1:]:
        pipe.zrange(getattr(keys, name), 0, -1)
    replies = pipe.execute()
    levels = MAX_PRIORITY - MIN_PRIORITY + 1
    ready = [text(m) for members in replies[:levels] for m in members]
    out = Census({"ready": ready})
    for name, members in zip(STRUCTURES[1:], replies[levels:]):
        out.ids[name] = [text(m) for m in members]
    return out


def locate(client: redis.Redis, keys: Any, task_id: str) -> list[str]:
    """The structures holding ``task_id`` right now (one MULTI block), once per occurrence."""
    pipe = client.pipeline(transaction=True)
    for priority in range(MAX_PRIORITY, MIN_PRIORITY - 1, -1):
        pipe.lpos(keys.ready(priority), task_id, count=0)
    for name in STRUCTURES[1:]:
        pipe.zscore(getattr(keys, name), task_id)
    replies = pipe.execute()
    levels = MAX_PRIORITY - MIN_PRIORITY + 1
    found = ["ready"] * sum(len(positions) for positions in replies[:levels])
    found += [name for name, score in zip(STRUCTURES[1:], replies[levels:]) if score is not None]
    return found


class Sampler:
    """Samples where some tasks are every ``interval_s`` in a thread, until ``stop``."""

    def __init__(self, client: redis.Redis, keys: Any, task_ids: list[str],
                 interval_s: float = 0.1) -> None:
        self.client = client
        self.keys = keys
        self.task_ids = task_ids
        self.interval_s = interval_s
        self.samples: list[tuple[float, str, list[str]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            for task_id in self.task_ids:
                self.samples.append((now, task_id, locate(self.client, self.keys, task_id)))
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def bad_samples(self) -> list[tuple[float, str, list[str]]]:
        """Samples where a task was in no structure or in more than one."""
        return [s for s in self.samples if len(s[2]) != 1]


def counters(app: taskq.App, queue: str = "default") -> Counter[str]:
    raw = app.client.hgetall(app.keys.queue(queue).counters)
    return Counter({text(k): int(v) for k, v in raw.items()})


def events_of(app: taskq.App, queue: str = "default", kind: str | None = None,
              count: int = 100_000) -> list[taskq.Event]:
    """Events of one queue's stream, oldest first, optionally of one kind."""
    found, _ = taskq.read_events(app, {app.keys.queue(queue).events: "0"}, count=count)
    return [e for e in found if kind is None or e.kind == kind]


def mirror_app(source: taskq.App, redis_url: str, settings: taskq.Settings | None = None,
               clock: taskq.Clock | None = None) -> taskq.App:
    """A new App on ``redis_url`` with the tasks of ``source`` registered under the same names
    and options, so a test process can enqueue what a worker process of ``source`` runs."""
    app = taskq.App(redis_url, settings=settings or source.settings, clock=clock)
    for name, definition in source.registered().items():
        options = definition.options
        app.task(name, queue=options.queue, priority=options.priority,
                 max_retries=options.max_retries, backoff_min_s=options.backoff.min_s,
                 backoff_max_s=options.backoff.max_s, backoff_factor=options.backoff.factor,
                 backoff_jitter=options.backoff.jitter, timeout_s=options.timeout_s,
                 result_ttl_s=options.result_ttl_s)(definition.func)
    return app


def wait_for_state(app: taskq.App, task_id: str, state: taskq.State, timeout_s: float,
                   queue: str = "default") -> float:
    """Wait until the task's record is in ``state``; returns the monotonic time it was seen."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            current = app.get(task_id, queue).state
        except taskq.TaskNotFoundError:
            current = None
        if current is state:
            return time.monotonic()
        if time.monotonic() > deadline:
            pytest.fail(f"task {task_id} is {current} after {timeout_s} s, expected {state}")
        time.sleep(0.02)
