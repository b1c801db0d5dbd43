"""Payloads that cannot be decoded fail their task at once; ones that cannot be encoded are
rejected before anything is written.

Worker side: a record whose arguments are a pickle header followed by garbage (bytes 80 04 95),
a record that is itself those bytes, and a task name the worker does not know, then a normal
task. Producer side: a lambda, an open socket, an object whose encoding raises, and a 50 MB
string, each passed as an argument.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import pytest

import taskq
from tests.cases.support import WorkerProcess, census, mirror_app, wait_for_state
from tests.sample_tasks import app as sample_app

pytestmark = pytest.mark.chaos  # the reported-failure scenarios are part of the chaos suite

PICKLE_GARBAGE = b"\x80\x04\x95garbage"


def test_undecodable_tasks_go_dead_at_once(real_redis_url: str,
                                           worker_processes: Callable[..., WorkerProcess]
                                           ) -> None:
    """Each bad task is dead within 1 s with an error type naming the problem."""
    app = mirror_app(sample_app, real_redis_url)
    app.task("not_in_worker")(lambda: None)
    keys = app.keys.queue("default")
    worker = worker_processes(real_redis_url)
    worker.wait_started()

    app.pause("default")  # so that no task is claimed before it is corrupted
    bad_args = app.enqueue("add", (1, 2)).id
    app.client.hset(keys.args, bad_args, PICKLE_GARBAGE)
    unknown = app.enqueue("not_in_worker").id
    app.client.hset(keys.tasks, "corrupt-record", PICKLE_GARBAGE)
    app.client.lpush(keys.ready(taskq.DEFAULT_PRIORITY), "corrupt-record")
    app.client.lpush(keys.wake, "1")
    normal = app.enqueue("add", (2, 3)).id
    started = time.monotonic()
    app.resume("default")

    deaths = {task_id: wait_for_state(app, task_id, taskq.State.DEAD, timeout_s=5) - started
              for task_id in (bad_args, unknown, "corrupt-record")}
    wait_for_state(app, normal, taskq.State.SUCCEEDED, timeout_s=5)

    assert max(deaths.values()) <= 1.0, deaths
    assert (app.get(bad_args).error or {})["type"] == "DecodeError"
    assert "cannot decode" in (app.get(bad_args).error or {})["message"]
    assert (app.get(unknown).error or {})["type"] == "UnknownTask"
    assert "not_in_worker" in (app.get(unknown).error or {})["message"]
    assert (app.get("corrupt-record").error or {})["type"] == "CorruptRecord"
    assert app.get(normal).result == 5
    assert census(app.client, keys).count("active") == 0
    assert worker.alive()
    assert worker.count("slot crashed") == 0


class EncodingFails(dict):  # type: ignore[type-arg]
    """A mapping whose items cannot be listed, so JSON encoding raises inside json.dumps."""

    def items(self) -> Any:
        raise RuntimeError("items() of EncodingFails failed")


def unencodable_arguments() -> list[tuple[str, tuple[Any, ...], dict[str, Any], str]]:
    """(label, args, kwargs, the argument the error must name)."""
    return [
        ("lambda", (lambda: 1,), {}, "args[0]"),
        ("socket", (), {"conn": socket.socket()}, "conn"),
        ("encoding raises", (1, EncodingFails(a=1)), {}, "args[1]"),
    ]


@pytest.mark.parametrize(("label", "args", "kwargs", "named"), unencodable_arguments(),
                         ids=[case[0] for case in unencodable_arguments()])
def test_unencodable_argument_rejected(app: taskq.App, label: str, args: tuple[Any, ...],
                                       kwargs: dict[str, Any], named: str) -> None:
    """The call raises at once naming the argument, and Redis is left untouched."""
    app.task("sink")(lambda *a, **k: None)
    keys_before = app.client.dbsize()

    started = time.monotonic()
    with pytest.raises(taskq.InvalidTaskError) as caught:
        app.enqueue("sink", args, kwargs)
    elapsed_s = time.monotonic() - started

    for value in list(args) + list(kwargs.values()):
        if isinstance(value, socket.socket):
            value.close()
    assert f"argument {named}" in str(caught.value)
    assert elapsed_s < 1.0
    assert app.client.dbsize() == keys_before


def test_oversized_argument_rejected(app: taskq.App) -> None:
    """A 50 MB argument raises a size error naming the limit; nothing is written."""
    app.task("sink")(lambda *a, **k: None)
    keys_before = app.client.dbsize()

    with pytest.raises(taskq.PayloadTooLargeError) as caught:
        app.enqueue("sink", ("x" * (50 * 1024 * 1024),))

    message = str(caught.value)
    assert f"limit of {app.settings.max_payload_bytes} bytes" in message
    assert "max_payload_bytes" in message
    assert app.client.dbsize() == keys_before
