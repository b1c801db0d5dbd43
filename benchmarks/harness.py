"""Run every selected system through every phase and collect medians over runs."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks import phases
from benchmarks.phases import Bench, WorkerSession
from benchmarks.redis_server import RedisServer
from benchmarks.stats import summarize
from benchmarks.systems import SYSTEMS, Mode, System
from benchmarks.targets import evaluate_targets

log = logging.getLogger(__name__)

# A system whose measured rate is below this multiple of an offered rate is saturated at that
# rate. Its pickup latency there would measure a growing backlog, so that cell is skipped.
SATURATION_MARGIN = 1.25
# The delayed-task probe beside a large scheduled backlog spreads its due times over this span.
PROBE_SPAN_S = 1.0
# A growth depth is refilled before every run unless it contains this many times the tasks
# that all runs consume.
GROWTH_REFILL_FACTOR = 10


def machine_info() -> dict[str, Any]:
    cpu_model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import psutil

    return {
        "cpu_model": cpu_model,
        "logical_cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def _median_value(figure: dict[str, Any] | None) -> float | None:
    return None if figure is None else figure.get("median")


class Harness:
    def __init__(self, bench: Bench, systems: list[System], runs: int) -> None:
        self.bench = bench
        self.systems = systems
        self.runs = runs
        self.results: dict[str, Any] = {}

    # Each phase call is guarded: a failure is logged and recorded, and the run goes on.
    def _guard(self, phase: str, errors: list[str], fn: Callable[..., Any], *args: Any) -> Any:
        start_s = time.monotonic()
        try:
            return fn(*args)
        except Exception as exc:  # noqa: BLE001 - one failing phase must not end a 25-minute run
            log.error("%s failed: %s", phase, exc)
            errors.append(f"{phase}: {exc}")
            return None
        finally:
            log.debug("%s took %.1f s", phase, time.monotonic() - start_s)

    def run_system(self, system: System) -> dict[str, Any]:
        bench = self.bench
        errors: list[str] = []
        out: dict[str, Any] = {
            "title": system.title,
            "version": system.version(self.bench.pythons.get(system.name)),
            "redis_py": _redis_py_version(self.bench.pythons.get(system.name)),
            "guarantee": system.guarantee,
            "floor": system.floor,
            "errors": errors,
        }
        log.info("== %s %s", system.name, out["version"])

        one, bulk, memory = [], [], []
        for run in range(self.runs):
            rates = (
                self._guard(
                    f"{system.name} enqueue run {run}",
                    errors,
                    lambda: phases.enqueue_rates(bench, system),
                )
                or {}
            )
            one.append(rates.get("one_per_s"))
            bulk.append(rates.get("bulk_per_s"))
            memory.append(
                self._guard(
                    f"{system.name} memory run {run}",
                    errors,
                    lambda: phases.memory_per_task(bench, system),
                )
            )
        out["enqueue_one_per_s"] = summarize(one)
        out["enqueue_bulk_per_s"] = summarize(bulk)
        out["memory_bytes_per_task"] = summarize(memory)

        out["modes"] = {}
        for mode in system.modes:
            out["modes"][mode.name] = self.run_mode(system, mode, errors)

        best = self.best_mode(system, out["modes"])
        out["best_mode"] = best.name if best else None
        if best is not None:
            e2e_best = _median_value(out["modes"][best.name]["tasks_per_s"]) or 0.0
            if system.schedules:
                out["delayed"] = self.run_delayed(
                    system, best, e2e_best, _median_value(out["enqueue_one_per_s"]) or 100.0, errors
                )
            out["scaling"] = self.run_scaling(system, best, e2e_best, errors)
        return out

    def best_mode(self, system: System, modes: dict[str, Any]) -> Mode | None:
        scored = [
            (_median_value(modes[mode.name]["tasks_per_s"]) or 0.0, mode) for mode in system.modes
        ]
        scored = [item for item in scored if item[0] > 0]
        return max(scored, key=lambda item: item[0])[1] if scored else None

    def run_mode(self, system: System, mode: Mode, errors: list[str]) -> dict[str, Any]:
        per_run: list[dict[str, Any]] = []
        for run in range(self.runs):
            log.info("%s/%s run %d", system.name, mode.name, run + 1)
            row: dict[str, Any] = {}
            self.bench.flush()
            self._guard(
                f"{system.name}/{mode.name} run {run}",
                errors,
                self._mode_session,
                system,
                mode,
                row,
                errors,
            )
            per_run.append(row)
        return self.summarize_mode(mode, per_run)

    def _mode_session(
        self, system: System, mode: Mode, row: dict[str, Any], errors: list[str]
    ) -> None:
        """Run every single-worker phase of one mode in one worker session, filling ``row``."""
        label = f"{system.name}/{mode.name}"
        with WorkerSession(self.bench, system, mode) as session:
            e2e = phases.end_to_end(session)
            row["e2e"] = e2e
            rate = e2e["tasks_per_s"]
            row["monitor"] = self._guard(
                f"{label} monitor", errors, phases.monitored_commands, session, rate
            )
            row["pickup"] = {}
            for offered in self.bench.counts.latency_rates:
                if rate < SATURATION_MARGIN * offered:
                    row["pickup"][str(offered)] = {
                        "skipped": f"saturated: {rate:.0f} tasks/s measured"
                    }
                    continue
                row["pickup"][str(offered)] = self._guard(
                    f"{label} pickup at {offered}/s",
                    errors,
                    phases.pickup_latency,
                    session,
                    offered,
                )
            row["idle_pickup_ms"] = self._guard(
                f"{label} idle pickup", errors, phases.idle_pickup, session
            )

    def summarize_mode(self, mode: Mode, per_run: list[dict[str, Any]]) -> dict[str, Any]:
        def pick(path: list[str]) -> list[float | None]:
            values: list[float | None] = []
            for row in per_run:
                node: Any = row
                for key in path:
                    node = node.get(key) if isinstance(node, dict) else None
                values.append(node if isinstance(node, (int, float)) else None)
            return values

        result: dict[str, Any] = {
            "label": mode.label,
            "concurrency": mode.concurrency,
            "tasks_per_s": summarize(pick(["e2e", "tasks_per_s"])),
            "worker_cpu_us_per_task": summarize(pick(["e2e", "worker_cpu_us_per_task"])),
            "redis_cmds_per_task_worker": summarize(pick(["e2e", "redis_cmds_per_task_worker"])),
            "redis_cmds_per_task_enqueue_bulk": summarize(
                pick(["e2e", "redis_cmds_per_task_enqueue_bulk"])
            ),
            "client_cmds_per_task_enqueue": summarize(
                pick(["monitor", "client_cmds_per_task_enqueue"])
            ),
            "script_cmds_per_task_enqueue": summarize(
                pick(["monitor", "script_cmds_per_task_enqueue"])
            ),
            "client_cmds_per_task_worker": summarize(
                pick(["monitor", "client_cmds_per_task_worker"])
            ),
            "script_cmds_per_task_worker": summarize(
                pick(["monitor", "script_cmds_per_task_worker"])
            ),
            "idle_pickup_ms": summarize(pick(["idle_pickup_ms"])),
            "pickup": {},
            "runs": per_run,
        }
        for offered in self.bench.counts.latency_rates:
            key = str(offered)
            skipped = [row.get("pickup", {}).get(key, {}) for row in per_run]
            if skipped and all(isinstance(cell, dict) and "skipped" in cell for cell in skipped):
                result["pickup"][key] = {"skipped": skipped[0]["skipped"]}
                continue
            result["pickup"][key] = {
                "p50_ms": summarize(pick(["pickup", key, "p50_ms"])),
                "p99_ms": summarize(pick(["pickup", key, "p99_ms"])),
            }
        return result

    def run_delayed(
        self, system: System, mode: Mode, e2e_rate: float, enqueue_rate: float, errors: list[str]
    ) -> dict[str, Any]:
        """Measure delayed-task lag; the runs share one worker session, one after another."""
        log.info("%s delayed tasks, %d runs (%s)", system.name, self.runs, mode.name)
        self.bench.flush()
        per_run: list[dict[str, Any] | None] = []
        self._guard(
            f"{system.name} delayed session",
            errors,
            self._delayed_session,
            system,
            mode,
            enqueue_rate,
            e2e_rate,
            per_run,
            errors,
        )
        per_run += [None] * (self.runs - len(per_run))
        return {
            "mode": mode.name,
            "offered_per_s": summarize(_pick(per_run, "offered_per_s")),
            "started_p50_ms": summarize(_pick(per_run, "started", "p50_ms")),
            "started_p99_ms": summarize(_pick(per_run, "started", "p99_ms")),
            "ready_p50_ms": summarize(_pick(per_run, "ready", "p50_ms")),
            "ready_p99_ms": summarize(_pick(per_run, "ready", "p99_ms")),
            "runs": per_run,
        }

    def _delayed_session(
        self,
        system: System,
        mode: Mode,
        enqueue_rate: float,
        e2e_rate: float,
        per_run: list[dict[str, Any] | None],
        errors: list[str],
    ) -> None:
        with WorkerSession(self.bench, system, mode, scheduler=True) as session:
            for run in range(self.runs):
                per_run.append(
                    self._guard(
                        f"{system.name} delayed run {run}",
                        errors,
                        phases.delayed_lag,
                        session,
                        enqueue_rate,
                        e2e_rate,
                    )
                )

    def run_scaling(
        self, system: System, mode: Mode, e2e_rate: float, errors: list[str]
    ) -> dict[str, Any]:
        """Measure throughput with 1, 2 and 4 worker processes; runs share one session each."""
        result: dict[str, Any] = {"mode": mode.name, "processes": {}}
        for processes in self.bench.counts.scaling_processes:
            log.info("%s scaling: %d processes, %d runs", system.name, processes, self.runs)
            self.bench.flush()
            values: list[float | None] = []
            self._guard(
                f"{system.name} scaling p{processes} session",
                errors,
                self._scaling_session,
                system,
                mode,
                processes,
                e2e_rate,
                values,
                errors,
            )
            values += [None] * (self.runs - len(values))
            result["processes"][str(processes)] = summarize(values)
        return result

    def _scaling_session(
        self,
        system: System,
        mode: Mode,
        processes: int,
        e2e_rate: float,
        values: list[float | None],
        errors: list[str],
    ) -> None:
        with WorkerSession(self.bench, system, mode, processes=processes) as session:
            for run in range(self.runs):
                e2e = self._guard(
                    f"{system.name} scaling p{processes} run {run}",
                    errors,
                    phases.end_to_end,
                    session,
                    e2e_rate * processes,
                )
                if e2e is not None and e2e["processes_seen"] < processes:
                    log.warning(
                        "%s scaling: %d of %d processes ran measured tasks",
                        system.name,
                        e2e["processes_seen"],
                        processes,
                    )
                values.append(float(e2e["tasks_per_s"]) if e2e is not None else None)

    def run_growth(self) -> dict[str, Any]:
        """Measure taskq's claim gap at growing depths and the promoter's idle cost."""
        bench = self.bench
        counts = bench.counts
        system = SYSTEMS["taskq"]
        mode = system.modes[0]
        errors: list[str] = []
        out: dict[str, Any] = {"mode": mode.name, "depths": {}, "errors": errors}
        for depth in counts.growth_depths:
            # Each run consumes skip + sample tasks; a deep queue is filled once and stays
            # within a few percent of its depth over all runs.
            consumed = (counts.growth_skip_n + counts.growth_sample_n) * self.runs
            refill_each_run = consumed * GROWTH_REFILL_FACTOR > depth
            sample = min(counts.growth_sample_n, depth - counts.growth_skip_n - 1)
            runs: list[dict[str, Any] | None] = []
            for run in range(self.runs):
                if run == 0 or refill_each_run:
                    bench.flush()
                    log.info("taskq growth: filling %d ready tasks", depth)
                    fill_s = phases.fill(bench, system, depth)
                    log.info("taskq growth: filled %d tasks in %.1f s", depth, fill_s)
                runs.append(
                    self._guard(
                        f"taskq claim gap depth {depth} run {run}",
                        errors,
                        self._claim_session,
                        system,
                        mode,
                        depth,
                        sample,
                    )
                )
            out["depths"][str(depth)] = {
                "gap_p50_ms": summarize(_pick(runs, "gap_p50_ms")),
                "gap_p99_ms": summarize(_pick(runs, "gap_p99_ms")),
                "script_us_per_call": summarize(_pick(runs, "script_us_per_call")),
                "runs": runs,
            }
        out["promoter"] = self.run_promoter_cost(system, mode, errors)
        bench.flush()
        return out

    def _claim_session(self, system: System, mode: Mode, depth: int, sample: int) -> dict[str, Any]:
        # No warm-up here: the queue is already deep, and the first tasks are skipped instead.
        session = WorkerSession(self.bench, system, mode)
        session.group.start()
        try:
            return phases.claim_gaps(session, depth, sample, self.bench.counts.growth_skip_n)
        finally:
            session.group.stop()

    def run_promoter_cost(self, system: System, mode: Mode, errors: list[str]) -> dict[str, Any]:
        bench = self.bench
        result: dict[str, Any] = {}
        for scheduled in (0, bench.counts.promoter_scheduled_n):
            bench.flush()
            if scheduled:
                log.info("taskq promoter: scheduling %d tasks due in an hour", scheduled)
                phases.fill(bench, system, scheduled, scheduled_far=True)
            windows: list[dict[str, float] | None] = []
            probes: list[dict[str, Any] | None] = []
            self._guard(
                f"taskq promoter cost with {scheduled} scheduled",
                errors,
                self._promoter_session,
                system,
                mode,
                windows,
                probes,
                errors,
            )
            row = {
                name: summarize(_pick(windows, name))
                for name in (
                    "worker_cpu_ms_per_s",
                    "redis_cpu_ms_per_s",
                    "redis_cmds_per_s",
                    "script_ms_per_s",
                )
            }
            row["probe_started_p99_ms"] = summarize(_pick(probes, "started", "p99_ms"))
            row["probe_ready_p99_ms"] = summarize(_pick(probes, "ready", "p99_ms"))
            result[str(scheduled)] = row
        return result

    def _promoter_session(
        self,
        system: System,
        mode: Mode,
        windows: list[dict[str, float] | None],
        probes: list[dict[str, Any] | None],
        errors: list[str],
    ) -> None:
        with WorkerSession(self.bench, system, mode, scheduler=True) as session:
            for run in range(self.runs):
                windows.append(
                    self._guard(
                        f"taskq idle costs run {run}",
                        errors,
                        phases.idle_costs,
                        session,
                        self.bench.counts.promoter_window_s,
                    )
                )
            for run in range(self.runs):
                probes.append(
                    self._guard(
                        f"taskq delayed probe run {run}", errors, self._delayed_probe, session
                    )
                )

    def _delayed_probe(self, session: WorkerSession) -> dict[str, Any]:
        """Schedule a small batch due over ``PROBE_SPAN_S`` beside the far-future backlog."""
        bench = session.bench
        saved = bench.counts
        bench.counts = replace(saved, delayed_n=saved.promoter_probe_n, delayed_span_s=PROBE_SPAN_S)
        try:
            return phases.delayed_lag(session, enqueue_rate_per_s=1000.0, e2e_rate_per_s=0.0)
        finally:
            bench.counts = saved


def _pick(rows: list[dict[str, Any] | None], *path: str) -> list[float | None]:
    """Return the number at ``path`` in each row, or None where a row or key is missing."""
    values: list[float | None] = []
    for row in rows:
        node: Any = row
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        values.append(node if isinstance(node, (int, float)) else None)
    return values


def run(args: Any) -> Path:
    """Run the benchmark described by parsed command-line ``args``; return the JSON path."""
    counts = phases.QUICK if args.quick else phases.FULL
    names = args.systems or list(SYSTEMS)
    unknown = [name for name in names if name not in SYSTEMS]
    if unknown:
        raise SystemExit(
            f"unknown system(s): {', '.join(unknown)}; choose from {', '.join(SYSTEMS)}"
        )
    pythons = dict(args.python or {})

    selected: list[System] = []
    missing: dict[str, str] = {}
    for name in names:
        system = SYSTEMS[name]
        if name in pythons or system.available():
            selected.append(system)
        else:
            missing[name] = f"module {system.module!r} is not importable; install the bench extra"
            log.warning("skipping %s: %s", name, missing[name])

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    repo_root = Path(__file__).resolve().parent.parent
    work_dir = Path(tempfile.mkdtemp(prefix="taskq-bench-"))
    server = RedisServer(work_dir, binary=args.redis_server)
    started_s = time.monotonic()
    results: dict[str, Any] = {}
    try:
        server.start()
        bench = Bench(server, counts, work_dir, pythons, repo_root)
        meta = {
            "date": dt.date.today().isoformat(),
            "started_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(["python -m benchmarks", *sys.argv[1:]]),
            "quick": bool(args.quick),
            "runs": args.runs,
            "counts": counts.__dict__,
            "machine": machine_info(),
            "load_avg_1_5_15_start": [round(value, 2) for value in os.getloadavg()],
            "redis_server": server.version(),
            "redis_py": _version("redis"),
            "hiredis": _version("hiredis"),
        }
        harness = Harness(bench, selected, args.runs)
        for system in selected:
            try:
                results[system.name] = harness.run_system(system)
            finally:
                bench.close_producers()
        growth = None
        if "taskq" in [s.name for s in selected] and not args.skip_growth:
            try:
                growth = harness.run_growth()
            finally:
                bench.close_producers()
        meta["elapsed_s"] = round(time.monotonic() - started_s, 1)
        # Other work on the machine skews every figure, so the run records how busy it was.
        meta["load_avg_1_5_15_end"] = [round(value, 2) for value in os.getloadavg()]
        document = {
            "meta": meta,
            "skipped": missing,
            "systems": results,
            "growth": growth,
        }
        document["targets"] = evaluate_targets(document)
    finally:
        server.stop()
        if args.keep_work_dir:
            log.info("work files kept in %s", work_dir)
        else:
            shutil.rmtree(work_dir, ignore_errors=True)

    stem = out_dir / meta["date"]
    json_path = stem.with_suffix(".json")
    json_path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    from benchmarks.report import write_report

    write_report(document, stem)
    log.info("wrote %s (%.0f s)", json_path, meta["elapsed_s"])
    return json_path


def _redis_py_version(python: str | None) -> str | None:
    """Return the redis-py version a system runs with: the harness's, or its own interpreter's."""
    if python is None:
        return _version("redis")
    return System("redis", "", "redis", "redis", (), "").version(python)


def _version(distribution: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None
