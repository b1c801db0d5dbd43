"""Keys: one module builds them all; each queue's keys share one hash tag; no two queue names,
however hostile, share a key."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
from redis.crc import key_slot

import taskq
from taskq.keys import GLOBAL_TAG, GlobalKeys, KeySpace, QueueKeys, escape_queue_name
from tests.helpers import Stepper, all_keys, counters, structures_of

PACKAGE = Path(taskq.__file__).resolve().parent

HOSTILE = [
    "plain", "a:b", "a:b:ready:5", "#hash", "with space", " lead", "{braces}", "}{", "a}b",
    "{", "}", "%", "%7B", "%7D", "%25", "_global", "%5Fglobal", "_", "ünïcødé ✓", "队列",
    "emoji 🚀", "*", "a*b?[c]", "tail\\", "x" * 128,
]


def queue_keys(keys: QueueKeys) -> list[str]:
    """Every key a queue can have, read off the keys module itself."""
    out = list(keys.ready_all())
    for name, member in inspect.getmembers(QueueKeys):
        if isinstance(member, property) and name != "pattern":
            out.append(getattr(keys, name))
    return out


def global_keys(keys: GlobalKeys) -> list[str]:
    return [getattr(keys, name) for name, member in inspect.getmembers(GlobalKeys)
            if isinstance(member, property)]


def hash_tag(key: str) -> str | None:
    """The part of a key Redis Cluster hashes: between the first '{' and the next '}'."""
    start = key.find("{")
    end = key.find("}", start + 1)
    if start < 0 or end <= start + 1:
        return None
    return key[start + 1:end]


def test_every_key_function_documents_itself() -> None:
    """Each key has one function (or property) with a docstring saying what it holds."""
    for cls in (QueueKeys, GlobalKeys):
        for name, member in inspect.getmembers(cls):
            if isinstance(member, property):
                assert member.fget.__doc__, f"{cls.__name__}.{name} has no docstring"
    assert QueueKeys.ready.__doc__


def test_no_other_module_builds_a_hash_tagged_key() -> None:
    """Outside keys.py no engine source formats a '{tag}' key or names the global tag."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "keys.py":
            continue
        text = path.read_text(encoding="utf-8")
        for pattern in (r":\{\{", r"\{" + GLOBAL_TAG + r"\}", r"['\"][\w.-]*:\{[^{}'\"]*\}:"):
            if re.search(pattern, text):
                offenders.append(f"{path.relative_to(PACKAGE)}: {pattern}")
    assert offenders == []


def test_scripts_touch_only_keys_they_are_given() -> None:
    """No Lua script builds a key name: every redis.call names a key from KEYS or a local
    bound to KEYS, so each script runs on Redis Cluster."""
    call = re.compile(r"redis\.call\('(\w+)',\s*([^,)]+)")
    keyless = {"TIME"}
    bad = []
    for path in (PACKAGE / "scripts").glob("*.lua"):
        for command, first in call.findall(path.read_text(encoding="utf-8")):
            if command in keyless:
                continue
            if ".." in first or first.strip().startswith(("'", '"')):
                bad.append(f"{path.name}: redis.call('{command}', {first.strip()})")
    assert bad == []


@pytest.mark.parametrize("queue", HOSTILE)
def test_all_keys_of_a_queue_share_one_hash_tag(queue: str) -> None:
    """The tag Redis Cluster hashes is the whole escaped queue name, for every key of it."""
    keys = queue_keys(KeySpace("taskq").queue(queue))

    assert {hash_tag(k) for k in keys} == {escape_queue_name(queue)}
    assert len({key_slot(k.encode("utf-8")) for k in keys}) == 1


def test_global_keys_share_their_own_tag() -> None:
    keys = global_keys(KeySpace("taskq").global_keys)
    assert {hash_tag(k) for k in keys} == {GLOBAL_TAG}


def test_hostile_queue_names_never_collide() -> None:
    """No two queue names share any key, and no queue key is a global key."""
    space = KeySpace("taskq")
    owner: dict[str, str] = {k: "<global>" for k in global_keys(space.global_keys)}
    for queue in HOSTILE:
        for key in queue_keys(space.queue(queue)):
            assert key not in owner, f"{queue!r} and {owner[key]!r} share {key!r}"
            owner[key] = queue


def test_a_queue_pattern_matches_only_its_own_keys(app: taskq.App) -> None:
    """SCAN with one queue's pattern finds that queue's keys and never another's, even for
    names full of glob characters."""
    for queue in HOSTILE:
        keys = app.keys.queue(queue)
        app.client.hset(keys.counters, "n", 1)
        app.client.rpush(keys.ready(3), "id")

    for queue in HOSTILE:
        keys = app.keys.queue(queue)
        found = {k.decode("utf-8") for k in app.client.scan_iter(match=keys.pattern, count=1000)}
        assert found == {keys.counters, keys.ready(3)}, queue
    everything = {k.decode("utf-8") for k in app.client.scan_iter(match=app.keys.pattern)}
    assert len(everything) == 2 * len(HOSTILE)


def test_hostile_queues_run_side_by_side(app: taskq.App) -> None:
    """Tasks in queues with hostile names are stored, listed and run each in its own queue."""
    app.task("which")(lambda: taskq.current_task().queue)
    handles = {queue: [app.enqueue("which", queue=queue) for _ in range(2)]
               for queue in HOSTILE}

    assert app.queues() == sorted(HOSTILE)
    done = [task_id for queue in HOSTILE for task_id in Stepper(app, [queue]).drain()]

    assert len(done) == 2 * len(HOSTILE)
    for queue, pair in handles.items():
        for handle in pair:
            assert handle.result(timeout_s=1) == queue
            assert structures_of(app, queue, handle.id) == ["finished"]
        assert counters(app, queue)["succeeded"] == 2
    expected = {k for q in HOSTILE for k in queue_keys(app.keys.queue(q))}
    expected |= set(global_keys(app.keys.global_keys))
    assert all_keys(app) <= expected, sorted(all_keys(app) - expected)


def test_every_key_the_engine_writes_comes_from_the_keys_module(clocked_app: taskq.App,
                                                                fake_clock: taskq.FakeClock
                                                                ) -> None:
    """After every kind of operation, each key in Redis is one the keys module names."""
    app = clocked_app
    app.task("ok")(lambda: taskq.current_task().progress(0.5) and "fine")
    app.task("bad", max_retries=1, backoff_min_s=1, backoff_max_s=1)(lambda: 1 / 0)
    app.set_lifo("q:1", True)
    app.enqueue_many([taskq.Call("ok", queue="q:1"), taskq.Call("bad", queue="q:1"),
                      taskq.Call("ok", queue="q:1", delay_s=1)])
    cancelled = app.enqueue("ok", queue="q:1", delay_s=60)
    app.cancel(cancelled.id)
    app.pause("q:2")
    app.resume("q:2")
    stepper = Stepper(app, ["q:1"])
    stepper.drain()
    stepper.beat()
    fake_clock.advance(2)
    taskq.Reaper(app, ["q:1"], "r").tick()
    taskq.Promoter(app, ["q:1"], "p").tick()
    stepper.drain()
    app.requeue_dead("q:1", to_queue="q:3")
    app.send_worker_command(stepper.id, {"resize": 2})
    taskq.take_snapshot(app)

    expected = {k for q in ("q:1", "q:2", "q:3") for k in queue_keys(app.keys.queue(q))}
    expected |= set(global_keys(app.keys.global_keys))
    assert all_keys(app) <= expected, sorted(all_keys(app) - expected)
