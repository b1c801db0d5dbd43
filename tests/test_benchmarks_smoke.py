"""Smoke run of the benchmark harness with tiny counts, so that it keeps working.

It runs the floor loop and taskq only, because the peer queues are an
optional install. The figures of a quick run mean nothing; this test checks
that every phase produced a positive number, not how large it is.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("taskq")

REPO_ROOT = Path(__file__).resolve().parent.parent
SMOKE_TIMEOUT_S = 180


def _median(node: Any) -> float:
    assert isinstance(node, dict) and "median" in node, f"not a run summary: {node!r}"
    value = node["median"]
    assert isinstance(value, (int, float)), f"no run produced a value: {node!r}"
    return float(value)


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out_dir = tmp_path_factory.mktemp("bench")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--quick",
            "--runs",
            "1",
            "--systems",
            "naive,taskq",
            "--out",
            str(out_dir),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=SMOKE_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    json_files = list(out_dir.glob("*.json"))
    assert len(json_files) == 1, f"expected one results file in {out_dir}, found {json_files}"
    document: dict[str, Any] = json.loads(json_files[0].read_text(encoding="utf-8"))
    document["_out_dir"] = str(out_dir)
    return document


def test_smoke_run_has_no_errors(quick_results: dict[str, Any]) -> None:
    for name in ("naive", "taskq"):
        assert quick_results["systems"][name]["errors"] == []
    assert quick_results["growth"]["errors"] == []
    assert quick_results["skipped"] == {}


@pytest.mark.parametrize("name", ["naive", "taskq"])
def test_smoke_producer_figures_positive(quick_results: dict[str, Any], name: str) -> None:
    system = quick_results["systems"][name]
    assert _median(system["enqueue_one_per_s"]) > 0
    assert _median(system["enqueue_bulk_per_s"]) > 0
    assert _median(system["memory_bytes_per_task"]) > 0


@pytest.mark.parametrize("name", ["naive", "taskq"])
def test_smoke_worker_figures_positive(quick_results: dict[str, Any], name: str) -> None:
    modes = quick_results["systems"][name]["modes"]
    expected = {"naive": {"loop"}, "taskq": {"c1", "c8", "c8-batched"}}[name]
    assert set(modes) == expected
    for mode_name, mode in modes.items():
        assert _median(mode["tasks_per_s"]) > 0, mode_name
        assert _median(mode["worker_cpu_us_per_task"]) > 0, mode_name
        assert _median(mode["redis_cmds_per_task_worker"]) > 0, mode_name
        assert _median(mode["client_cmds_per_task_enqueue"]) > 0, mode_name
        assert _median(mode["client_cmds_per_task_worker"]) > 0, mode_name
        assert _median(mode["idle_pickup_ms"]) > 0, mode_name
        for rate, cell in mode["pickup"].items():
            if "skipped" in cell:
                continue
            assert _median(cell["p50_ms"]) > 0, (mode_name, rate)
            assert _median(cell["p99_ms"]) >= _median(cell["p50_ms"]), (mode_name, rate)


def test_smoke_taskq_delayed_and_scaling(quick_results: dict[str, Any]) -> None:
    taskq = quick_results["systems"]["taskq"]
    assert _median(taskq["delayed"]["started_p99_ms"]) > 0
    assert _median(taskq["delayed"]["ready_p99_ms"]) >= 0
    for processes, summary in taskq["scaling"]["processes"].items():
        assert _median(summary) > 0, processes


def test_smoke_taskq_growth(quick_results: dict[str, Any]) -> None:
    growth = quick_results["growth"]
    assert len(growth["depths"]) == 2
    for depth, row in growth["depths"].items():
        assert _median(row["gap_p50_ms"]) > 0, depth
    for scheduled, row in growth["promoter"].items():
        assert _median(row["probe_started_p99_ms"]) > 0, scheduled


def test_smoke_targets_and_report(quick_results: dict[str, Any]) -> None:
    by_name = {target["name"]: target for target in quick_results["targets"]}
    # Peer ratios stay unmeasured without peers, and a busy machine may mark a pickup cell as
    # saturated. The targets below are measured in every run.
    floor_ratio = by_name["end to end, one worker process: taskq / floor loop"]
    assert floor_ratio["value"] is not None
    assert floor_ratio["value"] > 0
    assert by_name["delayed tasks, due to ready p99 (ms)"]["value"] is not None
    claim = [target for name, target in by_name.items() if name.startswith("claim gap p50")]
    assert len(claim) == 1
    assert claim[0]["value"] is not None

    out_dir = Path(quick_results["_out_dir"])
    report = next(out_dir.glob("*.md")).read_text(encoding="utf-8")
    assert "| taskq target |" in report
    if importlib.util.find_spec("matplotlib") is not None:
        assert len(list(out_dir.glob("*-throughput.png"))) == 1
