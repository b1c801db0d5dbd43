"""Run every selected system through every phase and collect medians over runs."""

from __future__ import annotations

import datetime as dt
import json
import logging
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from benchmarks import phases
from benchmarks.phases import Bench, Counts, WorkerSession
from benchmarks.redis_server import RedisServer
from benchmarks.stats import summarize
from benchmarks.systems import SYSTEMS, Mode, System
from benchmarks.targets import evaluate_targets

log = logging.getLogger(__name__)

# A system whose measured rate is below this multiple of an offered rate is saturated at
# that rate, so its pickup latency would measure a growing backlog; that cell is skipped.
SATURATION_MARGIN = 1.25


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
    import os

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
    def _guard(self, what: str, errors: list[str], fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - one failing phase must not end a 25-minute run
            log.error("%s failed: %s", what, exc)
            errors.append(f"{what}: {exc}")
            return None

    def run_system(self, system: System) -> dict[str, Any]:
        bench = self.bench
        errors: list[str] = []
        out: dict[str, Any] = {
            "title": system.title,
            "version": system.version(),
            "guarantee": system.guarantee,
            "floor": system.floor,
            "errors": errors,
        }
        log.info("== %s %s", system.name, out["version"])

        one, bulk, memory = [], [], []
        for run in range(self.runs):
            rates = self._guard(f"{system.name} enqueue run {run}", errors,
                                lambda: phases.enqueue_rates(bench, system)) or {}
            one.append(rates.get("one_per_s"))
            bulk.append(rates.get("bulk_per_s"))
            memory.append(self._guard(f"{system.name} memory run {run}", errors,
                                      lambda: phases.memory_per_task(bench, system)))
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
                out["delayed"] = self.run_delayed(system, best, e2e_best,
                                                  _median_value(out["enqueue_one_per_s"]) or 100.0, errors)
            out["scaling"] = self.run_scaling(system, best, e2e_best, errors)
        return out

    def best_mode(self, system: System, modes: dict[str, Any]) -> Mode | None:
        scored = [(_median_value(modes[mode.name]["tasks_per_s"]) or 0.0, mode) for mode in system.modes]
        scored = [item for item in scored if item[0] > 0]
        return max(scored, key=lambda item: item[0])[1] if scored else None

    def run_mode(self, system: System, mode: Mode, errors: list[str]) -> dict[str, Any]:
        bench = self.bench
        counts = bench.counts
        per_run: list[dict[str, Any]] = []
        for run in range(self.runs):
            log.info("%s/%s run %d", system.name, mode.name, run + 1)
            row: dict[str, Any] = {}
            bench.flush()

            def one_session() -> None:
                with WorkerSession(bench, system, mode) as session:
                    e2e = phases.end_to_end(session)
                    row["e2e"] = e2e
                    rate = e2e["tasks_per_s"]
                    row["monitor"] = self._guard(f"{system.name}/{mode.name} monitor", errors,
                                                 lambda: phases.monitored_commands(session, rate))
                    row["pickup"] = {}
                    for offered in counts.latency_rates:
                        if rate < SATURATION_MARGIN * offered:
                            row["pickup"][str(offered)] = {"skipped": f"saturated: {rate:.0f} tasks/s measured"}
                            continue
                        row["pickup"][str(offered)] = self._guard(
                            f"{system.name}/{mode.name} pickup at {offered}/s", errors,
                            lambda: phases.pickup_latency(session, offered))
                    row["idle_pickup_ms"] = self._guard(f"{system.name}/{mode.name} idle pickup", errors,
                                                        lambda: phases.idle_pickup(session))

            self._guard(f"{system.name}/{mode.name} run {run}", errors, one_session)
            per_run.append(row)
        return self.summarize_mode(mode, per_run)

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
            "redis_cmds_per_task_enqueue_bulk": summarize(pick(["e2e", "redis_cmds_per_task_enqueue_bulk"])),
            "client_cmds_per_task_enqueue": summarize(pick(["monitor", "client_cmds_per_task_enqueue"])),
            "script_cmds_per_task_enqueue": summarize(pick(["monitor", "script_cmds_per_task_enqueue"])),
            "client_cmds_per_task_worker": summarize(pick(["monitor", "client_cmds_per_task_worker"])),
            "script_cmds_per_task_worker": summarize(pick(["monitor", "script_cmds_per_task_worker"])),
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

    def run_delayed(self, system: System, mode: Mode, e2e_rate: float, enqueue_rate: float,
                    errors: list[str]) -> dict[str, Any]:
        bench = self.bench
        per_run: list[dict[str, Any] | None] = []
        for run in range(self.runs):
            log.info("%s delayed tasks run %d (%s)", system.name, run + 1, mode.name)
            bench.flush()

            def one() -> dict[str, Any]:
                with WorkerSession(bench, system, mode, scheduler=True) as session:
                    return phases.delayed_lag(session, enqueue_rate, e2e_rate)

            per_run.append(self._guard(f"{system.name} delayed run {run}", errors, one))

        def pick(*path: str) -> list[float | None]:
            values: list[float | None] = []
            for row in per_run:
                node: Any = row
                for key in path:
                    node = node.get(key) if isinstance(node, dict) else None
                values.append(node if isinstance(node, (int, float)) else None)
            return values

        return {
            "mode": mode.name,
            "offered_per_s": summarize(pick("offered_per_s")),
            "started_p50_ms": summarize(pick("started", "p50_ms")),
            "started_p99_ms": summarize(pick("started", "p99_ms")),
            "ready_p50_ms": summarize(pick("ready", "p50_ms")),
            "ready_p99_ms": summarize(pick("ready", "p99_ms")),
            "runs": per_run,
        }

    def run_scaling(self, system: System, mode: Mode, e2e_rate: float, errors: list[str]) -> dict[str, Any]:
        bench = self.bench
        result: dict[str, Any] = {"mode": mode.name, "processes": {}}
        for processes in bench.counts.scaling_processes:
            values: list[float | None] = []
            for run in range(self.runs):
                log.info("%s scaling: %d processes, run %d", system.name, processes, run + 1)
                bench.flush()

                def one() -> float:
                    with WorkerSession(bench, system, mode, processes=processes) as session:
                        e2e = phases.end_to_end(session, expected_rate_per_s=e2e_rate * processes)
                        if e2e["processes_seen"] < processes:
                            log.warning("%s scaling: %d of %d processes ran measured tasks",
                                        system.name, e2e["processes_seen"], processes)
                        return float(e2e["tasks_per_s"])

                values.append(self._guard(f"{system.name} scaling p{processes} run {run}", errors, one))
            result["processes"][str(processes)] = summarize(values)
        return result

    def run_growth(self) -> dict[str, Any]:
        """Measure taskq's claim gap at growing depths and the promoter's idle cost."""
        bench = self.bench
        counts = bench.counts
        system = SYSTEMS["taskq"]
        mode = system.modes[0]
        errors: list[str] = []
        out: dict[str, Any] = {"mode": mode.name, "depths": {}, "errors": errors}
        for depth in counts.growth_depths:
            runs: list[dict[str, Any] | None] = []
            refill_each_run = depth < (counts.growth_skip_n + counts.growth_sample_n) * (self.runs + 1) * 10
            for run in range(self.runs):
                if run == 0 or refill_each_run:
                    bench.flush()
                    log.info("taskq growth: filling %d ready tasks", depth)
                    fill_s = phases.fill(bench, system, depth)
                    log.info("taskq growth: filled %d tasks in %.1f s", depth, fill_s)
                sample = min(counts.growth_sample_n, depth - counts.growth_skip_n - 1)

                def one() -> dict[str, Any]:
                    session = WorkerSession(bench, system, mode)
                    session.group.start()
                    try:
                        return phases.claim_gaps(session, depth, sample, counts.growth_skip_n)
                    finally:
                        session.group.stop()

                runs.append(self._guard(f"taskq claim gap depth {depth} run {run}", errors, one))
            out["depths"][str(depth)] = {
                "gap_p50_ms": summarize([r["gap_p50_ms"] if r else None for r in runs]),
                "gap_p99_ms": summarize([r["gap_p99_ms"] if r else None for r in runs]),
                "script_us_per_call": summarize([r["script_us_per_call"] if r else None for r in runs]),
                "runs": runs,
            }
        out["promoter"] = self.run_promoter_cost(system, mode, errors)
        bench.flush()
        return out

    def run_promoter_cost(self, system: System, mode: Mode, errors: list[str]) -> dict[str, Any]:
        bench = self.bench
        counts = bench.counts
        result: dict[str, Any] = {}
        for scheduled in (0, counts.promoter_scheduled_n):
            bench.flush()
            if scheduled:
                log.info("taskq promoter: scheduling %d tasks due in an hour", scheduled)
                phases.fill(bench, system, scheduled, scheduled_far=True)
            windows: list[dict[str, float] | None] = []
            lags: list[dict[str, Any] | None] = []

            def one() -> None:
                with WorkerSession(bench, system, mode, scheduler=True) as session:
                    for _ in range(self.runs):
                        windows.append(phases.idle_costs(session, counts.promoter_window_s))
                    for _ in range(self.runs):
                        lags.append(self._delayed_probe(session))

            self._guard(f"taskq promoter cost with {scheduled} scheduled", errors, one)
            key = str(scheduled)
            result[key] = {
                name: summarize([w[name] if w else None for w in windows])
                for name in ("worker_cpu_ms_per_s", "redis_cpu_ms_per_s", "redis_cmds_per_s", "script_ms_per_s")
            }
            result[key]["probe_started_p99_ms"] = summarize(
                [lag["started"]["p99_ms"] if lag else None for lag in lags])
            result[key]["probe_ready_p99_ms"] = summarize(
                [lag["ready"]["p99_ms"] if lag and "ready" in lag else None for lag in lags])
        return result

    def _delayed_probe(self, session: WorkerSession) -> dict[str, Any]:
        """Schedule a small batch due over one second beside the far-future backlog."""
        bench = session.bench
        saved = bench.counts
        probe = Counts(**{**saved.__dict__, "delayed_n": saved.promoter_probe_n, "delayed_span_s": 1.0})
        bench.counts = probe
        try:
            return phases.delayed_lag(session, enqueue_rate_per_s=1000.0, e2e_rate_per_s=0.0)
        finally:
            bench.counts = saved


def run(args: Any) -> Path:
    """Run the benchmark described by parsed command-line ``args``; return the JSON path."""
    counts = phases.QUICK if args.quick else phases.FULL
    names = args.systems or list(SYSTEMS)
    unknown = [name for name in names if name not in SYSTEMS]
    if unknown:
        raise SystemExit(f"unknown system(s): {', '.join(unknown)}; choose from {', '.join(SYSTEMS)}")
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
            "redis_server": server.version(),
            "redis_py": _version("redis"),
            "hiredis": _version("hiredis"),
        }
        harness = Harness(bench, selected, args.runs)
        for system in selected:
            results[system.name] = harness.run_system(system)
        growth = None
        if "taskq" in [s.name for s in selected] and not args.skip_growth:
            growth = harness.run_growth()
        meta["elapsed_s"] = round(time.monotonic() - started_s, 1)
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


def _version(distribution: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None
