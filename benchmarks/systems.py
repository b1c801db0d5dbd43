"""The queue systems under test, their worker modes and their delivery guarantees.

This module imports no queue library, so the harness can list every system
and report the ones that are not installed.
"""

from __future__ import annotations

import importlib.util
import subprocess
from dataclasses import dataclass
from importlib import metadata


@dataclass(frozen=True)
class Mode:
    """One way of running a system's worker: a driver mode and a concurrency."""

    name: str
    driver_mode: str
    concurrency: int
    label: str


@dataclass(frozen=True)
class System:
    name: str
    title: str
    module: str
    distribution: str
    modes: tuple[Mode, ...]
    guarantee: str
    schedules: bool = True
    floor: bool = False

    def available(self) -> bool:
        return importlib.util.find_spec(self.module) is not None

    def version(self, python: str | None = None) -> str | None:
        """Return the installed version, in the harness or in another interpreter's environment."""
        if python is not None:
            code = f"import importlib.metadata as m; print(m.version({self.distribution!r}))"
            done = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60)
            return done.stdout.strip() or None if done.returncode == 0 else None
        try:
            return metadata.version(self.distribution)
        except metadata.PackageNotFoundError:
            return None


SYSTEMS: dict[str, System] = {
    system.name: system
    for system in (
        System(
            name="naive",
            title="redis-py loop (floor)",
            module="redis",
            distribution="redis",
            modes=(Mode("loop", "loop", 1, "LPUSH; BRPOP then INCR"),),
            guarantee="at most once: a task popped by a worker that dies is lost",
            schedules=False,
            floor=True,
        ),
        System(
            name="taskq",
            title="taskq",
            module="taskq",
            distribution="taskq-lab",
            modes=(
                Mode("c1", "slots", 1, "1 slot"),
                Mode("c8", "slots", 8, "8 slots"),
                Mode("c8-batched", "batched", 8, "8 slots, prefetch 16"),
            ),
            guarantee="at least once: a claimed task is leased, and the reaper returns it to ready "
            "when its worker stops extending the lease",
        ),
        System(
            name="rq",
            title="RQ",
            module="rq",
            distribution="rq",
            modes=(
                Mode("fork", "fork", 1, "Worker (forks per job)"),
                Mode("simple", "simple", 1, "SimpleWorker"),
            ),
            guarantee="at most once by default: a job abandoned by a dead worker is moved to the "
            "failed registry, and run again only if it was enqueued with a Retry",
        ),
        System(
            name="celery",
            title="Celery",
            module="celery",
            distribution="celery",
            modes=(
                Mode("solo", "solo", 1, "solo pool"),
                Mode("threads8", "threads", 8, "threads pool, 8"),
            ),
            guarantee="at most once with the default early acknowledgement: a task is acknowledged "
            "before it runs",
        ),
        System(
            name="dramatiq",
            title="Dramatiq",
            module="dramatiq",
            distribution="dramatiq",
            modes=(
                Mode("t1", "threads", 1, "1 process, 1 thread"),
                Mode("t8", "threads", 8, "1 process, 8 threads"),
            ),
            guarantee="at least once: messages are acknowledged after the actor returns, and "
            "a dead worker's unacknowledged messages are requeued",
        ),
        System(
            name="huey",
            title="Huey",
            module="huey",
            distribution="huey",
            modes=(
                Mode("t1", "threads", 1, "1 thread"),
                Mode("t8", "threads", 8, "8 threads"),
            ),
            guarantee="at most once: the consumer pops a task before running it, so a task in "
            "flight when the consumer dies is lost",
        ),
        System(
            name="arq",
            title="arq",
            module="arq",
            distribution="arq",
            modes=(
                Mode("j1", "jobs", 1, "max_jobs 1"),
                Mode("j8", "jobs", 8, "max_jobs 8"),
            ),
            guarantee="at least once: a job stays queued until it finishes, and is run again (up "
            "to max_tries, 5 by default) once a dead worker's in-progress key expires",
        ),
        System(
            name="saq",
            title="SAQ",
            module="saq",
            distribution="saq",
            modes=(
                Mode("j1", "jobs", 1, "concurrency 1"),
                Mode("j8", "jobs", 8, "concurrency 8"),
            ),
            guarantee="a job whose worker dies is found by the sweeper and retried only while it "
            "has retries left (default: 1 attempt in all)",
        ),
    )
}
