"""Shared pieces of every queue driver: the task recorder and the producer roles.

This module runs inside producer and worker subprocesses, possibly under
another interpreter than the harness, so it imports only the standard library.

Environment contract (set by the harness for every subprocess):

- ``BENCH_REDIS_URL``: the benchmark's own Redis, for example
  ``redis://127.0.0.1:40123/0``.
- ``BENCH_QUEUE``: the queue name every driver uses.
- ``BENCH_RECORD_FILE``: the file the no-op task appends one line to per run.
- ``BENCH_CONCURRENCY``: worker concurrency, for peers whose worker reads it
  from a settings module rather than from a command-line option.

Timestamps are ``time.monotonic()`` seconds. On Linux this is
CLOCK_MONOTONIC, which is shared by all processes on the machine, so the
harness compares values taken in different processes directly.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

log = logging.getLogger("benchmarks.driver")

QUEUE_DEFAULT = "bench"
# One-by-one enqueue checks its time limit after this many tasks.
TIME_CHECK_EVERY = 100


def redis_url() -> str:
    url = os.environ.get("BENCH_REDIS_URL")
    if not url:
        raise RuntimeError(
            "BENCH_REDIS_URL is not set; drivers run only under the benchmark harness"
        )
    return url


def queue_name() -> str:
    return os.environ.get("BENCH_QUEUE", QUEUE_DEFAULT)


def worker_concurrency() -> int:
    return int(os.environ.get("BENCH_CONCURRENCY", "1"))


class _Recorder:
    """Append-only writer of task records, one ``os.write`` per task.

    The file is opened with O_APPEND so that lines written by threads of one
    process, or by forked children (RQ's default worker), never interleave:
    each line is far shorter than PIPE_BUF and goes out in a single write.
    """

    def __init__(self) -> None:
        self._fd: int | None = None
        self._pid = -1
        self._lock = threading.Lock()

    def _open(self) -> int:
        pid = os.getpid()
        if self._fd is None or self._pid != pid:
            with self._lock:
                if self._fd is None or self._pid != pid:
                    path = os.environ.get("BENCH_RECORD_FILE")
                    if not path:
                        raise RuntimeError("BENCH_RECORD_FILE is not set")
                    self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                    self._pid = pid
        assert self._fd is not None
        return self._fd

    def write(self, seq: int, start_s: float, end_s: float) -> None:
        line = f"{seq} {start_s:.7f} {end_s:.7f} {os.getpid()}\n"
        os.write(self._open(), line.encode())


_recorder = _Recorder()


def run_noop(seq: int) -> None:
    """Body of every system's no-op task: take start and end times and record them.

    The work between the two timestamps is empty on purpose, so that a system's
    figure is its own overhead.
    """
    start_s = time.monotonic()
    end_s = time.monotonic()
    _recorder.write(int(seq), start_s, end_s)


class Driver:
    """Producer side of one queue system.

    Subclasses implement ``enqueue_one`` and may implement ``enqueue_bulk``
    and ``schedule``. An asynchronous driver sets ``is_async`` and implements
    the same methods as coroutines.
    """

    name = "base"
    is_async = False
    bulk_method: str | None = None
    supports_schedule = False

    def open(self) -> Any:
        """Connect; called once before any enqueue (awaited when ``is_async``)."""
        return None

    def close(self) -> Any:
        return None

    def enqueue_one(self, seq: int) -> Any:
        raise NotImplementedError

    def enqueue_bulk(self, seqs: Sequence[int]) -> Any:
        raise NotImplementedError(f"{self.name} has no bulk enqueue API")

    def schedule(self, seq: int, due_wall_s: float) -> Any:
        raise NotImplementedError(f"{self.name} has no delayed tasks")

    def schedule_bulk(self, items: Sequence[tuple[int, float]]) -> Any:
        """Schedule many ``(seq, due_wall_s)`` tasks in few round trips."""
        raise NotImplementedError(f"{self.name} has no bulk schedule call in this driver")

    def scheduled_ids(self) -> dict[int, str]:
        """Return the ids of tasks scheduled so far by sequence number (empty: not kept)."""
        return {}

    def forget_scheduled_ids(self) -> None:
        """Drop the ids kept by ``scheduled_ids``."""

    def ready_lags_ms(self, ids: dict[int, str]) -> dict[int, float] | None:
        """Return, by sequence number, the ms from each task's due time until it became ready.

        Only a system that records when a task became ready can report it, so
        the default returns None.
        """
        return None

    def worker_argv(self, mode: str, concurrency: int, scheduler: bool) -> list[str]:
        """Return the command that starts this system's normal worker."""
        raise NotImplementedError


# --- producer roles -------------------------------------------------------


def _chunks(seqs: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    for i in range(0, len(seqs), size):
        yield seqs[i : i + size]


class _Runner:
    """Call a driver's methods the same way whether it is sync or async."""

    def __init__(self, driver: Driver) -> None:
        self.driver = driver
        self.loop = asyncio.new_event_loop() if driver.is_async else None

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        result = fn(*args)
        if self.loop is not None:
            return self.loop.run_until_complete(result)
        return result

    def run(self, coro_fn: Callable[[], Awaitable[Any]], sync_fn: Callable[[], Any]) -> Any:
        if self.loop is not None:
            return self.loop.run_until_complete(coro_fn())
        return sync_fn()


def role_enqueue(runner: _Runner, args: argparse.Namespace) -> dict[str, Any]:
    """Enqueue ``n`` tasks one by one or in bulk and time it inside this process.

    The time limit is checked after each bulk call, or after every
    ``TIME_CHECK_EVERY`` single enqueues, so a slow system stops early and
    reports how many tasks it enqueued.
    """
    driver = runner.driver
    seqs = list(range(args.start_seq, args.start_seq + args.n))
    chunks = list(_chunks(seqs, args.chunk if args.bulk else TIME_CHECK_EVERY))
    deadline_s = time.monotonic() + args.time_limit_s

    def sync_loop() -> int:
        count = 0
        for chunk in chunks:
            if args.bulk:
                driver.enqueue_bulk(chunk)
            else:
                for seq in chunk:
                    driver.enqueue_one(seq)
            count += len(chunk)
            if time.monotonic() > deadline_s:
                break
        return count

    async def async_loop() -> int:
        count = 0
        for chunk in chunks:
            if args.bulk:
                await driver.enqueue_bulk(chunk)
            else:
                for seq in chunk:
                    await driver.enqueue_one(seq)
            count += len(chunk)
            if time.monotonic() > deadline_s:
                break
        return count

    start_s = time.monotonic()
    done = runner.run(async_loop, sync_loop)
    elapsed_s = time.monotonic() - start_s
    return {"n": done, "elapsed_s": elapsed_s, "start_s": start_s, "end_s": start_s + elapsed_s}


def role_pace(runner: _Runner, args: argparse.Namespace) -> dict[str, Any]:
    """Enqueue one by one at a fixed offered rate and write each task's ready time.

    Each line gives the moments the task's enqueue call returned and began.
    The task became ready somewhere between the two, and a worker may start
    it before the producer reads the reply. The schedule is open-loop: task
    i is due at ``t0 + i / rate`` whether or not the previous call was slow,
    and a late producer sends at once to catch up (``max_behind_ms`` is how
    far behind it fell).
    """
    driver = runner.driver
    n = args.n if args.n else max(1, int(args.rate * args.duration_s))
    interval_s = 1.0 / args.rate
    ready: list[tuple[int, float, float]] = []
    behind_max_s = 0.0

    if args.warm_seq >= 0:
        # A task sent first, untimed, ends any connection or script set-up left to do. It
        # also gives an idle phase a known start: the paced run begins pause_s after it.
        runner.call(driver.enqueue_one, args.warm_seq)
    time.sleep(args.pause_s)
    t0 = time.monotonic()

    def pace_wait(i: int) -> float:
        target_s = t0 + i * interval_s
        now = time.monotonic()
        if target_s > now:
            time.sleep(target_s - now)
            return 0.0
        return now - target_s

    def sync_loop() -> None:
        nonlocal behind_max_s
        for i in range(n):
            behind_max_s = max(behind_max_s, pace_wait(i))
            seq = args.start_seq + i
            call_s = time.monotonic()
            driver.enqueue_one(seq)
            ready.append((seq, time.monotonic(), call_s))

    async def async_loop() -> None:
        nonlocal behind_max_s
        for i in range(n):
            target_s = t0 + i * interval_s
            now = time.monotonic()
            if target_s > now:
                await asyncio.sleep(target_s - now)
            else:
                behind_max_s = max(behind_max_s, now - target_s)
            seq = args.start_seq + i
            call_s = time.monotonic()
            await driver.enqueue_one(seq)
            ready.append((seq, time.monotonic(), call_s))

    runner.run(async_loop, sync_loop)
    elapsed_s = time.monotonic() - t0
    with open(args.ready_file, "w", encoding="ascii") as out:
        for seq, ready_s, call_s in ready:
            out.write(f"{seq} {ready_s:.7f} {call_s:.7f}\n")
    return {"n": len(ready), "elapsed_s": elapsed_s, "max_behind_ms": behind_max_s * 1e3}


def role_schedule(runner: _Runner, args: argparse.Namespace) -> dict[str, Any]:
    """Schedule ``n`` tasks due evenly over ``span_s`` starting ``lead_s`` from now.

    Writes ``seq due_s scheduled_s`` lines in monotonic seconds, where
    ``scheduled_s`` is when the task's schedule call returned. The systems
    receive the due times as wall-clock times converted with one offset
    taken here. ``late_n`` counts the tasks scheduled after their due time.
    """
    driver = runner.driver
    wall_offset_s = time.time() - time.monotonic()
    first_due_s = time.monotonic() + args.lead_s
    step_s = args.span_s / max(1, args.n)
    items = [(args.start_seq + i, first_due_s + i * step_s) for i in range(args.n)]
    wall_items = [(seq, due_s + wall_offset_s) for seq, due_s in items]
    scheduled: list[float] = []

    def sync_loop() -> None:
        for seq, due_wall_s in wall_items:
            driver.schedule(seq, due_wall_s)
            scheduled.append(time.monotonic())

    async def async_loop() -> None:
        for seq, due_wall_s in wall_items:
            await driver.schedule(seq, due_wall_s)
            scheduled.append(time.monotonic())

    start_s = time.monotonic()
    if args.bulk:
        for i in range(0, len(wall_items), args.chunk):
            chunk = wall_items[i : i + args.chunk]
            runner.call(driver.schedule_bulk, chunk)
            scheduled.extend([time.monotonic()] * len(chunk))
    else:
        runner.run(async_loop, sync_loop)
    end_s = time.monotonic()

    with open(args.due_file, "w", encoding="ascii") as out:
        for (seq, due_s), scheduled_s in zip(items, scheduled):
            out.write(f"{seq} {due_s:.7f} {scheduled_s:.7f}\n")
    ids = driver.scheduled_ids()
    driver.forget_scheduled_ids()
    if ids:
        with open(args.due_file + ".ids", "w", encoding="utf-8") as out:
            for seq, task_id in ids.items():
                out.write(f"{seq} {task_id}\n")
    return {
        "n": len(items),
        "elapsed_s": end_s - start_s,
        "finished_s": end_s,
        "first_due_s": first_due_s,
        "late_n": sum(1 for (_, due_s), at_s in zip(items, scheduled) if at_s > due_s),
    }


def role_ready_lags(runner: _Runner, args: argparse.Namespace) -> dict[str, Any]:
    """Report how long after their due time scheduled tasks became ready, where recorded."""
    ids_path = args.due_file + ".ids"
    if not os.path.exists(ids_path):
        return {"lags_ms": None}
    ids: dict[int, str] = {}
    with open(ids_path, encoding="utf-8") as f:
        for line in f:
            seq_text, task_id = line.split()
            ids[int(seq_text)] = task_id
    os.unlink(ids_path)
    return {"lags_ms": runner.call(runner.driver.ready_lags_ms, ids)}


ROLES: dict[str, Callable[[_Runner, argparse.Namespace], dict[str, Any]]] = {
    "enqueue": role_enqueue,
    "pace": role_pace,
    "schedule": role_schedule,
    "ready-lags": role_ready_lags,
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.peers SYSTEM",
        description="Benchmark driver for one queue system.",
    )
    sub = parser.add_subparsers(dest="role", required=True)

    enqueue = sub.add_parser("enqueue", help="enqueue N tasks and print the elapsed time as JSON")
    enqueue.add_argument("--n", type=int, required=True, help="number of tasks")
    enqueue.add_argument(
        "--start-seq", type=int, default=0, help="sequence number of the first task"
    )
    enqueue.add_argument("--bulk", action="store_true", help="use the system's bulk enqueue API")
    enqueue.add_argument("--chunk", type=int, default=1000, help="tasks per bulk call")
    enqueue.add_argument(
        "--time-limit-s", type=float, default=60.0, help="stop early after this many seconds"
    )

    pace = sub.add_parser("pace", help="enqueue at a fixed rate and write ready times")
    pace.add_argument("--rate", type=float, required=True, help="offered load in tasks per second")
    pace.add_argument(
        "--duration-s", type=float, default=1.0, help="length of the paced run in seconds"
    )
    pace.add_argument("--n", type=int, default=0, help="number of tasks; overrides --duration-s")
    pace.add_argument("--start-seq", type=int, default=0)
    pace.add_argument(
        "--warm-seq",
        type=int,
        default=-1,
        help="sequence number of an untimed task sent first (-1: none)",
    )
    pace.add_argument(
        "--pause-s",
        type=float,
        default=0.0,
        help="seconds between the untimed task and the first paced task",
    )
    pace.add_argument(
        "--ready-file", required=True, help="output file of 'seq ready_s call_s' lines"
    )

    sched = sub.add_parser("schedule", help="schedule delayed tasks and write due times")
    sched.add_argument("--n", type=int, required=True)
    sched.add_argument("--start-seq", type=int, default=0)
    sched.add_argument(
        "--lead-s", type=float, required=True, help="seconds from now to the first due time"
    )
    sched.add_argument(
        "--span-s", type=float, required=True, help="seconds over which due times are spread"
    )
    sched.add_argument("--bulk", action="store_true", help="use the system's bulk schedule call")
    sched.add_argument("--chunk", type=int, default=1000)
    sched.add_argument("--due-file", required=True, help="output file of 'seq due_s' lines")

    lags = sub.add_parser("ready-lags", help="print due-to-ready lags of scheduled tasks as JSON")
    lags.add_argument("--due-file", required=True, help="the due file written by the schedule role")

    sub.add_parser(
        "serve",
        help="read one role command line per stdin line (JSON list) and reply "
        "with one JSON line each, over one open connection",
    )

    worker = sub.add_parser("worker", help="replace this process with the system's worker")
    worker.add_argument("--mode", required=True)
    worker.add_argument("--concurrency", type=int, default=1)
    worker.add_argument(
        "--scheduler", action="store_true", help="also run the system's scheduler for delayed tasks"
    )
    return parser


def _serve(runner: _Runner, parser: argparse.ArgumentParser) -> None:
    """Run role commands from stdin until it closes, replying with one JSON line each.

    A failing command gets an ``error`` reply and does not end the loop.
    """
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            args = parser.parse_args(json.loads(line))
            if args.role not in ROLES:
                raise ValueError(f"role {args.role!r} cannot run inside serve")
            result = ROLES[args.role](runner, args)
        except Exception as exc:  # noqa: BLE001 - reported to the harness, which raises it
            log.exception("command failed: %s", line.strip())
            result = {"error": f"{type(exc).__name__}: {exc}"}
        except SystemExit as exc:  # argparse rejected the command line
            result = {"error": f"invalid command {line.strip()}: exit {exc.code}"}
        print(json.dumps(result), flush=True)


def driver_main(driver_factory: Callable[[], Driver], argv: list[str] | None = None) -> int:
    """Command-line entry of a driver: ``python -m benchmarks.peers SYSTEM ROLE ...``."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    driver = driver_factory()

    if args.role == "worker":
        os.environ["BENCH_CONCURRENCY"] = str(args.concurrency)
        cmd = driver.worker_argv(args.mode, args.concurrency, args.scheduler)
        sys.stdout.flush()
        sys.stderr.flush()
        # exec keeps the process id, so the harness signals and measures the worker itself.
        os.execvp(cmd[0], cmd)

    runner = _Runner(driver)
    runner.call(driver.open)
    try:
        if args.role == "serve":
            _serve(runner, parser)
        else:
            print(json.dumps(ROLES[args.role](runner, args)), flush=True)
    finally:
        runner.call(driver.close)
    return 0
