"""The ``taskq`` command line against real Redis: each command, its errors and its output.

Most tests run commands in-process with click's CliRunner; a few run ``python -m taskq`` as a
real subprocess. ``tasks_app`` is the ``--app`` these tests pass (``tests.test_cli:tasks_app``).
"""

from __future__ import annotations

import json
import queue as queue_module
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

import taskq
from taskq.cli import _task_queues, cli
from taskq.connection import reset_embedded
from tests.conftest import FAST_SETTINGS, ROOT, wait_until

APP_SPEC = "tests.test_cli:tasks_app"


def register(app: taskq.App) -> taskq.App:
    def add(x: int, y: int) -> int:
        return x + y

    def fail(message: str) -> None:
        raise ValueError(message)

    app.task(name="cli.add")(add)
    app.task(name="cli.fail", max_retries=0)(fail)
    return app


def make_app(url: str | None) -> taskq.App:
    return register(taskq.App(url, settings=FAST_SETTINGS))


tasks_app = make_app(None)


def invoke(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input)


def make_dead(app: taskq.App, count: int, queue: str = "default") -> list[str]:
    """Enqueue ``count`` failing tasks and let a worker run them until all are dead."""
    ids = [f"dead-{i}" for i in range(count)]
    app.enqueue_many([taskq.Call("cli.fail", [f"bad input {i}"], queue=queue, task_id=task_id)
                      for i, task_id in enumerate(ids)])
    worker = taskq.Worker(app, [queue], 2)
    worker.start()
    try:
        wait_until(lambda: all(app.get(i, queue).state is taskq.State.DEAD for i in ids),
                   message=f"{count} tasks dead")
    finally:
        worker.stop(grace_s=1)
    return ids


@pytest.fixture
def url(real_redis_url: str) -> str:
    return real_redis_url


@pytest.fixture
def app(url: str) -> taskq.App:
    return make_app(url)


# enqueue


def test_enqueue_stores_task_and_args(url: str, app: taskq.App) -> None:
    result = invoke("enqueue", "cli.add", "--app", APP_SPEC, "--redis-url", url,
                    "--args", "[2, 3]", "--priority", "8")
    assert result.exit_code == 0, result.output
    task_id = result.stdout.split()[1]
    rec = app.get(task_id)
    assert rec.args == [2, 3]
    assert rec.priority == 8
    assert rec.state is taskq.State.READY


def test_enqueue_kwargs_and_queue(url: str, app: taskq.App) -> None:
    result = invoke("enqueue", "cli.add", "--app", APP_SPEC, "--redis-url", url,
                    "--kwargs", '{"x": 1, "y": 2}', "--queue", "other", "--id", "k1")
    assert result.exit_code == 0, result.output
    rec = app.get("k1", "other")
    assert rec.kwargs == {"x": 1, "y": 2}


def test_enqueue_unknown_name_rejected(url: str, app: taskq.App) -> None:
    result = invoke("enqueue", "nope", "--app", APP_SPEC, "--redis-url", url)
    assert result.exit_code == 2
    assert "'nope' is not registered" in result.stderr
    assert "cli.add" in result.stderr
    assert "Traceback" not in result.output
    assert app.queues() == []


@pytest.mark.parametrize("option, value, expected", [
    ("--args", "[1,", "is not valid JSON"),
    ("--args", '{"x": 1}', "is not a JSON array"),
    ("--kwargs", "[1]", "is not a JSON object"),
])
def test_enqueue_bad_json_rejected(url: str, app: taskq.App, option: str, value: str,
                                   expected: str) -> None:
    result = invoke("enqueue", "cli.add", "--app", APP_SPEC, "--redis-url", url, option, value)
    assert result.exit_code == 2
    assert expected in result.stderr
    assert repr(value) in result.stderr
    assert app.queues() == []


def test_enqueue_delay_schedules(url: str, app: taskq.App) -> None:
    result = invoke("enqueue", "cli.add", "--app", APP_SPEC, "--redis-url", url,
                    "--args", "[1, 1]", "--delay", "60", "--id", "later")
    assert result.exit_code == 0, result.output
    rec = app.get("later")
    assert rec.state is taskq.State.SCHEDULED
    assert rec.due_ms is not None and rec.enqueued_ms is not None
    assert rec.due_ms - rec.enqueued_ms == 60_000


def test_enqueue_eta_schedules(url: str, app: taskq.App) -> None:
    eta = (datetime.now(timezone.utc) + timedelta(hours=1)).replace(microsecond=0)
    result = invoke("enqueue", "cli.add", "--app", APP_SPEC, "--redis-url", url,
                    "--args", "[1, 1]", "--eta", eta.isoformat(), "--id", "at")
    assert result.exit_code == 0, result.output
    assert app.get("at").due_ms == int(eta.timestamp() * 1000)


def test_enqueue_bad_eta_rejected(url: str) -> None:
    result = invoke("enqueue", "cli.add", "--app", APP_SPEC, "--redis-url", url,
                    "--eta", "tomorrow")
    assert result.exit_code == 2
    assert "'tomorrow' is not an ISO 8601 time" in result.stderr


def test_enqueue_same_id_writes_nothing(url: str, app: taskq.App) -> None:
    first = invoke("enqueue", "cli.add", "--app", APP_SPEC, "--redis-url", url,
                   "--args", "[1, 1]", "--id", "once")
    second = invoke("enqueue", "cli.add", "--app", APP_SPEC, "--redis-url", url,
                    "--args", "[5, 5]", "--id", "once")
    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    assert "already exists" in second.stdout
    assert app.get("once").args == [1, 1]


def test_enqueue_priority_out_of_range(url: str, app: taskq.App) -> None:
    result = invoke("enqueue", "cli.add", "--app", APP_SPEC, "--redis-url", url,
                    "--priority", "12")
    assert result.exit_code == 2
    assert "priority 12 is out of range" in result.stderr
    assert app.queues() == []


def test_enqueue_missing_module(url: str) -> None:
    result = invoke("enqueue", "cli.add", "--app", "no_such_module", "--redis-url", url)
    assert result.exit_code == 2
    assert "cannot import module 'no_such_module'" in result.stderr
    assert "Traceback" not in result.output


def test_enqueue_requires_app(url: str) -> None:
    result = invoke("enqueue", "cli.add", "--redis-url", url)
    assert result.exit_code == 2
    assert "--app" in result.stderr


def test_enqueue_leaves_module_app_alone(url: str) -> None:
    result = invoke("enqueue", "cli.add", "--app", APP_SPEC, "--redis-url", url)
    assert result.exit_code == 0, result.output
    assert tasks_app._client is None


# stats and events


def test_stats_table_lists_queue(url: str, app: taskq.App) -> None:
    app.enqueue("cli.add", [1, 2])
    app.enqueue("cli.add", [1, 2], queue="other", delay_s=30)
    result = invoke("stats", "--redis-url", url)
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines() if line}
    assert rows["default"][1:4] == ["no", "1", "0"]
    assert rows["other"][1:4] == ["no", "0", "1"]


def test_stats_json_totals(url: str, app: taskq.App) -> None:
    make_dead(app, 2)
    app.enqueue("cli.add", [1, 2])
    result = invoke("stats", "--json", "--redis-url", url)
    assert result.exit_code == 0, result.output
    totals = json.loads(result.stdout)["totals"]
    assert totals["enqueued"] == 3
    assert totals["dead"] == 2
    assert totals["ready"] == 1


def test_events_prints_newest(url: str, app: taskq.App) -> None:
    for i in range(5):
        app.enqueue("cli.add", [i, i], task_id=f"e{i}")
    result = invoke("events", "-n", "3", "--redis-url", url)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split("task=")[1].split()[0] for line in lines] == ["e2", "e3", "e4"]


def test_events_follow_subprocess(url: str, app: taskq.App) -> None:
    """A real `taskq events --follow` process prints an event enqueued after it started."""
    process = subprocess.Popen(
        [sys.executable, "-m", "taskq", "events", "--follow", "-n", "0", "--duration", "20",
         "--redis-url", url], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    lines: queue_module.Queue[str] = queue_module.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in process.stdout or []],
                              daemon=True)
    reader.start()
    try:
        # Enqueue until the follower prints one: the first enqueues may come before it starts.
        printed = None
        sent = []
        deadline = time.monotonic() + 15
        while printed is None and time.monotonic() < deadline:
            sent.append(app.enqueue("cli.add", [1, 1]).id)
            try:
                printed = lines.get(timeout=0.3)
            except queue_module.Empty:
                continue
        assert printed is not None, "the follower printed nothing within 15 s"
        assert "enqueued" in printed
        assert printed.split("task=")[1].split()[0] in sent
    finally:
        process.terminate()
        process.wait(10)


def test_events_follow_stops_after_duration(url: str, app: taskq.App) -> None:
    app.enqueue("cli.add", [1, 1], task_id="old")
    started = time.monotonic()
    result = invoke("events", "--follow", "--duration", "0.5", "--redis-url", url)
    assert result.exit_code == 0, result.output
    assert "task=old" in result.stdout
    assert time.monotonic() - started < 10


# dead letters


def test_dead_list_shows_errors(url: str, app: taskq.App) -> None:
    make_dead(app, 3)
    result = invoke("dead", "list", "--redis-url", url)
    assert result.exit_code == 0, result.output
    assert sum("ValueError: bad input" in line for line in result.stdout.splitlines()) == 3
    assert "default: 3" in result.stdout


def test_dead_list_groups(url: str, app: taskq.App) -> None:
    make_dead(app, 3)
    result = invoke("dead", "list", "--groups", "--redis-url", url)
    assert result.exit_code == 0, result.output
    row = [line for line in result.stdout.splitlines() if "ValueError" in line]
    assert len(row) == 1
    assert row[0].split()[1] == "3"


def test_dead_show_prints_traceback(url: str, app: taskq.App) -> None:
    make_dead(app, 1)
    result = invoke("dead", "show", "dead-0", "--redis-url", url)
    assert result.exit_code == 0, result.output
    assert 'args      ["bad input 0"]' in result.stdout
    assert "Traceback (most recent call last)" in result.stdout
    assert "ValueError: bad input 0" in result.stdout


def test_dead_show_rejects_live_task(url: str, app: taskq.App) -> None:
    app.enqueue("cli.add", [1, 1], task_id="alive")
    result = invoke("dead", "show", "alive", "--redis-url", url)
    assert result.exit_code == 1
    assert "task alive is ready, not dead" in result.stderr


def test_dead_requeue_one_id(url: str, app: taskq.App) -> None:
    make_dead(app, 2)
    result = invoke("dead", "requeue", "dead-1", "--redis-url", url)
    assert result.exit_code == 0, result.output
    assert "requeued 1 dead tasks" in result.stdout
    assert app.get("dead-1").state is taskq.State.READY
    assert app.get("dead-0").state is taskq.State.DEAD


def test_dead_requeue_all_delayed(url: str, app: taskq.App) -> None:
    make_dead(app, 3)
    result = invoke("dead", "requeue", "--all", "--delay", "30", "--redis-url", url)
    assert result.exit_code == 0, result.output
    assert "requeued 3 dead tasks" in result.stdout
    assert {app.get(f"dead-{i}").state for i in range(3)} == {taskq.State.SCHEDULED}


def test_dead_requeue_needs_ids_or_all(url: str, app: taskq.App) -> None:
    result = invoke("dead", "requeue", "--redis-url", url)
    assert result.exit_code == 2
    assert "pass --all" in result.stderr


def test_dead_requeue_rejects_live_id(url: str, app: taskq.App) -> None:
    make_dead(app, 1)
    app.enqueue("cli.add", [1, 1], task_id="alive")
    result = invoke("dead", "requeue", "dead-0", "alive", "--redis-url", url)
    assert result.exit_code == 1
    assert "task alive is ready, not dead" in result.stderr
    assert app.get("dead-0").state is taskq.State.DEAD


def test_dead_requeue_to_queue_needs_app(url: str, app: taskq.App) -> None:
    make_dead(app, 1)
    result = invoke("dead", "requeue", "dead-0", "--to-queue", "retry", "--redis-url", url)
    assert result.exit_code == 2
    assert "pass --app" in result.stderr
    assert app.get("dead-0").state is taskq.State.DEAD


def test_dead_requeue_to_queue_moves(url: str, app: taskq.App) -> None:
    make_dead(app, 2)
    result = invoke("dead", "requeue", "--all", "--to-queue", "retry", "--app", APP_SPEC,
                    "--redis-url", url)
    assert result.exit_code == 0, result.output
    assert {app.get(f"dead-{i}", "retry").state for i in range(2)} == {taskq.State.READY}
    assert app.dead_ids("default") == []


def test_dead_purge_asks_first(url: str, app: taskq.App) -> None:
    make_dead(app, 2)
    result = invoke("dead", "purge", "--all", "--redis-url", url, input="n\n")
    assert result.exit_code == 1
    assert "Delete 2 dead tasks" in result.output
    assert len(app.dead_ids("default")) == 2


def test_dead_purge_confirmed(url: str, app: taskq.App) -> None:
    make_dead(app, 2)
    result = invoke("dead", "purge", "--all", "--redis-url", url, input="y\n")
    assert result.exit_code == 0, result.output
    assert "purged 2 dead tasks" in result.stdout
    assert app.dead_ids("default") == []


def test_dead_purge_yes_one_id(url: str, app: taskq.App) -> None:
    make_dead(app, 2)
    result = invoke("dead", "purge", "dead-0", "--yes", "--redis-url", url)
    assert result.exit_code == 0, result.output
    assert app.dead_ids("default") == ["dead-1"]
    with pytest.raises(taskq.TaskNotFoundError):
        app.get("dead-0")


# pause, resume, cancel, explain


def test_pause_and_resume(url: str, app: taskq.App) -> None:
    app.enqueue("cli.add", [1, 1])
    paused = invoke("pause", "default", "--redis-url", url)
    assert paused.exit_code == 0, paused.output
    assert taskq.take_snapshot(app).queues["default"].paused
    again = invoke("pause", "default", "--redis-url", url)
    assert "already paused" in again.stdout
    resumed = invoke("resume", "default", "--redis-url", url)
    assert resumed.exit_code == 0, resumed.output
    assert not taskq.take_snapshot(app).queues["default"].paused


def test_pause_unknown_queue_rejected(url: str, app: taskq.App) -> None:
    app.enqueue("cli.add", [1, 1])
    result = invoke("pause", "defualt", "--redis-url", url)
    assert result.exit_code == 2
    assert "queue 'defualt' not found (known queues: default)" in result.stderr
    forced = invoke("pause", "later", "--force", "--redis-url", url)
    assert forced.exit_code == 0, forced.output


def test_cancel_ready_task(url: str, app: taskq.App) -> None:
    app.enqueue("cli.add", [1, 1], task_id="c1")
    result = invoke("cancel", "c1", "--redis-url", url)
    assert result.exit_code == 0, result.output
    assert app.get("c1").state is taskq.State.CANCELLED


def test_cancel_finished_task_fails(url: str, app: taskq.App) -> None:
    app.enqueue("cli.add", [1, 1], task_id="c1")
    assert invoke("cancel", "c1", "--redis-url", url).exit_code == 0
    result = invoke("cancel", "c1", "--redis-url", url)
    assert result.exit_code == 1
    assert "already finished as cancelled" in result.stderr


def test_cancel_missing_task(url: str, app: taskq.App) -> None:
    app.enqueue("cli.add", [1, 1])
    result = invoke("cancel", "ghost", "--redis-url", url)
    assert result.exit_code == 1
    assert "task 'ghost' not found" in result.stderr


def test_explain_ready_task(url: str, app: taskq.App) -> None:
    app.enqueue("cli.add", [1, 1], task_id="x1")
    result = invoke("explain", "x1", "--redis-url", url)
    assert result.exit_code == 0, result.output
    assert "The task is ready and waiting" in result.stdout
    assert "no live worker serves queue 'default'" in result.stdout


def test_explain_missing_task(url: str, app: taskq.App) -> None:
    result = invoke("explain", "ghost", "--redis-url", url)
    assert result.exit_code == 1
    assert "No task 'ghost' exists" in result.stdout


# URLs, passwords and help


@pytest.mark.parametrize("args", [
    ["stats"], ["events"], ["dead", "list"], ["explain", "x"], ["pause", "q"],
    ["enqueue", "cli.add", "--app", APP_SPEC], ["demo", "--limit", "1"],
])
@pytest.mark.parametrize("secret_url", [
    "redis://:s3cret-pw@127.0.0.1:1/0", "redis://s3cret-pw@127.0.0.1:1/0",
])
def test_password_never_printed(args: list[str], secret_url: str) -> None:
    """Port 1 on localhost refuses the connection, so each command fails and reports it."""
    result = invoke(*args, "--redis-url", secret_url)
    assert result.exit_code == 1
    assert "s3cret" not in result.output
    assert "***@127.0.0.1:1" in result.stderr


def test_bad_url_scheme_masked() -> None:
    result = invoke("stats", "--redis-url", "http://user:s3cret-pw@localhost/0")
    assert result.exit_code == 2
    assert "s3cret" not in result.output
    assert "scheme 'http'" in result.stderr


def test_embedded_default_noted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TASKQ_REDIS_URL", raising=False)
    reset_embedded()
    try:
        result = invoke("stats")
    finally:
        reset_embedded()
    assert result.exit_code == 0, result.output
    assert "using the embedded server" in result.stderr


def _leaf_commands(group: click.Group, prefix: str = "") -> dict[str, click.Command]:
    found: dict[str, click.Command] = {}
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found.update(_leaf_commands(command, f"{prefix}{name} "))
        else:
            found[f"{prefix}{name}"] = command
    return found


def test_every_command_takes_redis_url() -> None:
    commands = _leaf_commands(cli)
    assert {"worker", "enqueue", "stats", "events", "dead list", "dead show", "dead requeue",
            "dead purge", "pause", "resume", "cancel", "explain", "demo"} <= set(commands)
    missing = [name for name, command in commands.items()
               if "--redis-url" not in [o for p in command.params for o in p.opts]]
    assert missing == []


def test_every_option_has_help() -> None:
    undocumented = [f"{name} {param.opts[0]}" for name, command in _leaf_commands(cli).items()
                    for param in command.params
                    if isinstance(param, click.Option) and not param.help]
    assert undocumented == []


def test_worker_defaults_to_task_queues() -> None:
    from taskq import demo_tasks

    assert _task_queues(demo_tasks.app) == ["demo"]
    assert _task_queues(taskq.App()) == ["default"]


def test_subprocess_enqueue_then_stats(url: str) -> None:
    """`python -m taskq` as real processes: enqueue one task, then read it back in stats."""
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "taskq", *args, "--redis-url", url],
                              cwd=ROOT, capture_output=True, text=True, timeout=60)

    enqueued = run("enqueue", "cli.add", "--app", APP_SPEC, "--args", "[2, 3]")
    assert enqueued.returncode == 0, enqueued.stderr
    stats = run("stats", "--json")
    assert stats.returncode == 0, stats.stderr
    data: dict[str, Any] = json.loads(stats.stdout)
    assert data["queues"]["default"]["ready"] == 1
