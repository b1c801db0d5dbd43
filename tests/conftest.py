"""Fixtures shared by every test: the two backends, fast settings, a fake clock, helpers.

Every engine test that takes the ``app`` fixture runs twice: on the embedded fakeredis backend
and on a real Redis server (``TASKQ_TEST_REDIS_URL``, default database 15 on 127.0.0.1:6379,
flushed before each test). When that server does not answer, the real-Redis runs skip, unless
``TASKQ_REQUIRE_REAL_REDIS=1`` (set by CI), where they fail.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis

import taskq
from taskq.connection import reset_embedded

ROOT = Path(__file__).resolve().parent.parent
REAL_REDIS_URL = os.environ.get("TASKQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
REQUIRE_REAL_REDIS = os.environ.get("TASKQ_REQUIRE_REAL_REDIS") == "1"

# Short intervals so recovery, promotion and retention happen within a test's time.
FAST_SETTINGS = taskq.Settings(
    heartbeat_interval_s=0.2,
    lease_s=1.0,
    worker_dead_after_s=1.0,
    worker_retention_s=30.0,
    reaper_interval_s=0.1,
    promoter_max_sleep_s=0.2,
    idle_block_s=0.2,
    janitor_interval_s=0.2,
    shutdown_grace_s=2.0,
    default_backoff_min_s=0.05,
    default_backoff_max_s=0.2,
)


def real_redis_available() -> bool:
    try:
        return bool(redis.Redis.from_url(REAL_REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def _real_client() -> redis.Redis:
    if not real_redis_available():
        message = f"real Redis at {taskq.mask_url(REAL_REDIS_URL)} does not answer"
        if REQUIRE_REAL_REDIS:
            pytest.fail(message + " (TASKQ_REQUIRE_REAL_REDIS=1)")
        pytest.skip(message)
    client = redis.Redis.from_url(REAL_REDIS_URL)
    client.flushdb()
    return client


@pytest.fixture(params=["fake", "real"])
def backend(request: pytest.FixtureRequest) -> str:
    """The backend name: "fake" (embedded fakeredis) or "real" (Redis server)."""
    return str(request.param)


@pytest.fixture
def redis_url(backend: str) -> Iterator[str | None]:
    """The URL to give an App: None for the embedded backend, the test server otherwise."""
    if backend == "fake":
        reset_embedded()
        yield None
        reset_embedded()
    else:
        _real_client()
        yield REAL_REDIS_URL


@pytest.fixture
def settings() -> taskq.Settings:
    return FAST_SETTINGS


@pytest.fixture
def app(redis_url: str | None, settings: taskq.Settings) -> taskq.App:
    """An App on the backend under test with fast settings and no tasks registered."""
    return taskq.App(redis_url, settings=settings)


@pytest.fixture
def fake_clock() -> taskq.FakeClock:
    return taskq.FakeClock(start_s=1_800_000_000.0)


@pytest.fixture
def clocked_app(redis_url: str | None, settings: taskq.Settings,
                fake_clock: taskq.FakeClock) -> taskq.App:
    """An App whose scripts read the fake clock instead of the server's TIME."""
    return taskq.App(redis_url, settings=settings, clock=fake_clock)


@pytest.fixture
def real_redis_url() -> str:
    """The real Redis URL (database flushed); for tests that need separate processes."""
    _real_client()
    return REAL_REDIS_URL


def with_settings(**changes: Any) -> taskq.Settings:
    return replace(FAST_SETTINGS, **changes)


def wait_until(predicate: Callable[[], Any], timeout_s: float = 10.0, interval_s: float = 0.02,
               message: str = "condition") -> Any:
    """Poll ``predicate`` until it returns a truthy value; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {message}")
        time.sleep(interval_s)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_worker_process(redis_url: str, app_spec: str = "tests.sample_tasks:app",
                         queues: str = "default", concurrency: int = 1,
                         extra: list[str] | None = None, env: dict[str, str] | None = None
                         ) -> subprocess.Popen[bytes]:
    """Start a real ``taskq worker`` process with the test settings' short intervals."""
    command = [sys.executable, "-m", "taskq", "worker", "--app", app_spec,
               "--redis-url", redis_url, "--queues", queues,
               "--concurrency", str(concurrency), *(extra or [])]
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.Popen(command, cwd=ROOT, env=full_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
