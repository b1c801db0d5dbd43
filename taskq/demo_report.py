"""Check a finished ``taskq demo`` run against Redis and format its summary.

Every figure comes from Redis: the queue's counters and histograms (one snapshot) and the record
and result of each task the run enqueued. In-process counters are never used, so tasks run by
worker processes elsewhere count exactly like the demo's own.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from taskq import demo_tasks
from taskq.snapshot import take_snapshot
from taskq.task import State, TaskRecord

if TYPE_CHECKING:
    from taskq.app import App
    from taskq.demo import WorkItem

READ_CHUNK = 500
# At most this many problems are listed one by one; the rest are counted.
MAX_PROBLEMS_SHOWN = 10


@dataclass
class DemoSummary:
    """The outcome of one demo run as read back from Redis; ``ok`` decides the exit code."""

    queue: str
    ending: str
    tasks: int
    expected_succeeded: int
    expected_dead: int
    succeeded: int = 0
    dead: int = 0
    retried: int = 0
    recovered: int = 0
    elapsed_s: float = 0.0
    wait_p50_ms: float | None = None
    wait_p99_ms: float | None = None
    by_worker: dict[str, int] = field(default_factory=dict)
    local_worker: str | None = None
    file_bytes: int = 0
    file_lines: int = 0
    file_words: int = 0
    compressed_bytes: float = 0.0
    dead_rows: list[tuple[str, str, int]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    backend: str = ""
    run_id: str = ""

    @property
    def ok(self) -> bool:
        return self.ending == "done" and not self.problems

    @property
    def exit_code(self) -> int:
        """0 on success, 130 after Ctrl-C (the shell convention for SIGINT), else 1."""
        if self.ok:
            return 0
        return 130 if self.ending == "interrupted" else 1

    @property
    def throughput_per_s(self) -> float:
        finished = self.succeeded + self.dead
        return finished / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def lines(self) -> list[str]:
        """Return the summary as printable lines."""
        def ms(value: float | None) -> str:
            return "-" if value is None else f"{value:.1f} ms"

        ratio = self.compressed_bytes / self.file_bytes if self.file_bytes else 0.0
        out = [
            f"summary of run {self.run_id} (queue {self.queue!r} at {self.backend})",
            f"  tasks        {self.tasks}  ({self.expected_succeeded} expected to succeed, "
            f"{self.expected_dead} known bad inputs expected dead)",
            f"  succeeded    {self.succeeded}",
            f"  retried      {self.retried}  (failed attempts given another try)",
            f"  recovered    {self.recovered}  (tasks returned to ready after a lease expired)",
            f"  dead         {self.dead}",
            f"  throughput   {self.throughput_per_s:.1f} tasks/s  ({self.succeeded + self.dead}"
            f" finished in {self.elapsed_s:.2f} s wall time, including delays and retries)",
            f"  queue wait   p50 {ms(self.wait_p50_ms)}, p99 {ms(self.wait_p99_ms)}  (estimated "
            "inside histogram buckets about 26 % wide)",
            f"  files read   {self.file_bytes / 1e6:.1f} MB, {self.file_lines} lines, "
            f"{self.file_words} words, zlib ratio {ratio:.3f}",
        ]
        for worker, count in sorted(self.by_worker.items(), key=lambda kv: -kv[1]):
            mark = "  (this process)" if worker == self.local_worker else ""
            out.append(f"  worker       {worker}: {count} tasks{mark}")
        for label, error, attempts in self.dead_rows:
            out.append(f"  dead         {label}: {error} after {attempts} attempts")
        if self.ok:
            out.append(f"OK: all {self.succeeded} file tasks succeeded and exactly the "
                       f"{self.dead} known bad inputs are dead.")
        else:
            out.append("FAILED:")
            shown = self.problems[:MAX_PROBLEMS_SHOWN]
            out.extend(f"  - {problem}" for problem in shown)
            if len(self.problems) > len(shown):
                out.append(f"  - and {len(self.problems) - len(shown)} more problems")
        return out


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def read_records(app: App, queue: str, task_ids: list[str]
                 ) -> dict[str, tuple[TaskRecord | None, Any]]:
    """Read the record and result of each task id, READ_CHUNK ids per round trip."""
    keys = app.keys.queue(queue)
    out: dict[str, tuple[TaskRecord | None, Any]] = {}
    for start in range(0, len(task_ids), READ_CHUNK):
        part = task_ids[start:start + READ_CHUNK]
        pipe = app.client.pipeline(transaction=False)
        pipe.hmget(keys.tasks, part)
        pipe.hmget(keys.results, part)
        raw_records, raw_results = pipe.execute()
        for task_id, raw, result in zip(part, raw_records, raw_results):
            rec = None if raw is None else TaskRecord.from_json(_text(raw))
            out[task_id] = (rec, None if result is None else json.loads(result))
    return out


def _error_text(rec: TaskRecord) -> str:
    error = rec.error or {}
    return f"{error.get('type', '?')}: {str(error.get('message', ''))[:120]}"


def _check_item(summary: DemoSummary, item: WorkItem, rec: TaskRecord | None,
                result: Any) -> None:
    if rec is None:
        summary.problems.append(f"{item.label}: its task record is missing from Redis")
        return
    if rec.worker:
        summary.by_worker[rec.worker] = summary.by_worker.get(rec.worker, 0) + 1
    if item.expect_dead:
        if rec.state is State.DEAD:
            error_type = str((rec.error or {}).get("type"))
            summary.dead_rows.append((item.label, error_type, rec.attempts))
            if error_type != item.expect_error:
                summary.problems.append(
                    f"{item.label}: dead with {_error_text(rec)}, expected {item.expect_error} "
                    f"({item.reason})")
            if rec.attempts != demo_tasks.MAX_RETRIES + 1:
                summary.problems.append(
                    f"{item.label}: dead after {rec.attempts} attempts, expected "
                    f"{demo_tasks.MAX_RETRIES + 1} (one plus {demo_tasks.MAX_RETRIES} retries)")
        else:
            summary.problems.append(
                f"{item.label}: expected dead ({item.reason}) but it is {rec.state.value}")
        return
    if rec.state is not State.SUCCEEDED:
        detail = f" ({_error_text(rec)})" if rec.error else ""
        summary.problems.append(f"{item.label}: expected succeeded but it is "
                                f"{rec.state.value}{detail}")
        return
    if isinstance(result, dict):
        size = int(result.get("bytes", 0))
        summary.file_bytes += size
        summary.file_lines += int(result.get("lines", 0))
        summary.file_words += int(result.get("words", 0))
        summary.compressed_bytes += float(result.get("compression_ratio") or 0.0) * size


def verify_run(app: App, queue: str, items: list[WorkItem], ending: str, elapsed_s: float,
               local_worker: str | None, timeout_s: float) -> DemoSummary:
    """Read the run back from Redis and compare each task with the outcome the plan expects."""
    expected_dead = sum(1 for item in items if item.expect_dead)
    summary = DemoSummary(queue=queue, ending=ending, tasks=len(items),
                          expected_succeeded=len(items) - expected_dead,
                          expected_dead=expected_dead, elapsed_s=elapsed_s,
                          local_worker=local_worker)
    snap = take_snapshot(app, [queue])
    view = snap.queues[queue]
    summary.retried = view.counters.get("retried", 0)
    summary.recovered = view.counters.get("recovered", 0)
    summary.wait_p50_ms = snap.wait_percentile_ms(0.5)
    summary.wait_p99_ms = snap.wait_percentile_ms(0.99)

    records = read_records(app, queue, [item.task_id for item in items])
    states = Counter(rec.state for rec, _ in records.values() if rec is not None)
    summary.succeeded = states[State.SUCCEEDED]
    summary.dead = states[State.DEAD]
    if ending == "timeout":
        summary.problems.append(
            f"the workload did not finish within --timeout {timeout_s:g} s: {view.ready} "
            f"ready, {view.scheduled} scheduled, {view.active} active")
    elif ending == "interrupted":
        summary.problems.append("interrupted (Ctrl-C) before the workload finished")
    unfinished = 0
    for item in items:
        rec, result = records[item.task_id]
        if ending != "done" and rec is not None and not rec.state.terminal:
            # Listing each task the run never reached would bury the one reason that matters.
            unfinished += 1
            continue
        _check_item(summary, item, rec, result)
    if unfinished:
        summary.problems.insert(1, f"{unfinished} tasks had not finished")

    counted = view.counters.get("succeeded", 0)
    if ending == "done" and counted != summary.succeeded:
        summary.problems.append(
            f"the queue's succeeded counter is {counted} but {summary.succeeded} task records "
            "are succeeded")
    return summary
