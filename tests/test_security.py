"""Security checks: no pickle, only registered task names run, passwords never shown, servers
bind loopback by default, destructive commands ask first, and TLS against a real server.

Passwords and TLS run against private ``redis-server`` processes (see ``redis_servers.py``); the
TLS one uses a self-signed certificate for 127.0.0.1 made by ``openssl`` at test time.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

import taskq
from taskq.cli import cli
from tests.cases.support import WorkerProcess, mirror_app, wait_for_state, worker_processes
from tests.conftest import ROOT
from tests.redis_servers import RedisServer, redis_servers
from tests.sample_tasks import app as sample_app

__all__ = ["redis_servers", "worker_processes"]

PASSWORD = "s3cret-Pass-4217"
# Modules that deserialize arbitrary Python objects.
UNSAFE_DESERIALIZERS = re.compile(
    r"\b(c?pickle|cloudpickle|dill|jsonpickle|shelve|marshal)\b|yaml\.(unsafe_)?load\b")


def engine_sources() -> list[Path]:
    return sorted((ROOT / "taskq").rglob("*.py")) + sorted((ROOT / "taskq").rglob("*.lua"))


def test_no_pickle_in_engine() -> None:
    """No engine source file names pickle or another object deserializer."""
    sources = engine_sources()
    hits = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
            for path in sources
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
            if UNSAFE_DESERIALIZERS.search(line)]

    assert len(sources) > 20
    assert hits == []


def test_only_registered_names_run(real_redis_url: str, tmp_path: Path,
                                   worker_processes: Callable[..., WorkerProcess]) -> None:
    """Names that resolve to importable callables but are not registered never run."""
    marker = tmp_path / "ran"
    app = mirror_app(sample_app, real_redis_url)
    names = ["os.system", "subprocess.run", "builtins.eval", "tests.sample_tasks.add",
             "tests.sample_tasks:add", "__import__"]
    for name in names:
        app.task(name)(lambda *args, **kwargs: None)
    attempts = {
        "os.system": [f"touch {marker}"],
        "subprocess.run": [["touch", str(marker)]],
        "builtins.eval": [f"open({str(marker)!r}, 'w')"],
        "tests.sample_tasks.add": [1, 2],
        "tests.sample_tasks:add": [1, 2],
        "__import__": ["os"],
    }
    ids = {name: app.enqueue(name, args).id for name, args in attempts.items()}
    worker_processes(real_redis_url)

    for name, task_id in ids.items():
        wait_for_state(app, task_id, taskq.State.DEAD, timeout_s=15)
        assert (app.get(task_id).error or {}).get("type") == "UnknownTask", name
    assert not marker.exists()


def test_unregistered_name_rejected_at_enqueue(app: taskq.App) -> None:
    """A producer cannot enqueue a name its app did not register."""
    with pytest.raises(taskq.UnknownTaskError) as caught:
        app.enqueue("os.system", ["true"])

    assert "'os.system' is not registered" in str(caught.value)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "taskq", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=60,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def test_password_masked_everywhere(redis_servers: Callable[..., RedisServer],
                                    worker_processes: Callable[..., WorkerProcess],
                                    caplog: pytest.LogCaptureFixture) -> None:
    """The password shows in no log line, error message or CLI output."""
    server = redis_servers(password=PASSWORD)
    url = server.url
    wrong = url.replace(PASSWORD, PASSWORD + "-wrong")
    caplog.set_level(logging.DEBUG, logger="taskq")

    app = mirror_app(sample_app, url)
    handle = app.enqueue("add", (2, 3))
    worker = worker_processes(url)
    wait_for_state(app, handle.id, taskq.State.SUCCEEDED, timeout_s=15)
    with pytest.raises(redis.AuthenticationError) as auth_error:
        mirror_app(sample_app, wrong).enqueue("add", (1, 1))
    with pytest.raises(taskq.ConfigurationError) as scheme_error:
        taskq.App(url.replace("redis://", "http://")).client.ping()
    cli_ok = run_cli("enqueue", "add", "--app", "tests.sample_tasks:app", "--redis-url", url,
                     "--args", "[1, 2]")
    cli_stats = run_cli("stats", "--redis-url", url)
    cli_denied = run_cli("stats", "--redis-url", wrong)
    cli_down = run_cli("stats", "--redis-url", url.replace(str(server.port), "1"))

    texts = {
        "engine log": caplog.text,
        "worker output": worker.output(),
        "authentication error": str(auth_error.value),
        "scheme error": str(scheme_error.value),
        "cli enqueue": cli_ok.stdout + cli_ok.stderr,
        "cli stats": cli_stats.stdout + cli_stats.stderr,
        "cli wrong password": cli_denied.stdout + cli_denied.stderr,
        "cli server down": cli_down.stdout + cli_down.stderr,
    }
    assert cli_ok.returncode == 0, cli_ok.stderr
    assert cli_stats.returncode == 0, cli_stats.stderr
    assert cli_denied.returncode != 0
    assert cli_down.returncode != 0
    assert "***" in worker.output()
    assert "***" in texts["scheme error"]
    for where, text in texts.items():
        assert PASSWORD not in text, where


def test_mask_url_hides_password_forms() -> None:
    """Every URL form that carries a secret is shown without it."""
    cases = {
        f"redis://:{PASSWORD}@127.0.0.1:6379/0": "redis://:***@127.0.0.1:6379/0",
        f"redis://user:{PASSWORD}@127.0.0.1:6379/0": "redis://user:***@127.0.0.1:6379/0",
        f"rediss://{PASSWORD}@127.0.0.1:6380": "rediss://***@127.0.0.1:6380",
        "redis://127.0.0.1:6379/0": "redis://127.0.0.1:6379/0",
    }
    for url, shown in cases.items():
        assert taskq.mask_url(url) == shown


def test_tls_round_trip(redis_servers: Callable[..., RedisServer],
                        worker_processes: Callable[..., WorkerProcess]) -> None:
    """A task enqueued over rediss:// runs on a worker connected over rediss://."""
    server = redis_servers(tls=True, password=PASSWORD)
    assert server.tls is not None
    url = f"{server.url}?ssl_ca_certs={server.tls.cert}"
    app = mirror_app(sample_app, url)

    handle = app.enqueue("add", (20, 22))
    worker = worker_processes(url)
    wait_for_state(app, handle.id, taskq.State.SUCCEEDED, timeout_s=20)

    assert app.get(handle.id).result == 42
    assert str(app.backend).startswith("rediss://")
    assert PASSWORD not in worker.output()
    plain = redis.Redis(host="127.0.0.1", port=server.port, password=PASSWORD,
                        socket_timeout=2, socket_connect_timeout=2)
    with pytest.raises(redis.ConnectionError):
        plain.ping()
    untrusted = redis.Redis.from_url(server.url, socket_timeout=2, socket_connect_timeout=2)
    with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
        untrusted.ping()


def test_servers_bind_loopback_by_default() -> None:
    """The dashboard and the HTTP API bind 127.0.0.1 unless configured otherwise, and need a token
    on any other address."""
    from taskq import api, dashboard_server

    assert dashboard_server.DEFAULT_HOST == "127.0.0.1"
    assert api.DEFAULT_HOST == "127.0.0.1"
    assert dashboard_server.choose_token("127.0.0.1", None) is None
    assert dashboard_server.choose_token("0.0.0.0", None)
    command = dashboard_server.voila_command(Path("x.ipynb"), "0.0.0.0", 8866,
                                             dashboard_server.choose_token("0.0.0.0", None))
    assert any(part.startswith("--token=") for part in command)
    with pytest.raises(taskq.ConfigurationError):
        api.check_bind("0.0.0.0", None)
    api.check_bind("0.0.0.0", "a-token")
    api.check_bind("127.0.0.1", None)


def test_purge_asks_for_confirmation(real_redis_url: str) -> None:
    """``taskq dead purge --all`` deletes nothing unless the prompt is confirmed."""
    app = taskq.App(real_redis_url)
    app.task("fail", max_retries=0)(lambda: 1 / 0)
    handle = app.enqueue("fail")
    worker = taskq.Worker(app)
    worker.start()
    try:
        wait_for_state(app, handle.id, taskq.State.DEAD, timeout_s=10)
    finally:
        worker.stop(grace_s=1)
    command = ["dead", "purge", "--all", "--redis-url", real_redis_url]

    declined = CliRunner().invoke(cli, command, input="n\n")
    kept = app.client.zcard(app.keys.queue("default").dead)
    confirmed = CliRunner().invoke(cli, command, input="y\n")

    assert declined.exit_code != 0
    assert kept == 1
    assert confirmed.exit_code == 0, confirmed.output
    assert app.client.zcard(app.keys.queue("default").dead) == 0
