"""taskq's targets, checked as ratios and limits within one run's results."""

from __future__ import annotations

from typing import Any

# Throughput ratios and latency limits that taskq is held to.
E2E_PEER_RATIO_MIN = 3.0
E2E_FLOOR_RATIO_MIN = 1.5
PICKUP_RATE_PER_S = "500"
PICKUP_P50_MAX_MS = 1.0
PICKUP_P99_MAX_MS = 2.0
IDLE_PICKUP_MAX_MS = 2.0
DELAYED_READY_P99_MAX_MS = 5.0
CLIENT_CMDS_PER_TASK_MAX = 2.0
# "Flat" claim latency: the median claim gap at the largest depth is at most this multiple of
# the gap at the smallest depth.
CLAIM_GROWTH_RATIO_MAX = 1.25


def _median(node: Any) -> float | None:
    if isinstance(node, dict):
        value = node.get("median")
        return float(value) if isinstance(value, (int, float)) else None
    return None


def _target(
    name: str, value: float | None, limit: float, op: str, detail: str = ""
) -> dict[str, Any]:
    met: bool | None
    if value is None or limit != limit:  # limit is NaN when its reference was not measured
        met = None
    elif op == ">=":
        met = value >= limit
    elif op == "<=":
        met = value <= limit
    else:
        met = value < limit
    return {"name": name, "value": value, "op": op, "limit": limit, "met": met, "detail": detail}


def _best_rate(system: dict[str, Any], concurrency: int | None) -> tuple[float | None, str]:
    best: tuple[float | None, str] = (None, "")
    for mode_name, mode in system.get("modes", {}).items():
        if concurrency is not None and mode.get("concurrency") != concurrency:
            continue
        rate = _median(mode.get("tasks_per_s"))
        if rate is not None and (best[0] is None or rate > best[0]):
            best = (rate, mode_name)
    return best


def evaluate_targets(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Return one entry per target: the measured value and whether it is met (None: unmeasured)."""
    systems: dict[str, Any] = document.get("systems", {})
    taskq = systems.get("taskq")
    if not taskq:
        return []
    targets: list[dict[str, Any]] = []
    peers = {
        name: data for name, data in systems.items() if name != "taskq" and not data.get("floor")
    }

    for concurrency in (1, 8):
        ours, our_mode = _best_rate(taskq, concurrency)
        best_peer: tuple[float | None, str] = (None, "")
        for name, data in peers.items():
            rate, mode_name = _best_rate(data, concurrency)
            if rate is not None and (best_peer[0] is None or rate > best_peer[0]):
                best_peer = (rate, f"{name}/{mode_name}")
        ratio = ours / best_peer[0] if ours and best_peer[0] else None
        targets.append(
            _target(
                f"end to end at concurrency {concurrency}: taskq / fastest peer",
                ratio,
                E2E_PEER_RATIO_MIN,
                ">=",
                f"taskq/{our_mode} {ours or 0:.0f}/s vs "
                f"{best_peer[1] or 'no peer'} {best_peer[0] or 0:.0f}/s",
            )
        )

    floor = systems.get("naive")
    ours_any, our_mode_any = _best_rate(taskq, None)
    floor_rate = _best_rate(floor, None)[0] if floor else None
    targets.append(
        _target(
            "end to end, one worker process: taskq / floor loop",
            ours_any / floor_rate if ours_any and floor_rate else None,
            E2E_FLOOR_RATIO_MIN,
            ">=",
            f"taskq/{our_mode_any} {ours_any or 0:.0f}/s vs floor {floor_rate or 0:.0f}/s",
        )
    )

    for mode_name, mode in taskq.get("modes", {}).items():
        pickup = mode.get("pickup", {}).get(PICKUP_RATE_PER_S, {})
        targets.append(
            _target(
                f"pickup p50 at {PICKUP_RATE_PER_S}/s, taskq/{mode_name} (ms)",
                _median(pickup.get("p50_ms")),
                PICKUP_P50_MAX_MS,
                "<",
            )
        )
        targets.append(
            _target(
                f"pickup p99 at {PICKUP_RATE_PER_S}/s, taskq/{mode_name} (ms)",
                _median(pickup.get("p99_ms")),
                PICKUP_P99_MAX_MS,
                "<=",
            )
        )
        targets.append(
            _target(
                f"first task after idle, taskq/{mode_name} (ms)",
                _median(mode.get("idle_pickup_ms")),
                IDLE_PICKUP_MAX_MS,
                "<=",
            )
        )
        enqueue_cmds = _median(mode.get("client_cmds_per_task_enqueue"))
        worker_cmds = _median(mode.get("client_cmds_per_task_worker"))
        total = (
            enqueue_cmds + worker_cmds
            if enqueue_cmds is not None and worker_cmds is not None
            else None
        )
        in_scripts = (_median(mode.get("script_cmds_per_task_enqueue")) or 0.0) + (
            _median(mode.get("script_cmds_per_task_worker")) or 0.0
        )
        targets.append(
            _target(
                f"client Redis commands per task (enqueue one by one + worker), taskq/{mode_name}",
                total,
                CLIENT_CMDS_PER_TASK_MAX,
                "<=",
                f"enqueue {enqueue_cmds or 0:.2f} + worker {worker_cmds or 0:.2f}; "
                f"commands run inside scripts: {in_scripts:.2f}",
            )
        )
        floor_cpu = None
        if floor:
            floor_cpu = _median(next(iter(floor["modes"].values())).get("worker_cpu_us_per_task"))
        targets.append(
            _target(
                f"worker CPU per task, taskq/{mode_name} (us; limit: the floor loop's)",
                _median(mode.get("worker_cpu_us_per_task")),
                floor_cpu if floor_cpu is not None else float("nan"),
                "<=",
            )
        )

    delayed = taskq.get("delayed", {})
    targets.append(
        _target(
            "delayed tasks, due to ready p99 (ms)",
            _median(delayed.get("ready_p99_ms")),
            DELAYED_READY_P99_MAX_MS,
            "<=",
        )
    )

    growth = document.get("growth") or {}
    depths = growth.get("depths", {})
    if depths:
        keys = sorted(depths, key=int)
        low = _median(depths[keys[0]].get("gap_p50_ms"))
        high = _median(depths[keys[-1]].get("gap_p50_ms"))
        targets.append(
            _target(
                f"claim gap p50 at {int(keys[-1]):,} / at {int(keys[0]):,} ready tasks",
                high / low if high is not None and low else None,
                CLAIM_GROWTH_RATIO_MAX,
                "<=",
                f"{low or 0:.3f} ms -> {high or 0:.3f} ms",
            )
        )
    return targets
