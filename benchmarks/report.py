"""Markdown tables and PNG charts from one results document."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CHART_DPI = 110


def _median(node: Any) -> float | None:
    if isinstance(node, dict) and isinstance(node.get("median"), (int, float)):
        return float(node["median"])
    return None


def _fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}"


def _pair(first: Any, second: Any, digits: int) -> str:
    return f"{_fmt(_median(first), digits)} / {_fmt(_median(second), digits)}"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _header(cells: list[str]) -> list[str]:
    return [_row(cells), "|" + "---|" * len(cells)]


# --- Markdown ------------------------------------------------------------------


def _intro(meta: dict[str, Any]) -> list[str]:
    machine = meta["machine"]
    quick = " (quick counts: the figures are not meaningful)" if meta["quick"] else ""
    return [
        f"Run {meta['started_utc']}: `{meta['command']}`, median of {meta['runs']} runs{quick}.",
        f"Machine: {machine['cpu_model']}, {machine['logical_cpus']} logical CPUs, "
        f"{machine['memory_gib']} GiB, Linux {machine['kernel']}, Python {machine['python']}, "
        f"Redis {meta['redis_server']}, redis-py {meta['redis_py']}, hiredis {meta['hiredis']}.",
        f"Load average (1, 5, 15 min) at start {meta.get('load_avg_1_5_15_start')}, "
        f"at end {meta.get('load_avg_1_5_15_end')}.",
        "",
    ]


def _pickup_cell(mode: dict[str, Any], rate: str) -> str:
    cell = mode.get("pickup", {}).get(rate, {})
    if "skipped" in cell:
        return "saturated"
    return _pair(cell.get("p50_ms"), cell.get("p99_ms"), 2)


def _split_cell(mode: dict[str, Any], enqueue_key: str, worker_key: str) -> str:
    enqueue = _median(mode.get(enqueue_key))
    worker = _median(mode.get(worker_key))
    if enqueue is None or worker is None:
        return "n/a"
    return f"{enqueue:.2f} + {worker:.2f}"


def _modes_table(systems: dict[str, Any], rates: list[str]) -> list[str]:
    lines = _header(
        [
            "System",
            "Version",
            "Worker mode",
            "Tasks/s",
            "Worker CPU µs/task",
            "Client cmds/task (enqueue + worker)",
            "Cmds run in scripts/task",
        ]
        + [f"Pickup p50 / p99 ms at {rate}/s" for rate in rates]
        + ["First task after idle ms"]
    )
    for system in systems.values():
        for mode_name, mode in system.get("modes", {}).items():
            cells = [
                system["title"],
                system.get("version") or "",
                f"{mode_name}: {mode['label']}",
                _fmt(_median(mode.get("tasks_per_s"))),
                _fmt(_median(mode.get("worker_cpu_us_per_task"))),
                _split_cell(mode, "client_cmds_per_task_enqueue", "client_cmds_per_task_worker"),
                _split_cell(mode, "script_cmds_per_task_enqueue", "script_cmds_per_task_worker"),
            ]
            cells += [_pickup_cell(mode, rate) for rate in rates]
            cells.append(_fmt(_median(mode.get("idle_pickup_ms")), 2))
            lines.append(_row(cells))
    return lines + [""]


def _producer_table(systems: dict[str, Any]) -> list[str]:
    lines = _header(
        [
            "System",
            "redis-py",
            "Delivery guarantee",
            "Enqueue one by one /s",
            "Enqueue bulk /s",
            "Redis bytes per queued task",
        ]
    )
    for system in systems.values():
        lines.append(
            _row(
                [
                    system["title"],
                    system.get("redis_py") or "",
                    system["guarantee"],
                    _fmt(_median(system.get("enqueue_one_per_s"))),
                    _fmt(_median(system.get("enqueue_bulk_per_s"))),
                    _fmt(_median(system.get("memory_bytes_per_task"))),
                ]
            )
        )
    return lines + [""]


def _delayed_table(systems: dict[str, Any]) -> list[str]:
    rows = [(system, system["delayed"]) for system in systems.values() if system.get("delayed")]
    if not rows:
        return []
    lines = _header(
        [
            "System",
            "Worker mode",
            "Offered /s",
            "Due to started p50 / p99 ms",
            "Due to ready p50 / p99 ms",
        ]
    )
    for system, delayed in rows:
        ready = "not observable"
        if _median(delayed.get("ready_p99_ms")) is not None:
            ready = _pair(delayed.get("ready_p50_ms"), delayed.get("ready_p99_ms"), 2)
        lines.append(
            _row(
                [
                    system["title"],
                    delayed["mode"],
                    _fmt(_median(delayed.get("offered_per_s"))),
                    _pair(delayed.get("started_p50_ms"), delayed.get("started_p99_ms"), 1),
                    ready,
                ]
            )
        )
    return lines + [""]


def _scaling_table(systems: dict[str, Any], counts: list[str]) -> list[str]:
    rows = [(system, system["scaling"]) for system in systems.values() if system.get("scaling")]
    if not rows:
        return []
    lines = _header(
        ["System", "Worker mode"]
        + [f"{p} process{'es' if p != '1' else ''}, tasks/s" for p in counts]
    )
    for system, scaling in rows:
        cells = [_fmt(_median(scaling["processes"].get(p))) for p in counts]
        lines.append(_row([system["title"], scaling["mode"], *cells]))
    return lines + [""]


def _growth_tables(growth: dict[str, Any] | None) -> list[str]:
    if not growth:
        return []
    lines = _header(
        ["Ready tasks", "Claim gap p50 ms", "Claim gap p99 ms", "Redis time per script call µs"]
    )
    for depth, row in growth["depths"].items():
        lines.append(
            _row(
                [
                    f"{int(depth):,}",
                    _fmt(_median(row["gap_p50_ms"]), 3),
                    _fmt(_median(row["gap_p99_ms"]), 3),
                    _fmt(_median(row["script_us_per_call"]), 1),
                ]
            )
        )
    lines.append("")
    lines += _header(
        [
            "Scheduled tasks",
            "Idle worker CPU ms/s",
            "Redis CPU ms/s",
            "Redis cmds/s",
            "Script time ms/s",
            "Probe due to started p99 ms",
            "Probe due to ready p99 ms",
        ]
    )
    for scheduled, row in growth.get("promoter", {}).items():
        lines.append(
            _row(
                [
                    f"{int(scheduled):,}",
                    _fmt(_median(row["worker_cpu_ms_per_s"]), 1),
                    _fmt(_median(row["redis_cpu_ms_per_s"]), 1),
                    _fmt(_median(row["redis_cmds_per_s"])),
                    _fmt(_median(row["script_ms_per_s"]), 2),
                    _fmt(_median(row["probe_started_p99_ms"]), 2),
                    _fmt(_median(row["probe_ready_p99_ms"]), 2),
                ]
            )
        )
    return lines + [""]


def _targets_table(targets: list[dict[str, Any]]) -> list[str]:
    if not targets:
        return []
    lines = _header(["taskq target", "Measured", "Limit", "Met"])
    for target in targets:
        met = {True: "yes", False: "**no**", None: "not measured"}[target["met"]]
        detail = f" ({target['detail']})" if target.get("detail") else ""
        lines.append(
            _row(
                [
                    f"{target['name']}{detail}",
                    _fmt(target["value"], 2),
                    f"{target['op']} {_fmt(target['limit'], 2)}",
                    met,
                ]
            )
        )
    return lines + [""]


def markdown(document: dict[str, Any]) -> str:
    meta = document["meta"]
    systems = document["systems"]
    rates = [str(rate) for rate in meta["counts"]["latency_rates"]]
    counts = [str(p) for p in meta["counts"]["scaling_processes"]]
    lines = _intro(meta)
    lines += _modes_table(systems, rates)
    lines += _producer_table(systems)
    lines += _delayed_table(systems)
    lines += _scaling_table(systems, counts)
    lines += _growth_tables(document.get("growth"))
    lines += _targets_table(document.get("targets") or [])
    for name, reason in (document.get("skipped") or {}).items():
        lines.append(f"- skipped {name}: {reason}")
    for name, system in systems.items():
        lines += [f"- error in {name}: {error}" for error in system.get("errors", [])]
    return "\n".join(lines) + "\n"


# --- Charts --------------------------------------------------------------------


def _save(fig: Any, plt: Any, stem: Path, suffix: str) -> Path:
    fig.tight_layout()
    path = stem.parent / f"{stem.name}-{suffix}.png"
    fig.savefig(path, dpi=CHART_DPI)
    plt.close(fig)
    return path


def _throughput_chart(plt: Any, systems: dict[str, Any], stem: Path) -> Path | None:
    labels, values, colors = [], [], []
    for name, system in systems.items():
        for mode_name, mode in system.get("modes", {}).items():
            rate = _median(mode.get("tasks_per_s"))
            if rate is None:
                continue
            labels.append(f"{system['title']} {mode_name}")
            values.append(rate)
            color = "tab:blue"
            if name == "taskq":
                color = "tab:red"
            elif system.get("floor"):
                color = "tab:gray"
            colors.append(color)
    if not values:
        return None
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(values) + 1.5))
    ax.barh(labels[::-1], values[::-1], color=colors[::-1])
    ax.set_xscale("log")
    ax.set_xlabel("no-op tasks per second, one worker process (log scale)")
    ax.set_title("End-to-end throughput")
    return _save(fig, plt, stem, "throughput")


def _pickup_chart(plt: Any, systems: dict[str, Any], rate: str, stem: Path) -> Path | None:
    labels, p50, p99 = [], [], []
    for system in systems.values():
        for mode_name, mode in system.get("modes", {}).items():
            cell = mode.get("pickup", {}).get(rate, {})
            if "skipped" in cell or _median(cell.get("p99_ms")) is None:
                continue
            labels.append(f"{system['title']} {mode_name}")
            p50.append(_median(cell.get("p50_ms")))
            p99.append(_median(cell.get("p99_ms")))
    if not labels:
        return None
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(labels) + 1.5))
    positions = list(range(len(labels)))
    ax.barh([p + 0.2 for p in positions], p50, height=0.4, label="p50")
    ax.barh([p - 0.2 for p in positions], p99, height=0.4, label="p99")
    ax.set_yticks(positions, labels)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("enqueue call to task start, ms (log scale)")
    ax.set_title(f"Pickup latency at {rate} tasks/s offered")
    ax.legend()
    return _save(fig, plt, stem, f"pickup-{rate}")


def _scaling_chart(plt: Any, systems: dict[str, Any], stem: Path) -> Path | None:
    rows = [
        (system["title"], system["scaling"]) for system in systems.values() if system.get("scaling")
    ]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for title, data in rows:
        xs = [int(p) for p in data["processes"]]
        ys = [_median(value) for value in data["processes"].values()]
        ax.plot(xs, ys, marker="o", label=f"{title} ({data['mode']})")
    ax.set_xlabel("worker processes")
    ax.set_ylabel("tasks per second (log scale)")
    ax.set_yscale("log")
    ax.set_xticks(sorted({int(p) for _, data in rows for p in data["processes"]}))
    ax.set_title("Throughput against worker processes")
    ax.legend(fontsize="small")
    return _save(fig, plt, stem, "scaling")


def _delayed_chart(plt: Any, systems: dict[str, Any], stem: Path) -> Path | None:
    rows = [
        (system["title"], system["delayed"]) for system in systems.values() if system.get("delayed")
    ]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.5))
    names = [title for title, _ in rows]
    p99 = [_median(delayed.get("started_p99_ms")) or 0.0 for _, delayed in rows]
    ax.barh(names[::-1], p99[::-1], color="tab:purple")
    ax.set_xscale("log")
    ax.set_xlabel("due time to task start, p99 ms (log scale)")
    ax.set_title("Delayed-task lag")
    return _save(fig, plt, stem, "delayed")


def _growth_chart(plt: Any, growth: dict[str, Any] | None, stem: Path) -> Path | None:
    if not growth or not growth.get("depths"):
        return None
    depths = [int(depth) for depth in growth["depths"]]
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in (("gap_p50_ms", "p50"), ("gap_p99_ms", "p99")):
        ax.plot(
            depths,
            [_median(row[key]) for row in growth["depths"].values()],
            marker="o",
            label=label,
        )
    ax.set_xscale("log")
    ax.set_xlabel("ready tasks in the queue (log scale)")
    ax.set_ylabel("gap between tasks in one slot, ms")
    ax.set_ylim(bottom=0)
    ax.set_title("taskq claim latency against queue depth")
    ax.legend()
    return _save(fig, plt, stem, "growth")


def charts(document: dict[str, Any], stem: Path) -> list[Path]:
    """Write PNG charts next to the JSON file; return their paths (none without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed; no charts written")
        return []
    systems = document["systems"]
    rates = [str(rate) for rate in document["meta"]["counts"]["latency_rates"]]
    written = [
        _throughput_chart(plt, systems, stem),
        *[_pickup_chart(plt, systems, rate, stem) for rate in rates],
        _scaling_chart(plt, systems, stem),
        _delayed_chart(plt, systems, stem),
        _growth_chart(plt, document.get("growth"), stem),
    ]
    return [path for path in written if path is not None]


def write_report(document: dict[str, Any], stem: Path) -> None:
    """Write ``<stem>.md`` and the charts."""
    chart_paths = charts(document, stem)
    text = markdown(document)
    if chart_paths:
        text += "\n" + "\n".join(f"![{path.stem}]({path.name})" for path in chart_paths) + "\n"
    stem.with_suffix(".md").write_text(text, encoding="utf-8")
