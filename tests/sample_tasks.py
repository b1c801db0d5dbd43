"""Tasks used by tests that run real worker processes (``--app tests.sample_tasks:app``)."""

from __future__ import annotations

import time

import taskq
from tests.conftest import FAST_SETTINGS

app = taskq.App(settings=FAST_SETTINGS)


@app.task(name="add")
def add(x: int, y: int) -> int:
    return x + y


@app.task(name="sleep_and_count", max_retries=5)
def sleep_and_count(seconds: float, counter_key: str) -> str:
    """Sleep, then count one run under ``counter_key`` in the test Redis."""
    time.sleep(seconds)
    app.client.incr(counter_key)
    return taskq.current_task().task_id


@app.task(name="busy_loop", max_retries=0)
def busy_loop(seconds: float) -> int:
    """Keep the CPU busy in pure Python for ``seconds``."""
    deadline = time.perf_counter() + seconds
    spins = 0
    while time.perf_counter() < deadline:
        spins += 1
    return spins


@app.task(name="record_run", max_retries=3)
def record_run(log_key: str) -> None:
    """Append this task's id to a Redis list, so tests can count runs per id."""
    app.client.rpush(log_key, taskq.current_task().task_id)


@app.task(name="sleep_for", max_retries=3)
def sleep_for(seconds: float) -> float:
    """Sleep ``seconds`` in one call and return them: a long, blocking task body."""
    time.sleep(seconds)
    return seconds


HOSTILE_MESSAGE = "glāžšķūņ — 失败 — 🚫 — \x00 tail"


class UnprintableError(Exception):
    """An exception whose ``str()`` itself raises."""

    def __str__(self) -> str:
        raise RuntimeError("__str__ of UnprintableError failed")


@app.task(name="raise_hostile_text", max_retries=0)
def raise_hostile_text() -> None:
    raise ValueError(HOSTILE_MESSAGE)


@app.task(name="raise_unprintable", max_retries=0)
def raise_unprintable() -> None:
    raise UnprintableError()


@app.task(name="raise_long_message", max_retries=0)
def raise_long_message(chars: int) -> None:
    raise ValueError("L" * chars)
