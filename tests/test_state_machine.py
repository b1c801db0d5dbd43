"""A model-based test: random sequences of every operation, checked after each step against
a model, with the invariant that each task sits in exactly the structure its state names."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import taskq
from tests.conftest import with_settings
from tests.helpers import locate_all, structure_for_state

QUEUE = "default"
LEASE_MS = 1000
RESULT_TTL_MS = 4000
MAX_RETRIES = 1
WORKERS = ("w1", "w2")


@dataclass
class ModelTask:
    """What the model expects of one task."""

    state: str
    priority: int
    due_ms: int = 0
    lease_deadline_ms: int = 0
    attempts: int = 0
    token: str = ""
    expires_ms: float = 0.0
    cancel_requested: bool = False
    tokens_seen: list[str] = field(default_factory=list)


RECORD = {"name": "noop", "queue": QUEUE, "max_retries": MAX_RETRIES,
          "result_ttl_s": RESULT_TTL_MS / 1000}
ARGS = json.dumps({"args": [], "kwargs": {}})
ERROR = json.dumps({"type": "Boom", "message": "x", "traceback": "", "truncated": False})


class QueueMachine(RuleBasedStateMachine):
    """Operations on one queue through the engine's scripts, mirrored in a model.

    A subclass binds ``app`` and ``clock`` (see the test at the bottom).
    """

    app: taskq.App
    clock: taskq.FakeClock

    def __init__(self) -> None:
        super().__init__()
        self.app.client.flushdb()
        self.keys = self.app.keys.queue(QUEUE)
        self.scripts = self.app.scripts
        self.tasks: dict[str, ModelTask] = {}
        self.gone: set[str] = set()
        self.counter = 0

    # Helpers.

    def now_ms(self) -> int:
        return int(self.clock.now_s() * 1000)

    def ids_in(self, *states: str) -> list[str]:
        return sorted(i for i, t in self.tasks.items() if t.state in states)

    def tokens(self) -> list[tuple[str, str]]:
        return sorted((i, tok) for i, t in self.tasks.items() for tok in t.tokens_seen)

    def finish(self, task_id: str, state: str) -> None:
        task = self.tasks[task_id]
        task.state = state
        task.token = ""
        if state in ("succeeded", "cancelled"):
            task.expires_ms = self.now_ms() + RESULT_TTL_MS

    # Producers and time.

    @rule(priority=st.integers(0, 9), delay_ms=st.sampled_from([0, 0, 500, 2000]))
    def enqueue(self, priority: int, delay_ms: int) -> None:
        self.counter += 1
        task_id = f"t{self.counter:03d}"
        item = (task_id, json.dumps({**RECORD, "id": task_id, "priority": priority}),
                ARGS, str(delay_ms) if delay_ms else "", "")
        _, created = self.scripts.enqueue(self.app.now(), self.keys, [item])
        assert created == [1]
        state = "scheduled" if delay_ms else "ready"
        self.tasks[task_id] = ModelTask(state, priority, due_ms=self.now_ms() + delay_ms)

    @rule(seconds=st.sampled_from([0.25, 0.5, 1.0, 2.5]))
    def advance_clock(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule()
    def promote(self) -> None:
        moved, _next, _now = self.scripts.promote(self.app.now(), self.keys, 1000)
        due = [i for i in self.ids_in("scheduled", "retrying")
               if self.tasks[i].due_ms <= self.now_ms()]
        assert moved == len(due)
        for task_id in due:
            self.tasks[task_id].state = "ready"

    # Workers.

    @rule(worker=st.sampled_from(WORKERS), want=st.integers(1, 3))
    def claim(self, worker: str, want: int) -> None:
        ready_before = set(self.ids_in("ready"))
        claimed, fenced = self.scripts.claim(self.app.now(), worker, LEASE_MS, want,
                                             [self.keys], [])
        assert fenced == []
        assert len(claimed) == min(want, len(ready_before))
        for task in claimed:
            assert task.task_id in ready_before
            model = self.tasks[task.task_id]
            model.state = "active"
            model.attempts += 1
            model.token = f"{worker}#{model.attempts}"
            model.tokens_seen.append(model.token)
            model.lease_deadline_ms = self.now_ms() + LEASE_MS
            model.cancel_requested = False
            assert json.loads(task.record_json)["lease"] == model.token

    @precondition(lambda self: self.tokens())
    @rule(data=st.data())
    def succeed(self, data: st.DataObject) -> None:
        task_id, token = data.draw(st.sampled_from(self.tokens()))
        worker = token.split("#")[0]
        _, fenced = self.scripts.claim(self.app.now(), worker, LEASE_MS, 0, [self.keys],
                                  [(QUEUE, task_id, token, '"ok"', RESULT_TTL_MS)])
        model = self.tasks[task_id]
        if model.state == "active" and model.token == token:
            assert fenced == []
            self.finish(task_id, "succeeded")
        else:
            assert fenced == [task_id]

    @precondition(lambda self: self.tokens())
    @rule(data=st.data(), delay_ms=st.sampled_from([-1, 0, 1500]))
    def fail(self, data: st.DataObject, delay_ms: int) -> None:
        """A failed attempt; delay -1 is dead, 0 an immediate Retry, >0 a backoff."""
        task_id, token = data.draw(st.sampled_from(self.tokens()))
        worker = token.split("#")[0]
        outcome = self.scripts.fail(self.app.now(), self.keys, worker, task_id, token, ERROR,
                                       delay_ms)
        model = self.tasks[task_id]
        if not (model.state == "active" and model.token == token):
            assert outcome == "fenced"
            return
        if model.cancel_requested:
            expected = "cancelled"
        else:
            expected = {-1: "dead", 0: "ready"}.get(delay_ms, "retrying")
        assert outcome == expected
        if expected == "cancelled":
            self.finish(task_id, "cancelled")
            return
        model.state = expected
        model.token = ""
        model.due_ms = self.now_ms() + max(delay_ms, 0)

    @rule()
    def reap(self) -> None:
        recovered, buried = self.scripts.reap(self.app.now(), self.keys, 500)
        expired = [i for i in self.ids_in("active")
                   if self.tasks[i].lease_deadline_ms <= self.now_ms()]
        assert sorted(recovered + buried) == sorted(expired)
        for task_id in expired:
            model = self.tasks[task_id]
            if model.attempts > MAX_RETRIES:
                assert task_id in buried
                model.state, model.token = "dead", ""
            else:
                assert task_id in recovered
                model.state, model.token = "ready", ""

    # Control.

    @precondition(lambda self: self.tasks)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        task_id = data.draw(st.sampled_from(sorted(self.tasks)))
        outcome = self.scripts.cancel(self.app.now(), self.keys, task_id, RESULT_TTL_MS)
        model = self.tasks[task_id]
        if model.state in ("ready", "scheduled", "retrying"):
            assert outcome == "cancelled"
            self.finish(task_id, "cancelled")
        elif model.state == "active":
            assert outcome == "requested"
            model.cancel_requested = True
        else:
            assert outcome == model.state

    @precondition(lambda self: self.ids_in("dead"))
    @rule(data=st.data(), delay_ms=st.sampled_from([0, 1000]))
    def requeue(self, data: st.DataObject, delay_ms: int) -> None:
        task_id = data.draw(st.sampled_from(self.ids_in("dead")))
        assert self.scripts.requeue(self.app.now(), self.keys, [task_id], delay_ms) == [task_id]
        model = self.tasks[task_id]
        model.state = "scheduled" if delay_ms else "ready"
        model.attempts = 0
        model.due_ms = self.now_ms() + delay_ms

    @precondition(lambda self: self.ids_in("dead"))
    @rule(data=st.data())
    def purge(self, data: st.DataObject) -> None:
        task_id = data.draw(st.sampled_from(self.ids_in("dead")))
        assert self.scripts.purge(self.app.now(), self.keys, [task_id]) == [task_id]
        del self.tasks[task_id]
        self.gone.add(task_id)

    @rule()
    def apply_retention(self) -> None:
        self.scripts.trim(self.app.now(), self.keys, -1, -1, 600, 500)
        for task_id in self.ids_in("succeeded", "cancelled"):
            if self.tasks[task_id].expires_ms <= self.now_ms():
                del self.tasks[task_id]
                self.gone.add(task_id)

    # The invariant.

    @invariant()
    def every_task_sits_where_its_state_says(self) -> None:
        where, records = locate_all(self.app, QUEUE)
        assert set(records) == set(self.tasks), "records and model disagree on which exist"
        assert set(where) <= set(self.tasks), f"ids in no record: {set(where) - set(self.tasks)}"
        for task_id, model in self.tasks.items():
            rec = records[task_id]
            assert rec["state"] == model.state, (task_id, rec["state"], model.state)
            assert rec["attempts"] == model.attempts, (task_id, rec, model)
            expected = structure_for_state(taskq.State(model.state), model.priority)
            assert where.get(task_id) == [expected], (task_id, model.state, where.get(task_id))
        for task_id in self.gone:
            assert task_id not in where



def test_every_task_sits_in_exactly_the_structure_its_state_names(redis_url: str | None
                                                                   ) -> None:
    """Random interleavings of enqueue, claim, succeed, fail, retry, promote, reap, cancel,
    requeue, purge and retention never leave a task in a structure its state does not name."""
    clock = taskq.FakeClock(start_s=1_800_000_000)

    class Bound(QueueMachine):
        pass

    Bound.app = taskq.App(redis_url, settings=with_settings(), clock=clock)
    Bound.clock = clock

    run_state_machine_as_test(Bound, settings=settings(
        max_examples=20, stateful_step_count=25, deadline=None, derandomize=False, database=None,
        suppress_health_check=list(HealthCheck)))
