"""``taskq demo``: its workload plan, its task, and whole runs on embedded and real Redis.

Whole runs use ``--limit`` to keep each under a few seconds. The full standard library runs
only when ``taskq demo`` is run by hand.
"""

from __future__ import annotations

import hashlib
import re
import signal
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import taskq
from taskq import demo, demo_tasks
from taskq.cli import cli
from taskq.connection import reset_embedded
from tests.conftest import FAST_SETTINGS, ROOT

LIMIT = "30"


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, ["demo", *args])


def summary_value(output: str, label: str) -> int:
    """The integer after ``label`` on its summary line, e.g. ``succeeded    30``."""
    match = re.search(rf"^  {label}\s+(\d+)", output, flags=re.M)
    assert match is not None, f"no {label!r} line in:\n{output}"
    return int(match.group(1))


@pytest.fixture
def embedded() -> None:
    reset_embedded()
    yield
    reset_embedded()


# The plan and the task.


def test_plan_mixes_priorities_and_delays(tmp_path: Path) -> None:
    root = demo.stdlib_dir()
    files = demo.list_source_files(root, 100)
    items = demo.plan_workload("run", root, files, demo.make_bad_inputs(tmp_path))
    assert len(items) == 104
    assert len({item.priority for item in items}) >= 2
    assert sum(item.delay_s is not None for item in items) == 5
    assert [item.expect_dead for item in items[-4:]] == [True] * 4
    assert len({item.task_id for item in items}) == len(items)


def test_source_files_skip_site_packages(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text("x = 1\n")
    (tmp_path / "site-packages").mkdir()
    (tmp_path / "site-packages" / "third.py").write_text("y = 2\n")
    assert demo.list_source_files(tmp_path) == [tmp_path / "pkg" / "mod.py"]


def test_analyze_file_counts(tmp_path: Path) -> None:
    path = tmp_path / "sample.py"
    data = "alpha beta\ngamma = 'é'\n".encode()
    path.write_bytes(data)
    result = demo_tasks.analyze_file(str(path))
    assert result["sha256"] == hashlib.sha256(data).hexdigest()
    assert result["bytes"] == len(data)
    assert result["lines"] == 2
    assert result["words"] == 5
    assert result["compression_ratio"] == len(zlib.compress(data, 6)) / len(data)


def test_analyze_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "__init__.py"
    path.write_bytes(b"")
    assert demo_tasks.analyze_file(str(path))["compression_ratio"] is None


def test_analyze_declared_encoding(tmp_path: Path) -> None:
    path = tmp_path / "latin.py"
    path.write_bytes(b"# -*- coding: latin-1 -*-\ncity = 'S\xe3o Paulo'\n")
    assert demo_tasks.analyze_file(str(path))["encoding"] == "iso-8859-1"


def test_bad_inputs_raise_expected_errors(tmp_path: Path) -> None:
    for path, reason, error in demo.make_bad_inputs(tmp_path):
        with pytest.raises(Exception) as caught:
            demo_tasks.analyze_file(str(path))
        assert type(caught.value).__name__ == error, reason


def test_invalid_declaration_detected(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_bytes(b"# -*- coding: uft-8 -*-\n")
    good = tmp_path / "good.py"
    good.write_bytes(b"# -*- coding: utf-8 -*-\n")
    reason = demo.invalid_declaration(bad)
    assert reason is not None
    assert reason.startswith("invalid encoding declaration (unknown encoding")
    assert demo.invalid_declaration(good) is None


# Whole runs.


def test_demo_embedded_succeeds(embedded: None) -> None:
    result = invoke("--limit", LIMIT)
    assert result.exit_code == 0, result.output
    assert summary_value(result.output, "succeeded") == 30
    assert summary_value(result.output, "dead") == 4
    assert summary_value(result.output, "retried") == 8
    assert "OK: all 30 file tasks succeeded and exactly the 4 known bad inputs are dead" \
        in result.output


def test_demo_rerun_counts_one_run(real_redis_url: str) -> None:
    first = invoke("--limit", "20", "--redis-url", real_redis_url)
    second = invoke("--limit", "20", "--redis-url", real_redis_url)
    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    assert summary_value(second.output, "succeeded") == 20
    app = taskq.App(real_redis_url)
    counters = taskq.take_snapshot(app, ["demo"]).queues["demo"].counters
    assert counters["enqueued"] == 24


def test_demo_refuses_foreign_queue(real_redis_url: str) -> None:
    app = taskq.App(real_redis_url, settings=FAST_SETTINGS)
    app.task(name="mine")(lambda: None)
    handle = app.enqueue("mine", queue="mine")
    result = invoke("--limit", "5", "--queue", "mine", "--redis-url", real_redis_url)
    assert result.exit_code == 2
    assert "queue 'mine' contains tasks that taskq demo did not create" in result.stderr
    assert handle.state() is taskq.State.READY


def test_demo_refuses_live_run(real_redis_url: str) -> None:
    app = taskq.App(real_redis_url)
    seconds, micros = app.client.time()
    app.client.hset(app.keys.queue("demo").config, mapping={
        demo.OWNER_FIELD: "demo-other", demo.ALIVE_FIELD: str(seconds * 1000 + micros // 1000)})
    result = invoke("--limit", "5", "--redis-url", real_redis_url)
    assert result.exit_code == 2
    assert "demo run demo-other is still running on queue 'demo'" in result.stderr


def test_demo_reports_unexpected_dead(embedded: None, tmp_path: Path) -> None:
    (tmp_path / "good.py").write_text("x = 1\n")
    # Invalid UTF-8 after the first two lines: the declaration check passes, decoding fails.
    (tmp_path / "sneaky.py").write_bytes(b"x = 1\n\ny = '\xff'\n")
    result = invoke("--source-dir", str(tmp_path))
    assert result.exit_code == 1
    assert "sneaky.py: expected succeeded but it is dead (UnicodeDecodeError" in result.output
    assert summary_value(result.output, "succeeded") == 1


def test_demo_missing_source_dir(embedded: None, tmp_path: Path) -> None:
    result = invoke("--source-dir", str(tmp_path / "nowhere"))
    assert result.exit_code == 2
    assert "is not a directory" in result.stderr


def test_demo_external_only_needs_redis(embedded: None, monkeypatch: pytest.MonkeyPatch
                                        ) -> None:
    monkeypatch.delenv("TASKQ_REDIS_URL", raising=False)
    result = invoke("--workers", "0")
    assert result.exit_code == 2
    assert "no other process can reach it" in result.stderr


def test_demo_times_out_without_workers(real_redis_url: str) -> None:
    result = invoke("--workers", "0", "--limit", "5", "--timeout", "1",
                    "--redis-url", real_redis_url)
    assert result.exit_code == 1
    assert "did not finish within --timeout 1 s" in result.output


def test_demo_with_external_worker(real_redis_url: str) -> None:
    """The demo's work done only by a `taskq worker` process is counted exactly."""
    worker = subprocess.Popen(
        [sys.executable, "-m", "taskq", "worker", "--app", "taskq.demo_tasks",
         "--concurrency", "2", "--redis-url", real_redis_url],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        run = subprocess.run(
            [sys.executable, "-m", "taskq", "demo", "--workers", "0", "--limit", "40",
             "--timeout", "60", "--redis-url", real_redis_url],
            cwd=ROOT, capture_output=True, text=True, timeout=90)
    finally:
        worker.terminate()
        worker.wait(15)
    assert run.returncode == 0, run.stdout + run.stderr
    assert summary_value(run.stdout, "succeeded") == 40
    assert summary_value(run.stdout, "dead") == 4
    workers = re.findall(r"^  worker\s+(\S+): (\d+) tasks(.*)$", run.stdout, flags=re.M)
    assert len(workers) == 1
    assert workers[0][1:] == ("44", "")


def test_demo_interrupt_exits_130(real_redis_url: str) -> None:
    """Ctrl-C during the wait stops the run and reports what had not finished."""
    process = subprocess.Popen(
        [sys.executable, "-m", "taskq", "demo", "--workers", "0", "--limit", "5",
         "--timeout", "60", "--redis-url", real_redis_url],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    try:
        # The first status line is printed from inside the wait loop: interrupt it there.
        for line in process.stdout:
            if "finished:" in line:
                break
        process.send_signal(signal.SIGINT)
        output = process.stdout.read()
        assert process.wait(30) == 130
    finally:
        process.kill()
        process.wait(10)
    assert "interrupted (Ctrl-C) before the workload finished" in output
    assert "9 tasks had not finished" in output
