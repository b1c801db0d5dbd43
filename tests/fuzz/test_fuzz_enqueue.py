"""Hypothesis drives the public enqueue API with hostile values.

Every call either writes a task whose arguments read back exactly as JSON would carry them, or
raises a ``TaskqError`` naming the rejected parameter, with nothing written (key count
unchanged). Values cover wrong types, sizes past the limits, unicode with control characters
and lone surrogates, NaN, infinities and integers too long for JSON.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import taskq
from tests.cases.figures import report
from tests.cases.support import locate

FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

hostile_text = st.text(st.characters(codec=None), max_size=40) | st.sampled_from([
    "", " ", "\x00", "a\nb", "\x7f", "\ud800", "x" * 5000, "%{}", "{q}", "é", "🚫", "𝔘"])
hostile_number = st.one_of(
    st.integers(), st.integers(min_value=10**4300, max_value=10**4400), st.floats(),
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 1e308, 5e-324]),
    # Integers too long for str(): built lazily, because hypothesis prints its strategies.
    st.builds(pow, st.sampled_from([10, -10]), st.just(5001)))
hostile_scalar = st.one_of(st.none(), st.booleans(), hostile_number, hostile_text,
                           st.binary(max_size=20), st.just(object()), st.just(b"\x80\x04\x95"),
                           st.sets(st.integers(), max_size=3), st.just(lambda: 1))
hostile_value = st.recursive(
    hostile_scalar,
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
    | st.dictionaries(hostile_text | st.integers() | st.none(), inner, max_size=3),
    max_leaves=12)

TALLY = {"calls": 0, "rejected": 0, "written": 0}


@pytest.fixture(scope="module", autouse=True)
def figures() -> Iterator[None]:
    yield
    report("fuzz enqueue", calls=TALLY["calls"], rejected=TALLY["rejected"],
           written=TALLY["written"])


@pytest.fixture
def app(real_redis_url: str) -> taskq.App:
    app = taskq.App(real_redis_url)
    app.task("echo")(lambda *args, **kwargs: None)
    return app


def as_json(value: Any) -> Any:
    """What JSON carries back for ``value`` (tuples become lists)."""
    return json.loads(json.dumps(value))


def attempt(app: taskq.App, **call: Any) -> tuple[taskq.TaskHandle | None, str]:
    """Enqueue; returns (handle, "") or (None, message) and checks the rejection wrote nothing."""
    keys_before = app.client.dbsize()
    TALLY["calls"] += 1
    try:
        handle = app.enqueue(**call)
    except taskq.TaskqError as exc:
        TALLY["rejected"] += 1
        assert app.client.dbsize() == keys_before
        return None, str(exc)
    TALLY["written"] += 1
    return handle, ""


@FUZZ
@given(args=st.lists(hostile_value, max_size=4),
       kwargs=st.dictionaries(hostile_text, hostile_value, max_size=3))
def test_hostile_arguments(app: taskq.App, args: list[Any], kwargs: dict[str, Any]) -> None:
    """Arguments are stored exactly, or rejected naming the argument."""
    handle, message = attempt(app, name="echo", args=args, kwargs=kwargs)

    if handle is None:
        assert "argument" in message or "arguments" in message, message
        return
    rec = app.get(handle.id)
    assert rec.args == as_json(args)
    assert rec.kwargs == as_json(kwargs)
    assert locate(app.client, app.keys.queue(handle.queue), handle.id) == ["ready"]


@FUZZ
@given(value=hostile_value)
def test_hostile_priority(app: taskq.App, value: Any) -> None:
    handle, message = attempt(app, name="echo", priority=value)

    if handle is None:
        assert "priority" in message, message
        return
    expected = taskq.DEFAULT_PRIORITY if value is None else value
    assert app.get(handle.id).priority == expected


@FUZZ
@given(value=hostile_value)
def test_hostile_delay(app: taskq.App, value: Any) -> None:
    handle, message = attempt(app, name="echo", delay_s=value)

    if handle is None:
        assert "delay_s" in message, message
        return
    assert app.get(handle.id).state in (taskq.State.SCHEDULED, taskq.State.READY)


@FUZZ
@given(value=hostile_value | st.datetimes(timezones=st.none() | st.just(timezone.utc))
       | st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)).map(
           lambda d: d.replace(tzinfo=timezone(timedelta(hours=-23, minutes=-59)))))
def test_hostile_eta(app: taskq.App, value: Any) -> None:
    handle, message = attempt(app, name="echo", eta=value)

    if handle is None:
        assert "eta" in message, message
        return
    if value is not None:
        assert app.get(handle.id).due_ms == taskq.codec.eta_to_ms(value)


@FUZZ
@given(queue=hostile_value, task_id=hostile_value)
def test_hostile_names(app: taskq.App, queue: Any, task_id: Any) -> None:
    handle, message = attempt(app, name="echo", queue=queue, task_id=task_id)

    if handle is None:
        assert "queue" in message or "task_id" in message, message
        return
    assert handle.queue == ("default" if queue is None else queue)
    assert task_id is None or handle.id == task_id
    assert locate(app.client, app.keys.queue(handle.queue), handle.id) == ["ready"]


@FUZZ
@given(name=hostile_value)
def test_hostile_task_name(app: taskq.App, name: Any) -> None:
    handle, message = attempt(app, name=name)

    assert handle is None or name == "echo"
    if handle is None:
        assert "not registered" in message, message


@pytest.mark.parametrize("parameter", ["priority", "delay_s", "task_id", "queue"])
def test_huge_integer_rejected(app: taskq.App, parameter: str) -> None:
    """An integer too long to print (over 4300 digits) is rejected, naming the parameter."""
    handle, message = attempt(app, name="echo", **{parameter: 10**5000})

    assert handle is None
    assert parameter in message
