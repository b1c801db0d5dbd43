"""Enqueue: one Lua call writes each task whole, and bad input is refused before any write."""

from __future__ import annotations

import json
import math
import socket
from typing import Any

import pytest

import taskq
from tests.conftest import with_settings
from tests.helpers import (
    assert_where_state_says,
    counters,
    events,
    key_count,
    ready_ids,
    structures_of,
)


def define_tasks(app: taskq.App) -> None:
    app.task("echo")(lambda *args, **kwargs: [list(args), kwargs])
    app.task("mail.send", queue="mail", priority=7, max_retries=1)(lambda to: to)


@pytest.fixture
def echo_app(app: taskq.App) -> taskq.App:
    define_tasks(app)
    return app


def test_enqueue_writes_a_ready_task_with_its_arguments(echo_app: taskq.App) -> None:
    """A task due now is ready at once, with its arguments, defaults and an event."""
    handle = echo_app.enqueue("echo", (1, "zwölf", [None, 2.5]), {"flag": True})

    rec = echo_app.get(handle.id)
    assert handle.created and handle.queue == "default"
    assert (rec.state, rec.attempts, rec.priority, rec.name) == (
        taskq.State.READY, 0, taskq.DEFAULT_PRIORITY, "echo")
    assert rec.args == [1, "zwölf", [None, 2.5]]
    assert rec.kwargs == {"flag": True}
    assert assert_where_state_says(echo_app, "default", handle.id) == "ready:5"
    assert counters(echo_app)["enqueued"] == 1
    assert [e.task_id for e in events(echo_app, kind="enqueued")] == [handle.id]
    assert echo_app.queues() == ["default"]


def test_arguments_are_stored_as_json_never_pickled(echo_app: taskq.App) -> None:
    """The stored arguments are a JSON document a person can read."""
    handle = echo_app.enqueue("echo", ("ü", 3), {"n": {"deep": [1]}})

    raw = echo_app.client.hget(echo_app.keys.queue("default").args, handle.id)
    assert json.loads(raw.decode("utf-8")) == {"args": ["ü", 3], "kwargs": {"n": {"deep": [1]}}}


def test_registered_defaults_apply_and_enqueue_options_override_them(echo_app: taskq.App
                                                                     ) -> None:
    """A task's queue and priority come from its registration unless the call overrides them."""
    send = echo_app.lookup("mail.send")
    default = echo_app.enqueue("mail.send", ("a@example.org",))
    override = echo_app.enqueue("mail.send", ("b@example.org",), queue="bulk", priority=0)

    assert send.options.queue == "mail"
    assert structures_of(echo_app, "mail", default.id) == ["ready:7"]
    assert structures_of(echo_app, "bulk", override.id) == ["ready:0"]
    assert echo_app.get(override.id).queue == "bulk"
    assert echo_app.queues() == ["bulk", "mail"]


def test_task_function_runs_inline_and_enqueues(app: taskq.App) -> None:
    """Calling a task runs its body here; ``enqueue`` sends it to the queue instead."""
    @app.task(name="double", queue="math")
    def double(x: int) -> int:
        return 2 * x

    handle = double.enqueue(21)

    assert double(21) == 42
    assert app.get(handle.id).args == [21]
    assert handle.queue == "math"


def test_enqueue_many_uses_one_call_per_queue_and_chunk(redis_url: str | None) -> None:
    """A batch is split per queue and per ``max_tasks_per_call``, and every task lands."""
    app = taskq.App(redis_url, settings=with_settings(max_tasks_per_call=3))
    define_tasks(app)
    calls_made: list[str] = []
    run = app.scripts.run

    def counting_run(name: str, keys: list[str], args: list[Any]) -> Any:
        calls_made.append(name)
        return run(name, keys, args)

    app.scripts.run = counting_run  # type: ignore[method-assign]
    batch = [taskq.Call("echo", (i,), queue="a" if i < 5 else "b") for i in range(7)]

    handles = app.enqueue_many(batch)

    assert calls_made == ["enqueue"] * 3  # a: 3 + 2, b: 2
    assert [h.queue for h in handles] == ["a"] * 5 + ["b"] * 2
    assert ready_ids(app, "a") == [h.id for h in handles[:5]]
    assert ready_ids(app, "b") == [h.id for h in handles[5:]]


def test_one_invalid_call_in_a_batch_writes_nothing(echo_app: taskq.App) -> None:
    """Every call is checked before the first write, so a bad one leaves Redis untouched."""
    echo_app.enqueue("echo")
    before = key_count(echo_app)
    batch = [taskq.Call("echo", (1,)), taskq.Call("echo", (2,), queue="other"),
             taskq.Call("echo", (3,), priority=99)]

    with pytest.raises(taskq.InvalidTaskError, match="priority 99"):
        echo_app.enqueue_many(batch)

    assert key_count(echo_app) == before
    assert counters(echo_app)["enqueued"] == 1


@pytest.mark.parametrize("priority", [taskq.MAX_PRIORITY + 1, taskq.MIN_PRIORITY - 1,
                                      math.nan, 1.5, True, "high!", 2**64])
def test_invalid_priority_is_refused_naming_the_range(echo_app: taskq.App, priority: Any
                                                      ) -> None:
    """A priority outside the integer range raises at enqueue, and no key is written."""
    before = key_count(echo_app)

    with pytest.raises(taskq.InvalidTaskError) as caught:
        echo_app.enqueue("echo", priority=priority)

    assert f"from {taskq.MIN_PRIORITY}" in str(caught.value)
    assert f"to {taskq.MAX_PRIORITY}" in str(caught.value)
    assert key_count(echo_app) == before


def test_every_priority_of_the_range_is_accepted(echo_app: taskq.App) -> None:
    """Both ends of the range and everything between land in their own ready list."""
    for priority in range(taskq.MIN_PRIORITY, taskq.MAX_PRIORITY + 1):
        handle = echo_app.enqueue("echo", priority=priority)
        assert structures_of(echo_app, "default", handle.id) == [f"ready:{priority}"]


class _Unencodable(list):  # type: ignore[type-arg]
    """A list whose iteration raises, as a broken custom container would."""

    def __iter__(self) -> Any:
        raise RuntimeError("cannot iterate")


def _circular() -> list[Any]:
    loop: list[Any] = []
    loop.append(loop)
    return loop


@pytest.mark.parametrize(("args", "kwargs", "named"), [
    ((lambda: 1,), {}, "args[0]"),
    ((1, _Unencodable([1])), {}, "args[1]"),
    ((), {"when": math.inf}, "when"),
    ((), {"loop": _circular()}, "loop"),
    ((b"raw bytes",), {}, "args[0]"),
    (("\ud800",), {}, "surrogate"),
])
def test_arguments_that_cannot_be_json_are_refused_naming_them(
        echo_app: taskq.App, args: tuple[Any, ...], kwargs: dict[str, Any], named: str) -> None:
    """An argument JSON cannot hold raises at once, naming it, and writes nothing."""
    before = key_count(echo_app)

    with pytest.raises(taskq.InvalidTaskError, match=named.replace("[", r"\[").replace("]", r"\]")):
        echo_app.enqueue("echo", args, kwargs)

    assert key_count(echo_app) == before


def test_an_open_socket_argument_is_refused(echo_app: taskq.App) -> None:
    """A socket is not data: the call raises naming the argument and writes nothing."""
    before = key_count(echo_app)
    with socket.socket() as sock, pytest.raises(taskq.InvalidTaskError, match="conn"):
        echo_app.enqueue("echo", (), {"conn": sock})
    assert key_count(echo_app) == before


def test_oversized_arguments_are_refused_naming_the_limit(echo_app: taskq.App) -> None:
    """A 50 MB argument raises PayloadTooLargeError with the limit, and nothing is written."""
    before = key_count(echo_app)
    limit = echo_app.settings.max_payload_bytes

    with pytest.raises(taskq.PayloadTooLargeError) as caught:
        echo_app.enqueue("echo", ("x" * (50 * 1024 * 1024),))

    assert str(limit) in str(caught.value)
    assert "max_payload_bytes" in str(caught.value)
    assert key_count(echo_app) == before


def test_arguments_just_under_the_limit_are_accepted(echo_app: taskq.App) -> None:
    """The limit counts the encoded JSON in bytes; a payload of exactly the limit fits."""
    overhead = len('{"args": [""], "kwargs": {}}')
    limit = echo_app.settings.max_payload_bytes
    handle = echo_app.enqueue("echo", ("y" * (limit - overhead),))

    assert len(echo_app.get(handle.id).args[0]) == limit - overhead
    with pytest.raises(taskq.PayloadTooLargeError):
        echo_app.enqueue("echo", ("y" * (limit - overhead + 1),))


@pytest.mark.parametrize(("field", "value", "message"), [
    ("queue", "", "queue is empty"),
    ("queue", "q" * 129, "at most 128"),
    ("queue", "bad\nname", "control characters"),
    ("queue", 7, "use a string"),
    ("task_id", "", "task_id is empty"),
    ("task_id", "i" * 201, "at most 200"),
    ("task_id", "tab\there", "control characters"),
])
def test_invalid_queue_names_and_ids_are_refused(echo_app: taskq.App, field: str, value: Any,
                                                 message: str) -> None:
    """Queue names and ids must be short printable text; the error says what to change."""
    before = key_count(echo_app)
    with pytest.raises(taskq.InvalidTaskError, match=message):
        echo_app.enqueue("echo", **{field: value})
    assert key_count(echo_app) == before


@pytest.mark.parametrize(("options", "message"), [
    ({"delay_s": -1}, "negative"),
    ({"delay_s": math.nan}, "finite"),
    ({"delay_s": math.inf}, "finite"),
    ({"delay_s": "5"}, "seconds as a number"),
    ({"delay_s": True}, "seconds as a number"),
    ({"delay_s": 11 * 365 * 24 * 3600.0}, "not milliseconds"),
    ({"eta": "2030-01-01"}, "use a datetime"),
    ({"eta": 1_900_000_000}, "use a datetime"),
])
def test_invalid_delays_and_etas_are_refused(echo_app: taskq.App, options: dict[str, Any],
                                            message: str) -> None:
    """A delay must be finite, non-negative seconds and an eta a datetime."""
    before = key_count(echo_app)
    with pytest.raises(taskq.InvalidTaskError, match=message):
        echo_app.enqueue("echo", **options)
    assert key_count(echo_app) == before


def test_delay_and_eta_together_are_refused(echo_app: taskq.App) -> None:
    """Passing both would leave the due time ambiguous."""
    from datetime import datetime, timezone
    with pytest.raises(taskq.InvalidTaskError, match="either delay_s or eta"):
        echo_app.enqueue("echo", delay_s=1, eta=datetime.now(timezone.utc))


def test_unknown_task_name_is_refused_listing_the_registered_ones(echo_app: taskq.App) -> None:
    """Enqueueing a name the app does not know raises UnknownTaskError and writes nothing."""
    before = key_count(echo_app)
    with pytest.raises(taskq.UnknownTaskError, match="echo, mail.send"):
        echo_app.enqueue("ehco")
    assert key_count(echo_app) == before


def test_caller_supplied_id_makes_enqueue_idempotent(echo_app: taskq.App) -> None:
    """A second enqueue with an existing id writes nothing and says so."""
    first = echo_app.enqueue("echo", (1,), task_id="order-17")
    second = echo_app.enqueue("echo", (2,), task_id="order-17", priority=9)

    assert first.created and not second.created
    assert second.id == "order-17"
    assert echo_app.get("order-17").args == [1]
    assert structures_of(echo_app, "default", "order-17") == ["ready:5"]
    assert counters(echo_app)["enqueued"] == 1
    assert len(events(echo_app, task_id="order-17")) == 1


def test_duplicate_ids_inside_one_batch_create_one_task(echo_app: taskq.App) -> None:
    """Within one batch the first call with an id wins and the repeats report not created."""
    handles = echo_app.enqueue_many([taskq.Call("echo", (i,), task_id="same") for i in range(3)])

    assert [h.created for h in handles] == [True, False, False]
    assert echo_app.get("same").args == [0]
    assert structures_of(echo_app, "default", "same") == ["ready:5"]


def test_same_id_in_two_queues_is_two_tasks(echo_app: taskq.App) -> None:
    """Ids are unique per queue; reading an id held by two queues asks for the queue."""
    echo_app.enqueue("echo", (1,), task_id="shared", queue="a")
    echo_app.enqueue("echo", (2,), task_id="shared", queue="b")

    assert echo_app.get("shared", queue="a").args == [1]
    assert echo_app.get("shared", queue="b").args == [2]
    with pytest.raises(taskq.TaskNotFoundError, match="several queues"):
        echo_app.get("shared")


def test_reading_an_unknown_id_raises_task_not_found(echo_app: taskq.App) -> None:
    """An id that was never enqueued is reported as not found, with the id."""
    echo_app.enqueue("echo")
    with pytest.raises(taskq.TaskNotFoundError) as caught:
        echo_app.get("nope")
    assert caught.value.task_id == "nope"
