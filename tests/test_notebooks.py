"""The teaching notebooks: they run clean, teach what they claim, and are committed clean.

- nbval in lax mode runs every lesson notebook on the embedded backend (each cell must run
  without error; outputs are not compared).
- nbclient runs every lesson notebook on a real Redis server (``TASKQ_TEST_REDIS_URL``), loads
  the exercise's solution into the same kernel, and reads the ``lesson_results`` dict each
  notebook fills. The asserts check each lesson's teaching result: for example that the naive
  claim hands out duplicates while the Lua claim never does. These runs share one kernel, with
  ``%reset -f`` clearing the namespace before each notebook: a kernel's first plotly widget
  import costs seconds (plotly.io imports nbformat and jsonschema), and nbval already runs
  each notebook in a fresh kernel.
- The committed notebooks carry no outputs, and every lesson links its solution file.

Every run sets ``TASKQ_DEMO_SECONDS=1`` so that each notebook finishes in seconds.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
import redis
from nbclient import NotebookClient

import taskq
from tests.conftest import REAL_REDIS_URL, REQUIRE_REAL_REDIS, ROOT, real_redis_available

NOTEBOOKS = ROOT / "notebooks"
LESSONS = sorted(p.name for p in NOTEBOOKS.glob("0[0-9]-*.ipynb"))
DEMO_SECONDS = "1"
CELL_TIMEOUT_S = 120
RESULTS_MARKER = "LESSON_RESULTS="


def _load_strip_module() -> Any:
    spec = importlib.util.spec_from_file_location("strip_notebooks",
                                                  ROOT / "scripts" / "strip_notebooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _solution(lesson: str) -> Path | None:
    path = NOTEBOOKS / "solutions" / f"{lesson[:2]}_exercise.py"
    return path if path.exists() else None


def execute_lesson(client: NotebookClient, lesson: str) -> dict[str, Any]:
    """Run one notebook in the shared kernel, then its solution; return ``lesson_results``.

    The appended cell runs the solution file in the kernel and calls the notebook's own
    ``check_exercise()`` again, so the test also proves that the solution passes the check.
    """
    notebook = nbformat.read(NOTEBOOKS / lesson, as_version=4)
    tail = ["import json"]
    solution = _solution(lesson)
    if solution is not None:
        tail += [f"exec(open({str(solution.relative_to(NOTEBOOKS))!r}).read())",
                 "lesson_results['solution_passes'] = check_exercise()"]
    tail.append(f"print({RESULTS_MARKER!r} + json.dumps(lesson_results, default=str))")
    notebook.cells.append(nbformat.v4.new_code_cell("\n".join(tail)))
    client.nb = notebook
    client.execute_cell(nbformat.v4.new_code_cell("%reset -f"), 0, store_history=False)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            client.execute_cell(cell, index)
    for output in notebook.cells[-1].outputs:
        for line in output.get("text", "").splitlines():
            if line.startswith(RESULTS_MARKER):
                return dict(json.loads(line[len(RESULTS_MARKER):]))
    raise AssertionError(f"{lesson} printed no {RESULTS_MARKER} line")


@pytest.fixture(scope="module")
def real_redis_kernel() -> Iterator[NotebookClient]:
    """One kernel on the real Redis test database with short demos, shared by the lessons."""
    if not real_redis_available():
        message = f"real Redis at {taskq.mask_url(REAL_REDIS_URL)} does not answer"
        if REQUIRE_REAL_REDIS:
            pytest.fail(message + " (TASKQ_REQUIRE_REAL_REDIS=1)")
        pytest.skip(message)
    redis.Redis.from_url(REAL_REDIS_URL).flushdb()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TASKQ_REDIS_URL", REAL_REDIS_URL)
        patch.setenv("TASKQ_DEMO_SECONDS", DEMO_SECONDS)
        client = NotebookClient(nbformat.v4.new_notebook(), timeout=CELL_TIMEOUT_S,
                                kernel_name="python3", store_widget_state=False,
                                resources={"metadata": {"path": str(NOTEBOOKS)}})
        with client.setup_kernel():
            yield client


# Committed state.

@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_notebook_committed_without_outputs(path: Path) -> None:
    problems = _load_strip_module().output_problems(path)
    assert problems == [], "run: python scripts/strip_notebooks.py"


def test_index_links_lessons_in_order() -> None:
    index = nbformat.read(NOTEBOOKS / "00-index.ipynb", as_version=4)
    text = "\n".join(cell.source for cell in index.cells if cell.cell_type == "markdown")
    linked = re.findall(r"\]\((0[1-9]-[\w-]+\.ipynb)\)", text)
    assert list(dict.fromkeys(linked)) == LESSONS[1:]


@pytest.mark.parametrize("lesson", LESSONS[1:])
def test_lesson_offers_its_solution(lesson: str) -> None:
    notebook = nbformat.read(NOTEBOOKS / lesson, as_version=4)
    solution = _solution(lesson)
    assert solution is not None
    source = "\n".join(cell.source for cell in notebook.cells)
    assert f"solutions/{solution.name}" in source


@pytest.mark.parametrize("lesson", LESSONS[1:])
def test_lesson_has_goals_and_summary(lesson: str) -> None:
    notebook = nbformat.read(NOTEBOOKS / lesson, as_version=4)
    markdown = [cell.source for cell in notebook.cells if cell.cell_type == "markdown"]
    assert "**Learning goals**" in markdown[0]
    assert any(text.startswith("## Summary") for text in markdown)


# nbval: every notebook runs clean on the embedded backend.

# Seven kernels in a row: on a loaded two-core machine this has taken close to 3 minutes.
@pytest.mark.timeout(900)
def test_lessons_pass_nbval_lax_embedded() -> None:
    env = {k: v for k, v in os.environ.items() if k != "TASKQ_REDIS_URL"}
    env["TASKQ_DEMO_SECONDS"] = DEMO_SECONDS
    command = [sys.executable, "-m", "pytest", "--nbval-lax", "-q", "-p", "no:cacheprovider",
               "--nbval-cell-timeout", str(CELL_TIMEOUT_S), "-o", "addopts=",
               *[str(NOTEBOOKS / lesson) for lesson in LESSONS]]
    run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=840)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]


# nbclient: each notebook's teaching results, on real Redis.

def _common_checks(results: dict[str, Any]) -> None:
    assert results["threads_left"] == []
    if "exercise_stub_passes" in results:
        assert results["exercise_stub_passes"] is False
        assert results["solution_passes"] is True


def test_index_warmup_runs_tasks(real_redis_kernel: NotebookClient) -> None:
    results = execute_lesson(real_redis_kernel, "00-index.ipynb")
    assert results["warmup"]["results_ok"] is True
    assert results["warmup"]["events"] == {"enqueued": 20, "started": 20, "succeeded": 20}
    _common_checks(results)


def test_priority_weights_end_starvation(real_redis_kernel: NotebookClient) -> None:
    results = execute_lesson(real_redis_kernel, "01-priority-queues.ipynb")
    summary = results["summary"]
    strict, weighted, fifo = summary["strict"], summary["weighted"], summary["fifo"]
    # Strict priority starves low while high and normal fill the worker.
    assert strict["low"]["served_fraction"] <= 0.25
    # Weighted order serves low; its share covers its arrival rate.
    assert weighted["low"]["served_fraction"] > strict["low"]["served_fraction"] + 0.25
    # Strict priority helps high compared with arrival order.
    assert strict["high"]["p95_delay_ms"] < fifo["high"]["p95_delay_ms"]
    _common_checks(results)


def test_dequeue_naive_duplicates_lua_exact(real_redis_kernel: NotebookClient) -> None:
    results = execute_lesson(real_redis_kernel, "02-atomic-dequeue.ipynb")
    race = results["race"]
    assert results["backend"].startswith("redis://")
    assert race["naive"]["duplicates"] > 0
    assert race["naive"]["lost"] > 0
    assert race["watch"]["duplicates"] == 0
    assert race["watch"]["lost"] == 0
    assert race["watch"]["retries"] > 0
    assert race["lua"]["duplicates"] == 0
    assert race["lua"]["lost"] == 0
    assert race["lua"]["unique"] == race["lua"]["tasks"]
    assert race["lua"]["round_trips_per_claim"] < 1.2
    _common_checks(results)


def test_delayed_engine_beats_polling(real_redis_kernel: NotebookClient) -> None:
    results = execute_lesson(real_redis_kernel, "03-delayed-scheduling.ipynb")
    engine, polling = results["lag"]["engine"], results["lag"]["polling"]
    assert engine["tasks"] == polling["tasks"] == 30
    assert results["schedule_sorted"] is True
    assert engine["p50_lag_ms"] < polling["p50_lag_ms"]
    assert engine["p95_lag_ms"] < polling["p95_lag_ms"]
    # The poller never waits more than one interval (0.5 s) plus a claim past a due time.
    assert polling["max_lag_ms"] < 1000
    _common_checks(results)


def test_retries_match_prediction(real_redis_kernel: NotebookClient) -> None:
    results = execute_lesson(real_redis_kernel, "04-retries-dead-letters.ipynb")
    payments, requeue = results["payments"], results["requeue"]
    assert payments["dead"] == results["predicted_dead"]
    assert payments["succeeded"] + payments["dead"] == payments["tasks"]
    # Due times come from the server clock at the failure, so no retry starts early (1 ms
    # allows for the events' millisecond resolution).
    assert results["min_retry_gap_s"] >= results["backoff_min_s"] - 0.001
    assert requeue["moved"] == payments["dead"]
    assert requeue["succeeded"] == payments["tasks"]
    assert requeue["dead"] == 0
    _common_checks(results)


def test_recovery_runs_twice_books_once(real_redis_kernel: NotebookClient) -> None:
    results = execute_lesson(real_redis_kernel, "05-workers-recovery.ipynb")
    crash = results["crash"]
    assert crash["succeeded"] == crash["orders"]
    assert crash["held_at_kill"] >= 1
    assert crash["recovered"] >= crash["held_at_kill"]
    assert crash["duplicate_runs"] >= 1
    assert crash["naive_balance"] == crash["orders"] + crash["duplicate_runs"]
    assert crash["idempotent_balance"] == crash["orders"]
    assert crash["first_recovery_after_kill_s"] > 0
    assert results["enqueue_created"] == [True, False]
    assert results["live"]["recovered_sample"] is not None
    _common_checks(results)


def test_metrics_agree_with_events(real_redis_kernel: NotebookClient) -> None:
    results = execute_lesson(real_redis_kernel, "06-metrics-observability.ipynb")
    counters, events = results["counters"], results["event_counts"]
    for kind in ("enqueued", "succeeded", "failed", "dead"):
        assert counters[kind] == events[kind], kind
    for kind, name in (("e", "enqueued"), ("s", "succeeded"), ("f", "failed"), ("d", "dead")):
        assert results["rate_sums"][kind] == counters[name], kind
    assert results["snapshot_totals"] == {k: counters[k] for k in results["snapshot_totals"]}
    for name in ("run_p95", "wait_p95"):
        compared = results[name]
        assert compared["bucket_lower_ms"] <= compared["exact_ms"] <= compared["bucket_upper_ms"]
        assert compared["bucket_lower_ms"] <= compared["estimate_ms"] <= compared["bucket_upper_ms"]
    assert results["pages"] == [5, 5]
    assert len(set(results["page_ids"])) == 10
    _common_checks(results)
