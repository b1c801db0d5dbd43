"""Measurement phases. Each function runs one phase once and returns plain numbers.

Sequence numbers identify tasks: every phase takes a fresh range from
``Bench.take_seqs`` so records of different phases never mix.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.procs import Producer, SystemEnv, WorkerGroup
from benchmarks.records import RecordTail, TaskRecord, read_pairs
from benchmarks.redis_server import RedisServer
from benchmarks.stats import latency_summary_ms, quantile
from benchmarks.systems import Mode, System

log = logging.getLogger(__name__)

# Commands the harness itself sends while a commandstats window is open; they are subtracted.
HARNESS_COMMANDS = ("info",)
# After the last record of a command-count window, the worker still acknowledges that task.
ACK_TAIL_S = 0.3
WORKER_START_TIMEOUT_S = 60.0
# Warm-up starts with this many tasks per process. The full batch follows only when the
# worker ran the first batch at least WARMUP_FAST_PER_S tasks per second.
WARMUP_FIRST_N = 5
WARMUP_FAST_PER_S = 50.0
WARMUP_RETRY_PAUSE_S = 0.2
# Pause between a paced producer's untimed first task and its paced run.
PACE_PAUSE_S = 0.2
# Seconds from the start of a schedule command to the first due time, when the producer can
# schedule faster than the tasks fall due.
SCHEDULE_LEAD_S = 0.5
REDIS_CLI_DEFAULT = "/usr/bin/redis-cli"
# Maximum planned length of an end-to-end drain, which limits the tasks for a slow worker.
E2E_MAX_S = 10.0


@dataclass(frozen=True)
class Counts:
    """Task counts and durations of one harness run (``--quick`` or full)."""

    enqueue_one_n: int
    enqueue_bulk_n: int
    enqueue_time_limit_s: float
    memory_n: int
    warmup_n: int
    e2e_target_s: float
    e2e_min_n: int
    e2e_max_n: int
    monitor_max_n: int
    latency_rates: tuple[int, ...]
    latency_duration_s: float
    idle_s: float
    delayed_n: int
    delayed_span_s: float
    delayed_max_rate: float
    scaling_processes: tuple[int, ...]
    growth_depths: tuple[int, ...]
    growth_sample_n: int
    growth_skip_n: int
    promoter_scheduled_n: int
    promoter_window_s: float
    promoter_probe_n: int


FULL = Counts(
    enqueue_one_n=3_000,
    enqueue_bulk_n=10_000,
    enqueue_time_limit_s=2.0,
    memory_n=5_000,
    warmup_n=50,
    e2e_target_s=1.0,
    e2e_min_n=20,
    e2e_max_n=20_000,
    monitor_max_n=200,
    latency_rates=(1000, 500),
    latency_duration_s=1.0,
    idle_s=5.0,
    delayed_n=10_000,
    delayed_span_s=10.0,
    delayed_max_rate=1000.0,
    scaling_processes=(1, 2, 4),
    growth_depths=(1_000, 100_000, 1_000_000),
    growth_sample_n=2_000,
    growth_skip_n=100,
    promoter_scheduled_n=1_000_000,
    promoter_window_s=3.0,
    promoter_probe_n=500,
)

QUICK = Counts(
    enqueue_one_n=200,
    enqueue_bulk_n=1_000,
    enqueue_time_limit_s=1.0,
    memory_n=2_000,
    warmup_n=10,
    e2e_target_s=0.3,
    e2e_min_n=200,
    e2e_max_n=1_000,
    monitor_max_n=30,
    latency_rates=(1000, 500),
    latency_duration_s=0.3,
    idle_s=0.3,
    delayed_n=100,
    delayed_span_s=0.5,
    delayed_max_rate=1000.0,
    scaling_processes=(2,),
    growth_depths=(100, 1_000),
    growth_sample_n=50,
    growth_skip_n=10,
    promoter_scheduled_n=2_000,
    promoter_window_s=0.3,
    promoter_probe_n=20,
)


class Bench:
    """State shared by all phases: the Redis server, counts, paths and interpreters."""

    def __init__(
        self,
        server: RedisServer,
        counts: Counts,
        work_dir: Path,
        pythons: dict[str, str],
        repo_root: Path,
    ) -> None:
        self.server = server
        self.counts = counts
        self.work_dir = work_dir
        self.pythons = pythons
        self.repo_root = repo_root
        self.client = server.client()
        self._next_seq = 1
        self._session = 0
        self._producers: dict[str, Producer] = {}
        (work_dir / "logs").mkdir(parents=True, exist_ok=True)

    def sysenv(self, system: System) -> SystemEnv:
        env = dict(os.environ)
        env["BENCH_REDIS_URL"] = self.server.url
        env["BENCH_QUEUE"] = "bench"
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(self.repo_root), env.get("PYTHONPATH")])
        )
        # Keep every system's worker logs at WARNING; a few systems read their level from here.
        env["TASKQ_LOG_LEVEL"] = "WARNING"
        return SystemEnv(
            system.name,
            self.pythons.get(system.name, _default_python()),
            env,
            self.work_dir / "logs",
        )

    def produce(self, system: System, args: list[str], timeout_s: float) -> dict[str, Any]:
        """Run one producer command for ``system`` in its long-lived producer process."""
        producer = self._producers.get(system.name)
        if producer is None or producer.popen.poll() is not None:
            producer = Producer(self.sysenv(system))
            self._producers[system.name] = producer
        try:
            return producer.call(args, timeout_s)
        except RuntimeError:
            producer.close()
            del self._producers[system.name]
            raise

    def close_producers(self) -> None:
        for producer in self._producers.values():
            producer.close()
        self._producers.clear()

    def take_seqs(self, n: int) -> int:
        first = self._next_seq
        self._next_seq += n
        return first

    def new_session_file(self, label: str) -> Path:
        self._session += 1
        return self.work_dir / f"records-{self._session:04d}-{label}.txt"

    def flush(self) -> None:
        self.client.flushall()

    def commandstats(self) -> dict[str, dict[str, float]]:
        """Return ``{command: {"calls": n, "usec": t}}`` from INFO commandstats."""
        info = self.client.info("commandstats")
        stats: dict[str, dict[str, float]] = {}
        for key, value in info.items():
            name = key.removeprefix("cmdstat_")
            stats[name] = {"calls": float(value["calls"]), "usec": float(value["usec"])}
        return stats

    def used_memory(self) -> int:
        return int(self.client.info("memory")["used_memory"])

    def redis_cpu_s(self) -> float:
        info = self.client.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _default_python() -> str:
    import sys

    return sys.executable


def commands_delta(
    before: dict[str, dict[str, float]], after: dict[str, dict[str, float]], harness_infos: int
) -> dict[str, float]:
    """Return calls per command between two commandstats snapshots.

    The harness's own INFO calls inside the window are subtracted.
    """
    delta: dict[str, float] = {}
    for name, stats in after.items():
        calls = stats["calls"] - before.get(name, {"calls": 0.0})["calls"]
        if name in HARNESS_COMMANDS:
            calls -= harness_infos
        if calls > 0:
            delta[name] = calls
    return delta


# --- worker sessions ---------------------------------------------------------


class WorkerSession:
    """A running worker group plus its record file, warmed up and ready for a phase."""

    def __init__(
        self, bench: Bench, system: System, mode: Mode, processes: int = 1, scheduler: bool = False
    ) -> None:
        self.bench = bench
        self.system = system
        self.mode = mode
        self.sysenv = bench.sysenv(system)
        label = f"{system.name}-{mode.name}-p{processes}"
        self.records = RecordTail(bench.new_session_file(label))
        self.group = WorkerGroup(
            self.sysenv,
            mode.driver_mode,
            mode.concurrency,
            self.records.path,
            processes=processes,
            scheduler=scheduler,
            label=label,
        )
        self.warm_rate_per_s = 0.0

    def __enter__(self) -> WorkerSession:
        self.group.start()
        try:
            self.warm_up()
        except BaseException:
            self.group.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.group.stop()

    def warm_up(self) -> None:
        """Run warm-up tasks until every worker process has run at least one.

        A small first batch shows whether the worker is slow (RQ's forking
        worker, arq with one job); only a fast worker gets the full batch.
        The rate seen here sizes the timed phases.
        """
        processes = self.group.processes
        records = self._warm_batch(WARMUP_FIRST_N * processes)
        if rate_per_s(records) >= WARMUP_FAST_PER_S:
            records = self._warm_batch(self.bench.counts.warmup_n * processes)
        pids = {record.pid for record in records}
        deadline_s = time.monotonic() + WORKER_START_TIMEOUT_S
        while len(pids) < processes and time.monotonic() < deadline_s:
            # A process still starting, or a prefetching one that took every task, leaves
            # another without work; small batches reach it once it listens.
            time.sleep(WARMUP_RETRY_PAUSE_S)
            pids |= {record.pid for record in self._warm_batch(WARMUP_FIRST_N * processes)}
        if len(pids) < processes:
            log.warning(
                "%s/%s: only %d of %d worker processes ran a warm-up task",
                self.system.name,
                self.mode.name,
                len(pids),
                processes,
            )
        self.warm_rate_per_s = rate_per_s(records)

    def _warm_batch(self, n: int) -> list[TaskRecord]:
        first = self.enqueue(n, bulk=True)
        deadline_s = time.monotonic() + WORKER_START_TIMEOUT_S
        done = 0
        while time.monotonic() < deadline_s:
            done = self.records.wait_for(first, n, timeout_s=0.5)
            self.group.check_alive()
            if done >= n:
                break
        if done < n:
            raise RuntimeError(
                f"{self.system.name}/{self.mode.name}: only {done} of {n} warm-up "
                f"tasks ran within {WORKER_START_TIMEOUT_S:.0f} s"
            )
        return self.records.in_range(first, n)

    def enqueue(self, n: int, bulk: bool, time_limit_s: float = 600.0) -> int:
        """Enqueue ``n`` tasks through a producer subprocess; return the first sequence number."""
        first = self.bench.take_seqs(n)
        args = [
            "enqueue",
            "--n",
            str(n),
            "--start-seq",
            str(first),
            "--time-limit-s",
            str(time_limit_s),
        ]
        if bulk:
            args.append("--bulk")
        result = self.bench.produce(self.system, args, timeout_s=time_limit_s + 120)
        if result["n"] != n:
            raise RuntimeError(f"{self.system.name}: producer enqueued {result['n']} of {n} tasks")
        return first


def rate_per_s(records: list[TaskRecord]) -> float:
    """Return tasks per second between the first and the last task start."""
    if len(records) < 2:
        return 0.0
    starts = sorted(record.start_s for record in records)
    span_s = starts[-1] - starts[0]
    return (len(starts) - 1) / span_s if span_s > 0 else 0.0


# --- producer-only phases ----------------------------------------------------


def enqueue_rates(bench: Bench, system: System) -> dict[str, float | None]:
    """Measure enqueue rates, one by one and in bulk, with no worker running."""
    counts = bench.counts
    result: dict[str, float | None] = {}
    for key, n, bulk in (
        ("one_per_s", counts.enqueue_one_n, False),
        ("bulk_per_s", counts.enqueue_bulk_n, True),
    ):
        bench.flush()
        args = [
            "enqueue",
            "--n",
            str(n),
            "--start-seq",
            str(bench.take_seqs(n)),
            "--time-limit-s",
            str(counts.enqueue_time_limit_s),
        ]
        if bulk:
            args.append("--bulk")
        out = bench.produce(system, args, timeout_s=counts.enqueue_time_limit_s + 120)
        result[key] = out["n"] / out["elapsed_s"] if out["elapsed_s"] > 0 else None
    bench.flush()
    return result


def memory_per_task(bench: Bench, system: System) -> float:
    """Return Redis ``used_memory`` bytes per queued task, with no worker running.

    One task is enqueued before the baseline so that fixed costs (loaded
    scripts, registries, queue metadata) are not charged to the tasks. The
    tasks go in through the bulk call, which stores the same data as
    enqueueing one by one in fewer round trips. A slow bulk call stops after
    ``enqueue_time_limit_s``, and the delta is divided by the tasks it sent.
    """
    n = bench.counts.memory_n
    bench.flush()
    bench.produce(
        system, ["enqueue", "--n", "1", "--start-seq", str(bench.take_seqs(1))], timeout_s=120
    )
    before = bench.used_memory()
    out = bench.produce(
        system,
        [
            "enqueue",
            "--n",
            str(n),
            "--start-seq",
            str(bench.take_seqs(n)),
            "--bulk",
            "--time-limit-s",
            str(bench.counts.enqueue_time_limit_s),
        ],
        timeout_s=600,
    )
    after = bench.used_memory()
    bench.flush()
    return (after - before) / out["n"]


# --- phases with a running worker ---------------------------------------------


def end_to_end(session: WorkerSession, expected_rate_per_s: float | None = None) -> dict[str, Any]:
    """Drain a pre-filled queue and measure throughput, worker CPU and Redis commands per task.

    The worker group is stopped (SIGSTOP) while the queue is filled, so the
    producer never competes with the worker for the two cores and the
    worker's start-up is outside the measurement.
    """
    bench = session.bench
    counts = bench.counts
    rate_guess = expected_rate_per_s or session.warm_rate_per_s or 100.0
    n = int(min(counts.e2e_max_n, max(counts.e2e_min_n, rate_guess * counts.e2e_target_s)))
    # e2e_min_n keeps CPU readings (10 ms ticks) meaningful; a very slow worker gets fewer tasks.
    n = max(2, min(n, int(rate_guess * E2E_MAX_S)))

    session.group.pause()
    try:
        cpu_before_s = session.group.cpu_s()
        stats_start = bench.commandstats()
        first = session.enqueue(n, bulk=True)
        stats_filled = bench.commandstats()
    finally:
        session.group.resume()
    timeout_s = max(20.0, 5 * n / max(rate_guess, 1.0))
    done = session.records.wait_for(first, n, timeout_s=timeout_s, poll_s=0.002)
    stats_end = bench.commandstats()
    cpu_after_s = session.group.cpu_s()
    session.group.check_alive()
    records = session.records.in_range(first, n)

    enqueue_cmds = commands_delta(stats_start, stats_filled, harness_infos=1)
    worker_cmds = commands_delta(stats_filled, stats_end, harness_infos=1)
    result: dict[str, Any] = {
        "n": n,
        "done": done,
        "tasks_per_s": rate_per_s(records),
        "worker_cpu_us_per_task": (cpu_after_s - cpu_before_s) / max(done, 1) * 1e6,
        "redis_cmds_per_task_enqueue_bulk": sum(enqueue_cmds.values()) / n,
        "redis_cmds_per_task_worker": sum(worker_cmds.values()) / max(done, 1),
        "redis_cmds_breakdown_worker": {
            k: v / max(done, 1) for k, v in sorted(worker_cmds.items())
        },
        "processes_seen": len({record.pid for record in records}),
    }
    if done < n:
        result["incomplete"] = True
        log.warning(
            "%s/%s: end-to-end run finished %d of %d tasks in %.0f s",
            session.system.name,
            session.mode.name,
            done,
            n,
            timeout_s,
        )
    return result


def monitored_commands(session: WorkerSession, rate_per_s_hint: float) -> dict[str, Any]:
    """Count Redis commands per task with MONITOR, split into client calls and script calls.

    ``INFO commandstats`` counts commands run inside Lua scripts the same as
    commands sent by clients. MONITOR marks the former with ``lua``, so this
    short, untimed pass counts the two apart. Tasks are enqueued one by one
    while the worker is stopped, then the worker drains them.
    """
    bench = session.bench
    n = int(min(bench.counts.monitor_max_n, max(10, rate_per_s_hint * 1.0)))
    monitor_file = bench.work_dir / f"monitor-{session.system.name}-{session.mode.name}.txt"
    session.group.pause()
    with open(monitor_file, "wb") as out:
        monitor = subprocess.Popen(
            [REDIS_CLI_DEFAULT, "-h", "127.0.0.1", "-p", str(bench.server.port), "monitor"],
            stdout=out,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
    try:
        _wait_for_monitor_ok(monitor_file)
        try:
            first = session.enqueue(n, bulk=False)
            switch_wall_s = time.time()
        finally:
            session.group.resume()
        done = session.records.wait_for(
            first, n, timeout_s=max(30.0, 5 * n / max(rate_per_s_hint, 1.0))
        )
        time.sleep(ACK_TAIL_S)
    finally:
        monitor.terminate()
        monitor.wait(timeout=10)
    counted = _parse_monitor(monitor_file, switch_wall_s)
    monitor_file.unlink()
    return {
        "n": n,
        "done": done,
        "client_cmds_per_task_enqueue": counted["enqueue_client"] / n,
        "script_cmds_per_task_enqueue": counted["enqueue_lua"] / n,
        "client_cmds_per_task_worker": counted["worker_client"] / max(done, 1),
        "script_cmds_per_task_worker": counted["worker_lua"] / max(done, 1),
    }


def _wait_for_monitor_ok(path: Path, timeout_s: float = 10.0) -> None:
    deadline_s = time.monotonic() + timeout_s
    while time.monotonic() < deadline_s:
        if path.stat().st_size >= 2 and path.read_bytes().startswith(b"OK"):
            return
        time.sleep(0.01)
    raise RuntimeError(f"redis-cli monitor printed no OK within {timeout_s} s")


def _parse_monitor(path: Path, switch_wall_s: float) -> dict[str, int]:
    """Count MONITOR lines before and after ``switch_wall_s``, by client and by Lua."""
    counted = {"enqueue_client": 0, "enqueue_lua": 0, "worker_client": 0, "worker_lua": 0}
    with open(path, "rb") as f:
        for raw in f:
            parts = raw.split(b" ", 3)
            if len(parts) < 3 or not parts[0][:1].isdigit():
                continue
            phase = "enqueue" if float(parts[0]) < switch_wall_s else "worker"
            source = "lua" if parts[2].startswith(b"lua]") else "client"
            counted[f"{phase}_{source}"] += 1
    return counted


def pickup_latency(session: WorkerSession, rate_per_s_offered: float) -> dict[str, Any]:
    """Offer tasks at a fixed rate and measure ready-to-started latency inside the worker."""
    bench = session.bench
    duration_s = bench.counts.latency_duration_s
    n = max(10, int(rate_per_s_offered * duration_s))
    warm_seq = bench.take_seqs(1)
    first = bench.take_seqs(n)
    ready_file = bench.work_dir / f"ready-{first}.txt"
    out = bench.produce(
        session.system,
        [
            "pace",
            "--rate",
            str(rate_per_s_offered),
            "--n",
            str(n),
            "--start-seq",
            str(first),
            "--ready-file",
            str(ready_file),
            "--warm-seq",
            str(warm_seq),
            "--pause-s",
            str(PACE_PAUSE_S),
        ],
        timeout_s=duration_s * 3 + 120,
    )

    done = session.records.wait_for(first, n, timeout_s=30.0)
    returned = read_pairs(ready_file)
    called = read_pairs(ready_file, column=2)
    ready_file.unlink()
    records = session.records.in_range(first, n)
    if not records:
        raise RuntimeError(
            f"{session.system.name}/{session.mode.name}: no task of the paced run started"
        )

    # The task became ready somewhere inside its enqueue call: latency from the call's start
    # is an upper bound (the reported figure), latency from its return a lower bound.
    result: dict[str, Any] = latency_summary_ms(
        [record.start_s - called[record.seq] for record in records]
    )
    result["from_return"] = latency_summary_ms(
        [record.start_s - returned[record.seq] for record in records]
    )

    result["offered_per_s"] = rate_per_s_offered
    result["achieved_offered_per_s"] = out["n"] / out["elapsed_s"] if out["elapsed_s"] > 0 else None
    result["producer_max_behind_ms"] = out["max_behind_ms"]
    if done < n:
        result["incomplete"] = True
    return result


def idle_pickup(session: WorkerSession) -> float:
    """Return ms from the enqueue call's start to the task's start after ``idle_s`` idle."""
    bench = session.bench
    warm_seq = bench.take_seqs(1)
    first = bench.take_seqs(1)
    ready_file = bench.work_dir / f"ready-{first}.txt"
    # The producer's untimed first task also ends the worker's previous activity, so the
    # worker is idle for pause_s before the measured task.
    bench.produce(
        session.system,
        [
            "pace",
            "--rate",
            "1",
            "--n",
            "1",
            "--start-seq",
            str(first),
            "--warm-seq",
            str(warm_seq),
            "--pause-s",
            str(bench.counts.idle_s),
            "--ready-file",
            str(ready_file),
        ],
        timeout_s=bench.counts.idle_s + 120,
    )

    done = session.records.wait_for(first, 1, timeout_s=30.0)
    if done < 1:
        raise RuntimeError(
            f"{session.system.name}/{session.mode.name}: the task sent after idling never started"
        )

    called = read_pairs(ready_file, column=2)
    ready_file.unlink()
    return (session.records.by_seq[first].start_s - called[first]) * 1e3


def delayed_lag(
    session: WorkerSession, enqueue_rate_per_s: float, e2e_rate_per_s: float
) -> dict[str, Any]:
    """Schedule tasks due evenly over ``delayed_span_s`` and measure lag from due time to start.

    The offered rate is capped at half the system's measured end-to-end rate,
    so the figure shows the scheduler's lag and not a backlog.
    """
    bench = session.bench
    counts = bench.counts
    rate = (
        min(counts.delayed_max_rate, 0.5 * e2e_rate_per_s)
        if e2e_rate_per_s > 0
        else counts.delayed_max_rate
    )
    n = max(10, min(counts.delayed_n, int(rate * counts.delayed_span_s)))
    # The producer schedules in due order, so it only has to stay ahead of the due times. The
    # lead lets it take twice its measured time per task and still finish by the last due time.
    lead_s = SCHEDULE_LEAD_S + max(
        0.0, 2.0 * n / max(enqueue_rate_per_s, 1.0) - counts.delayed_span_s
    )
    first = bench.take_seqs(n)
    due_file = bench.work_dir / f"due-{first}.txt"
    bench.produce(
        session.system,
        [
            "schedule",
            "--n",
            str(n),
            "--start-seq",
            str(first),
            "--lead-s",
            f"{lead_s:.3f}",
            "--span-s",
            str(counts.delayed_span_s),
            "--due-file",
            str(due_file),
        ],
        timeout_s=lead_s + 300,
    )
    done = session.records.wait_for(first, n, timeout_s=lead_s + counts.delayed_span_s + 60.0)
    due = read_pairs(due_file)
    scheduled = read_pairs(due_file, column=2)
    # A task whose schedule call returned after its due time never waited in the system's
    # schedule, so its lag would measure the producer. Such tasks are left out and counted.
    in_time = {seq for seq, due_s in due.items() if scheduled[seq] <= due_s}
    records = [record for record in session.records.in_range(first, n) if record.seq in in_time]
    lags_s = [record.start_s - due[record.seq] for record in records]
    if not lags_s:
        raise RuntimeError(f"{session.system.name}: no delayed task scheduled in time started")
    result: dict[str, Any] = {
        "n": n,
        "done": done,
        "offered_per_s": n / counts.delayed_span_s,
        "scheduled_late_n": n - len(in_time),
        "started": latency_summary_ms(lags_s),
        "early_n": sum(1 for lag in lags_s if lag < 0),
    }
    if n - len(in_time):
        log.warning(
            "%s: %d of %d tasks were scheduled after their due time and are left out",
            session.system.name,
            n - len(in_time),
            n,
        )
    ready = bench.produce(
        session.system, ["ready-lags", "--due-file", str(due_file)], timeout_s=300
    )
    if ready.get("lags_ms"):
        lags_ready_s = [
            lag_ms / 1e3 for seq, lag_ms in ready["lags_ms"].items() if int(seq) in in_time
        ]
        if lags_ready_s:
            result["ready"] = latency_summary_ms(lags_ready_s)
    due_file.unlink()
    return result


# --- taskq growth phases -------------------------------------------------------


def claim_gaps(session: WorkerSession, depth: int, sample_n: int, skip_n: int) -> dict[str, Any]:
    """Return the gap between one task's end and the next one's start in a one-slot worker.

    That gap is the worker's per-task round trip: acknowledge, then claim.
    """
    bench = session.bench
    before = len(session.records.by_seq)
    stats_start = bench.commandstats()
    target = before + skip_n + sample_n
    deadline_s = time.monotonic() + 120.0
    while len(session.records.by_seq) < target and time.monotonic() < deadline_s:
        session.records.poll()
        time.sleep(0.005)
    stats_end = bench.commandstats()
    records = sorted(session.records.by_seq.values(), key=lambda record: record.start_s)[
        before + skip_n : target
    ]
    gaps_s = [later.start_s - earlier.end_s for earlier, later in zip(records, records[1:])]
    if len(gaps_s) < 10:
        raise RuntimeError(f"taskq claim sample at depth {depth}: only {len(gaps_s) + 1} tasks ran")
    script_calls = sum(
        stats_end[c]["calls"] - stats_start.get(c, {"calls": 0})["calls"]
        for c in stats_end
        if c.startswith("eval")
    )
    script_usec = sum(
        stats_end[c]["usec"] - stats_start.get(c, {"usec": 0})["usec"]
        for c in stats_end
        if c.startswith("eval")
    )
    return {
        "depth": depth,
        "gap_p50_ms": quantile(gaps_s, 0.5) * 1e3,
        "gap_p99_ms": quantile(gaps_s, 0.99) * 1e3,
        "script_us_per_call": script_usec / script_calls if script_calls else None,
        "n": len(gaps_s),
    }


def idle_costs(session: WorkerSession, window_s: float) -> dict[str, float]:
    """Measure what an idle worker costs per second: its CPU, Redis CPU and Redis commands."""
    bench = session.bench
    cpu0 = session.group.cpu_s()
    redis_cpu0 = bench.redis_cpu_s()
    stats0 = bench.commandstats()
    start_s = time.monotonic()
    time.sleep(window_s)
    elapsed_s = time.monotonic() - start_s
    stats1 = bench.commandstats()
    redis_cpu1 = bench.redis_cpu_s()
    cpu1 = session.group.cpu_s()
    cmds = commands_delta(stats0, stats1, harness_infos=1)
    script_usec = sum(
        stats1[c]["usec"] - stats0.get(c, {"usec": 0})["usec"]
        for c in stats1
        if c.startswith("eval")
    )
    return {
        "worker_cpu_ms_per_s": (cpu1 - cpu0) / elapsed_s * 1e3,
        "redis_cpu_ms_per_s": (redis_cpu1 - redis_cpu0) / elapsed_s * 1e3,
        "redis_cmds_per_s": sum(cmds.values()) / elapsed_s,
        "script_ms_per_s": script_usec / elapsed_s / 1e3,
    }


def fill(bench: Bench, system: System, n: int, scheduled_far: bool = False) -> float:
    """Fill the queue with ``n`` ready tasks (or tasks due in an hour); return seconds taken."""
    first = bench.take_seqs(n)
    start_s = time.monotonic()
    if scheduled_far:
        due_file = bench.work_dir / f"due-{first}.txt"
        bench.produce(
            system,
            [
                "schedule",
                "--n",
                str(n),
                "--start-seq",
                str(first),
                "--lead-s",
                "3600",
                "--span-s",
                "3600",
                "--bulk",
                "--chunk",
                "500",
                "--due-file",
                str(due_file),
            ],
            timeout_s=1800,
        )
        due_file.unlink()
        # A driver that keeps task ids writes them beside the due file; a fill reads none.
        Path(f"{due_file}.ids").unlink(missing_ok=True)
    else:
        bench.produce(
            system,
            [
                "enqueue",
                "--n",
                str(n),
                "--start-seq",
                str(first),
                "--bulk",
                "--chunk",
                "500",
                "--time-limit-s",
                "1800",
            ],
            timeout_s=1900,
        )
    return time.monotonic() - start_s
