"""Hypothesis corrupts task records and arguments in Redis under a running worker.

Each example pauses the queue, enqueues a valid task and a target task, corrupts the target
(random bytes, JSON of the wrong shape, a field missing or of the wrong type, an unknown state,
broken or missing arguments, or a record deleted while its id stays in a ready list), then
resumes the queue. The valid task must succeed, the worker must keep all its slots, and the
target must end in exactly one structure and not in ready or active: run, retrying, or dead
with an error type that names the problem. An id whose record is gone must leave no trace.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import taskq
from tests.cases.figures import report
from tests.cases.support import locate
from tests.conftest import FAST_SETTINGS, REAL_REDIS_URL, real_redis_available, wait_until

FUZZ = settings(max_examples=int(os.environ.get("TASKQ_FUZZ_EXAMPLES", "150")), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
CONCURRENCY = 2
# Error types that name what was wrong with a corrupted task.
NAMED_PROBLEMS = {"CorruptRecord", "DecodeError", "UnknownTask", "InvalidRecord",
                  "InvalidResult", "TaskTimeoutError"}
RECORD_FIELDS = ["id", "name", "queue", "priority", "state", "attempts", "max_retries",
                 "backoff", "timeout_s", "result_ttl_s", "enqueued_ms", "due_ms", "ready_us"]

json_scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10),
                        st.sampled_from([1e308, -1e308, 2**63, -2**63, 10**30, 0.5, -1]))
json_value = st.recursive(json_scalar, lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                          max_leaves=6)
raw_number = st.sampled_from(["1e999", "-1e999", "NaN", "Infinity", "1e308", "-0",
                              "123456789012345678901234567890", "0x10"])

TALLY: dict[str, int] = {}


class Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def running() -> Iterator[tuple[taskq.App, taskq.Worker, Collector]]:
    """One worker for the whole module, on the real test database (flushed first)."""
    if not real_redis_available():
        pytest.skip("real Redis does not answer")
    redis.Redis.from_url(REAL_REDIS_URL).flushdb()
    app = taskq.App(REAL_REDIS_URL, settings=replace(FAST_SETTINGS, lease_s=5.0))
    app.task("echo", max_retries=1)(lambda *args, **kwargs: [list(args), kwargs])
    collector = Collector()
    logging.getLogger("taskq").addHandler(collector)
    worker = taskq.Worker(app, concurrency=CONCURRENCY)
    worker.start()
    yield app, worker, collector
    worker.stop(grace_s=1)
    logging.getLogger("taskq").removeHandler(collector)
    report("fuzz corrupt records", examples=sum(TALLY.values()),
           **{kind: count for kind, count in sorted(TALLY.items())})


@st.composite
def corruptions(draw: st.DrawFn) -> tuple[str, Any]:
    kind = draw(st.sampled_from([
        "record_bytes", "record_shape", "field_removed", "field_wrong", "field_raw_number",
        "state_unknown", "args_bytes", "args_shape", "args_missing", "record_missing"]))
    if kind == "record_bytes":
        return kind, draw(st.binary(max_size=60) | st.just(b"\x80\x04\x95garbage"))
    if kind == "record_shape":
        return kind, draw(json_value.filter(lambda v: not isinstance(v, dict)) | st.just({}))
    if kind == "field_removed":
        return kind, draw(st.sampled_from(RECORD_FIELDS))
    if kind in ("field_wrong", "field_raw_number"):
        field = draw(st.sampled_from(RECORD_FIELDS))
        value = draw(json_value if kind == "field_wrong" else raw_number)
        return kind, (field, value)
    if kind == "state_unknown":
        return kind, draw(st.text(max_size=10).filter(
            lambda s: s not in {state.value for state in taskq.State}))
    if kind == "args_bytes":
        return kind, draw(st.binary(max_size=60))
    if kind == "args_shape":
        return kind, draw(json_value)
    return kind, None


def corrupt(app: taskq.App, task_id: str, kind: str, detail: Any) -> None:
    keys = app.keys.queue("default")
    raw = json.loads(app.client.hget(keys.tasks, task_id))
    if kind == "record_bytes":
        app.client.hset(keys.tasks, task_id, detail)
    elif kind == "record_shape":
        app.client.hset(keys.tasks, task_id, json.dumps(detail))
    elif kind == "field_removed":
        raw.pop(detail, None)
        app.client.hset(keys.tasks, task_id, json.dumps(raw))
    elif kind == "field_wrong":
        raw[detail[0]] = detail[1]
        app.client.hset(keys.tasks, task_id, json.dumps(raw))
    elif kind == "field_raw_number":
        raw[detail[0]] = "@@"
        app.client.hset(keys.tasks, task_id, json.dumps(raw).replace('"@@"', detail[1]))
    elif kind == "state_unknown":
        raw["state"] = detail
        app.client.hset(keys.tasks, task_id, json.dumps(raw))
    elif kind == "args_bytes":
        app.client.hset(keys.args, task_id, detail)
    elif kind == "args_shape":
        app.client.hset(keys.args, task_id, json.dumps(detail))
    elif kind == "args_missing":
        app.client.hdel(keys.args, task_id)
    elif kind == "record_missing":
        app.client.hdel(keys.tasks, task_id)


def settled(app: taskq.App, task_id: str) -> bool:
    """True once the target sits in no ready list and is not leased."""
    where = locate(app.client, app.keys.queue("default"), task_id)
    return "ready" not in where and "active" not in where


@FUZZ
@given(corruption=corruptions(), number=st.integers())
def test_corrupt_record_never_stops_worker(
        running: tuple[taskq.App, taskq.Worker, Collector], corruption: tuple[str, Any],
        number: int) -> None:
    """The valid task succeeds, the worker keeps its slots, and the target is accounted for."""
    app, worker, collector = running
    kind, detail = corruption
    TALLY[kind] = TALLY.get(kind, 0) + 1
    keys = app.keys.queue("default")
    app.pause("default")
    target = app.enqueue("echo", (number,)).id
    valid = app.enqueue("echo", (number,), {"k": "v"}).id
    corrupt(app, target, kind, detail)
    started = time.monotonic()
    app.resume("default")

    wait_until(lambda: app.get(valid).state is taskq.State.SUCCEEDED, timeout_s=10,
               message=f"valid task succeeded after {kind}")
    wait_until(lambda: settled(app, target), timeout_s=10,
               message=f"target settled after {kind} {detail!r}")

    assert app.get(valid).result == [[number], {"k": "v"}]
    assert not [m for m in collector.messages if "slot crashed" in m or "tick failed" in m]
    assert len([t for t in worker._slot_threads.values() if t.is_alive()]) == CONCURRENCY
    where = locate(app.client, keys, target)
    record = app.client.hget(keys.tasks, target)
    if record is None:
        assert where == [], (kind, detail)
        return
    assert len(where) == 1, (kind, detail, where)
    rec = app.get(target)
    if rec.state is taskq.State.DEAD:
        assert (rec.error or {}).get("type") in NAMED_PROBLEMS, (kind, detail, rec.error)
    assert time.monotonic() - started < 20


@pytest.mark.parametrize(("field", "value", "outcome"), [
    ("result_ttl_s", 1e308, "InvalidRecord"),
    ("state", "paused", "CorruptRecord"),
    ("attempts", "NaN", "CorruptRecord"),
    ("name", ["echo"], "UnknownTask"),
    ("timeout_s", 1e308, None),
], ids=["ttl-overflows", "unknown-state", "nan-number", "name-not-text", "timeout-huge"])
def test_unusable_record_value_goes_dead(running: tuple[taskq.App, taskq.Worker, Collector],
                                         field: str, value: Any, outcome: str | None) -> None:
    """A record value the engine cannot use sends the task dead with a named error type; one
    it can use (``outcome`` None) lets the task succeed. The worker keeps every slot."""
    app, worker, _ = running
    keys = app.keys.queue("default")
    app.pause("default")
    task_id = app.enqueue("echo", (1,)).id
    raw = json.loads(app.client.hget(keys.tasks, task_id))
    raw[field] = "@@"
    encoded = json.dumps(value) if value != "NaN" else "NaN"
    app.client.hset(keys.tasks, task_id, json.dumps(raw).replace('"@@"', encoded))
    app.resume("default")

    wait_until(lambda: settled(app, task_id), timeout_s=10, message="task settled")

    rec = app.get(task_id)
    if outcome is None:
        assert rec.state is taskq.State.SUCCEEDED
    else:
        assert rec.state is taskq.State.DEAD
        assert (rec.error or {}).get("type") == outcome
    assert len([t for t in worker._slot_threads.values() if t.is_alive()]) == CONCURRENCY
    assert worker._watchdog is not None and worker._watchdog._thread.is_alive()
