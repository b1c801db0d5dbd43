"""The worker: N slots that claim, run and settle tasks, plus its background loops.

Each slot is a thread that loops on one fused call: settle the previous success and claim the
next task (``claim.lua``). An idle slot blocks in Redis on the queues' wake lists, so it starts
within about a millisecond of an enqueue without polling. With ``prefetch`` > 0 a slot claims
several tasks per call and settles them together, trading lease time for fewer round trips.
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from taskq import codec
from taskq.cluster import blpop_any
from taskq.errors import ConfigurationError, InvalidTaskError, Retry
from taskq.heartbeat import Heartbeat
from taskq.loops import log_error
from taskq.promoter import Promoter
from taskq.reaper import Reaper
from taskq.runner import Outcome, ProcessRunner, ThreadRunner, Watchdog
from taskq.scripts import ClaimedTask
from taskq.task import Backoff, TaskContext, TaskRecord, describe_exception

if TYPE_CHECKING:
    from taskq.app import App

log = logging.getLogger(__name__)

# Errors that no retry can fix: the task goes dead on its first attempt.
PERMANENT_ERRORS = frozenset({"UnknownTask", "DecodeError", "InvalidResult"})

Settle = tuple[str, str, str, str, int]


@dataclass
class Held:
    """A task this worker holds a lease on."""

    task_id: str
    queue: str
    token: str
    name: str
    attempt: int
    started_ms: int
    cancel: threading.Event = field(default_factory=threading.Event)
    lost: bool = False
    slot_thread: int = field(default_factory=threading.get_ident)


class Worker:
    """Claims and runs tasks from ``queues`` with ``concurrency`` slots.

    ``weights`` (queue -> positive number) switches from strict order, where a queue is served
    only when every queue before it is empty, to a weighted random order per claim, so that no
    queue starves. ``pool`` is "thread" or "process" (needs ``app_spec``, "module:attr").
    """

    def __init__(self, app: App, queues: Sequence[str] = ("default",), concurrency: int = 1, *,
                 weights: dict[str, float] | None = None, prefetch: int = 0,
                 pool: str = "thread", app_spec: str | None = None,
                 worker_id: str | None = None, run_promoter: bool = True,
                 run_reaper: bool = True, shutdown_grace_s: float | None = None,
                 rng: random.Random | None = None,
                 after_claim: Callable[[list[ClaimedTask]], None] | None = None) -> None:
        if not queues:
            raise ConfigurationError("a worker needs at least one queue")
        if concurrency < 1:
            raise ConfigurationError(f"concurrency={concurrency} must be at least 1")
        if pool not in ("thread", "process"):
            raise ConfigurationError(f"pool={pool!r} is invalid: use 'thread' or 'process'")
        if weights is not None:
            for queue, weight in weights.items():
                if queue not in queues or not weight > 0:
                    raise ConfigurationError(
                        f"weight {weight!r} for queue {queue!r} is invalid: name a served "
                        "queue and give a positive number")
        for queue in queues:
            codec.validate_name("queue", queue, app.settings.max_queue_name_chars)
        self.app = app
        self.queues = list(queues)
        self.weights = weights
        self.prefetch = max(0, prefetch)
        self.pool = pool
        self.app_spec = app_spec
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.shutdown_grace_s = (app.settings.shutdown_grace_s if shutdown_grace_s is None
                                 else shutdown_grace_s)
        self.after_claim = after_claim
        self._rng = rng or random.Random()
        self._lease_ms = round(app.settings.lease_s * 1000)

        self._target = concurrency
        self._slot_threads: dict[int, threading.Thread] = {}
        self._slots_lock = threading.Lock()
        self._held: dict[str, Held] = {}
        # Every task this worker claimed, by id, with its queue and lease token. Prefetched tasks
        # and successes waiting for the next claim call to settle them are not in _held, yet
        # their leases must be extended too. An entry leaves at the first heartbeat that finds
        # its lease gone (settled, failed, released or expired). Guarded by _held_cond.
        self._leased: dict[str, tuple[str, str]] = {}
        self._held_cond = threading.Condition()
        self._stopping = threading.Event()
        self._finished = threading.Event()
        self._killed = False
        self._started = False
        self._pending_event = ("online", "")
        self.processed = 0
        self.failed = 0
        self.started_ms = int(time.time() * 1000)
        self._watchdog: Watchdog | None = None

        self.heartbeat = Heartbeat(self)
        self.promoter = Promoter(app, self.queues, self.id) if run_promoter else None
        self.reaper = Reaper(app, self.queues, self.id) if run_reaper else None

    # Lifecycle.

    @property
    def concurrency(self) -> int:
        return self._target

    def start(self) -> None:
        """Register the worker, then start its loops and slots; returns at once."""
        if self._started:
            return
        self._started = True
        if self.pool == "thread":
            self._watchdog = Watchdog()
        self.beat()
        self.heartbeat.start()
        for loop in (self.promoter, self.reaper):
            if loop is not None:
                loop.start()
        with self._slots_lock:
            self._spawn_missing_slots()
        log.info("worker started worker=%s queues=%s concurrency=%d pool=%s prefetch=%d "
                 "backend=%s", self.id, ",".join(self.queues), self._target, self.pool,
                 self.prefetch, self.app.backend)

    def run(self) -> None:
        """Start and block until stopped; SIGTERM/SIGINT stop gracefully, a second one at once."""
        self.start()
        if threading.current_thread() is threading.main_thread():
            signals_seen: list[float] = []

            def on_signal(signum: int, _frame: Any) -> None:
                # A signal sent to the process and to its group (as GNU timeout does) arrives
                # twice at once: only one more than half a second later means "stop now".
                now = time.monotonic()
                if signals_seen and now - signals_seen[0] < 0.5:
                    return
                signals_seen.append(now)
                if len(signals_seen) == 1:
                    log.info("worker stopping worker=%s signal=%s grace_s=%s", self.id,
                             signal.Signals(signum).name, self.shutdown_grace_s)
                    threading.Thread(target=self.stop, name="taskq-stop", daemon=True).start()
                else:
                    log.warning("worker exiting at once worker=%s signal=%s: held leases "
                                "recover after they expire", self.id,
                                signal.Signals(signum).name)
                    os._exit(1)

            signal.signal(signal.SIGTERM, on_signal)
            signal.signal(signal.SIGINT, on_signal)
        while not self._finished.wait(0.5):
            pass

    def stop(self, grace_s: float | None = None) -> None:
        """Stop claiming, let running tasks finish for ``grace_s``, then release the rest."""
        if self._finished.is_set() or self._stopping.is_set():
            self._finished.wait()
            return
        grace = self.shutdown_grace_s if grace_s is None else grace_s
        self._stopping.set()
        # The promoter and reaper are not needed for the shutdown: let them end during the
        # grace. The heartbeat goes on, since it extends the leases of the running tasks.
        for background in (self.promoter, self.reaper):
            if background is not None:
                background.request_stop()
        deadline = time.monotonic() + grace
        with self._held_cond:
            while self._held and time.monotonic() < deadline:
                self._held_cond.wait(min(0.05, max(deadline - time.monotonic(), 0)))
        # A slot still inside a released body is not waited for: its outcome is dropped
        # anyway. The others finish their idle wait and send the successes they still hold.
        still_running = {held.slot_thread for held in self._release_held()}
        for thread in list(self._slot_threads.values()):
            if thread.ident not in still_running:
                thread.join(self.app.settings.idle_block_s + 1)
        if self._watchdog is not None:
            # A body still running here was released above, so its outcome is dropped anyway.
            self._watchdog.close()
        for loop in (self.promoter, self.reaper, self.heartbeat):
            if loop is not None:
                loop.stop()
        self._pending_event = ("offline", "stopped")
        try:
            self.beat(state="offline")
        except Exception as exc:  # noqa: BLE001 - the reaper marks it offline later anyway
            log_error(log, "final heartbeat failed", exc, worker=self.id)
        self._finished.set()
        log.info("worker stopped worker=%s processed=%d failed=%d", self.id, self.processed,
                 self.failed)

    def kill(self) -> None:
        """Stop at once as a crash would: no release, no goodbye. Leases recover on expiry.

        For demos and tests of recovery; running bodies finish but their outcomes are dropped.
        """
        self._killed = True
        self._stopping.set()
        for loop in (self.promoter, self.reaper, self.heartbeat):
            if loop is not None:
                loop.stop(join_s=0)
        if self._watchdog is not None:
            self._watchdog.close()
        self._finished.set()
        log.warning("worker killed worker=%s held=%d", self.id, len(self._held))

    def resize(self, concurrency: int) -> None:
        """Change the number of slots; extra slots retire after their current task."""
        if concurrency < 1:
            raise ConfigurationError(f"concurrency={concurrency} must be at least 1")
        with self._slots_lock:
            old = self._target
            self._target = concurrency
            if self._started and not self._stopping.is_set():
                self._spawn_missing_slots()
        self._pending_event = ("pool_resized", f"{old}->{concurrency}")
        log.info("pool resized worker=%s from=%d to=%d", self.id, old, concurrency)

    def _spawn_missing_slots(self) -> None:
        for index in range(self._target):
            thread = self._slot_threads.get(index)
            if thread is None or not thread.is_alive():
                thread = threading.Thread(target=self._slot_main, args=(index,),
                                          name=f"taskq-slot-{index}", daemon=True)
                self._slot_threads[index] = thread
                thread.start()

    # Heartbeat.

    def info(self, state: str | None = None) -> dict[str, Any]:
        with self._held_cond:
            held = [{"id": h.task_id, "queue": h.queue, "name": h.name,
                     "started_ms": h.started_ms} for h in self._held.values()]
        return {
            "id": self.id, "host": socket.gethostname(), "pid": os.getpid(),
            "queues": self.queues, "weights": self.weights, "concurrency": self._target,
            "pool": self.pool, "prefetch": self.prefetch,
            "state": state or ("busy" if held else "idle"), "current": held,
            "processed": self.processed, "failed": self.failed, "started_ms": self.started_ms,
        }

    def beat(self, state: str | None = None) -> None:
        """Extend held leases, refresh the worker record and apply a pending command."""
        by_queue: dict[str, list[Held]] = {}
        waiting: dict[str, list[tuple[str, str]]] = {}
        with self._held_cond:
            for held in self._held.values():
                by_queue.setdefault(held.queue, []).append(held)
            for task_id, (queue, token) in self._leased.items():
                if task_id not in self._held:
                    waiting.setdefault(queue, []).append((task_id, token))
        for queue in set(by_queue) | set(waiting):
            items = by_queue.get(queue, [])
            others = waiting.get(queue, [])
            lost, cancel = self.app.scripts.extend(
                self.app.now(), self.app.keys.queue(queue), self._lease_ms,
                [(h.task_id, h.token) for h in items] + others)
            with self._held_cond:
                for task_id, token in others:
                    if task_id in lost and self._leased.get(task_id) == (queue, token):
                        del self._leased[task_id]
            for held in items:
                with self._held_cond:
                    # A task whose body ended since the snapshot above may be settled already,
                    # which extend also reports as lost: only a task still held here is lost.
                    still_held = self._held.get(held.task_id) is held
                if held.task_id in lost and not held.lost and still_held:
                    held.lost = True
                    log.warning("lease lost task=%s queue=%s worker=%s: the outcome of this "
                                "attempt will be dropped", held.task_id, queue, self.id)
                if held.task_id in cancel:
                    held.cancel.set()
        event, detail = self._pending_event
        self._pending_event = ("", "")
        command = self.app.scripts.heartbeat(
            self.app.now(), self.app.keys.global_keys, self.id, json.dumps(self.info(state)),
            event, detail)
        if command:
            self._apply_command(command)

    def _apply_command(self, raw: str) -> None:
        try:
            command = json.loads(raw)
        except ValueError:
            log.warning("worker command ignored worker=%s: not JSON: %.100s", self.id, raw)
            return
        if isinstance(command.get("resize"), int) and command["resize"] > 0:
            self.resize(command["resize"])
        if command.get("stop"):
            log.info("worker stop requested worker=%s", self.id)
            threading.Thread(target=self.stop, name="taskq-stop", daemon=True).start()

    # Slots.

    def _queue_order(self) -> list[str]:
        if not self.weights:
            return self.queues
        # Weighted random permutation: each queue's sort key is u ** (1 / weight).
        keyed = [(self._rng.random() ** (1.0 / self.weights.get(q, 1.0)), q)
                 for q in self.queues]
        return [q for _, q in sorted(keyed, reverse=True)]

    def _retiring(self, index: int) -> bool:
        return self._stopping.is_set() or index >= self._target

    def _may_exit(self, index: int) -> bool:
        # Decided under the slots lock so a resize that raises the target again in the meantime
        # either keeps this slot alive or spawns a replacement, never neither.
        with self._slots_lock:
            return index >= self._target or self._stopping.is_set()

    def _slot_main(self, index: int) -> None:
        runner: ThreadRunner | ProcessRunner
        if self.pool == "process":
            runner = ProcessRunner(self.app, self.app_spec or "")
        else:
            assert self._watchdog is not None
            runner = ThreadRunner(self.app, self._watchdog)
        local: deque[ClaimedTask] = deque()
        try:
            self._slot_loop(index, runner, local)
        except Exception as exc:  # noqa: BLE001 - a slot must log why it ends
            log_error(log, "slot crashed", exc, worker=self.id, slot=index)
            if local:
                log.warning("slot ended holding tasks worker=%s slot=%d: their leases will "
                            "expire and the reaper recovers them", self.id, index)
        finally:
            runner.close()
            with self._slots_lock:
                if self._slot_threads.get(index) is threading.current_thread():
                    del self._slot_threads[index]

    def _slot_loop(self, index: int, runner: ThreadRunner | ProcessRunner,
                   local: deque[ClaimedTask]) -> None:
        """Claim, run and settle until the slot retires; ``local`` holds claimed, unstarted tasks.

        A success is settled by the next claim call, so one round trip both records it and takes
        the next task.
        """
        pending: list[Settle] = []
        while not self._killed:
            if not local:
                if self._may_exit(index):
                    break
                claimed = self._claim(1 + self.prefetch, pending)
                pending = []
                if not claimed:
                    self._idle_wait()
                    continue
                local.extend(claimed)
            if self._retiring(index):
                # Prefetched tasks that never started go back at once, not at lease expiry.
                self._release_claimed(list(local))
                local.clear()
                continue
            settle = self._execute_guarded(local.popleft(), runner)
            if settle is not None:
                pending.append(settle)
        if pending and not self._killed:
            self._claim(0, pending)

    def _claim(self, want: int, pending: list[Settle]) -> list[ClaimedTask]:
        order = self._queue_order()
        if self.app.cluster:
            claimed, fenced = self._claim_per_queue(want, order, pending)
        else:
            claimed, fenced = self._claim_call(want, order, pending)
        for task_id in fenced:
            log.warning("success not recorded task=%s worker=%s: the lease was no longer held",
                        task_id, self.id)
        self._forget_leases((s[1], s[2]) for s in pending)
        with self._held_cond:
            for task in claimed:
                token = str(json.loads(task.record_json).get("lease", ""))
                self._leased[task.task_id] = (task.queue, token)
        if claimed and self.after_claim is not None:
            self.after_claim(claimed)
        return claimed

    def _claim_call(self, want: int, queues: list[str], pending: list[Settle]
                    ) -> tuple[list[ClaimedTask], list[str]]:
        order = [self.app.keys.queue(q) for q in queues]
        failures = 0
        while True:
            try:
                return self.app.scripts.claim(
                    self.app.now(), self.id, self._lease_ms, want, order, pending)
            except Exception as exc:  # noqa: BLE001 - Redis down: retry, keep the settles
                if self._killed or (self._stopping.is_set() and not pending):
                    return [], []
                failures += 1
                # Back off from 0.5 s to 5 s, so an outage does not flood the log.
                pause_s = min(0.5 * 2 ** (failures - 1), 5.0)
                log_error(log, "claim failed", exc, worker=self.id, settles=len(pending),
                          failures=failures, retry_in_s=pause_s)
                time.sleep(pause_s)

    def _claim_per_queue(self, want: int, order: list[str], pending: list[Settle]
                         ) -> tuple[list[ClaimedTask], list[str]]:
        # Redis Cluster keeps each queue in its own hash slot, so one script cannot reach them
        # all: settle and claim queue by queue in the same order, asking each queue for what
        # the queues before it did not supply.
        settles: dict[str, list[Settle]] = {}
        for item in pending:
            settles.setdefault(item[0], []).append(item)
        claimed: list[ClaimedTask] = []
        fenced: list[str] = []
        for queue in [*order, *(q for q in settles if q not in order)]:
            need = max(want - len(claimed), 0)
            mine = settles.get(queue, [])
            if need == 0 and not mine:
                continue
            got, lost = self._claim_call(need, [queue], mine)
            claimed.extend(got)
            fenced.extend(lost)
        return claimed, fenced

    def _idle_wait(self) -> None:
        keys = [self.app.keys.queue(q).wake for q in self.queues]
        try:
            blpop_any(self.app, keys, self.app.settings.idle_block_s)
        except Exception as exc:  # noqa: BLE001 - Redis down: back off, then try again
            log_error(log, "idle wait failed", exc, worker=self.id)
            time.sleep(0.5)

    def _forget_leases(self, leases: Iterable[tuple[str, str]]) -> None:
        """Stop extending leases this worker gave up (settled, failed or released), so each
        heartbeat carries only the tasks still leased, not every task run since the last one."""
        with self._held_cond:
            for task_id, token in leases:
                if self._leased.get(task_id, ("", ""))[1] == token:
                    del self._leased[task_id]

    def _release_claimed(self, tasks: list[ClaimedTask]) -> None:
        by_queue: dict[str, list[tuple[str, str]]] = {}
        for task in tasks:
            token = json.loads(task.record_json).get("lease", "")
            by_queue.setdefault(task.queue, []).append((task.task_id, token))
        for queue, items in by_queue.items():
            released = self.app.scripts.release(self.app.now(), self.app.keys.queue(queue),
                                                self.id, items)
            self._forget_leases(items)
            log.info("released unstarted tasks worker=%s queue=%s count=%d", self.id, queue,
                     len(released))

    def _release_held(self) -> list[Held]:
        """Release every held lease; return the tasks whose bodies were still running."""
        with self._held_cond:
            held = list(self._held.values())
        by_queue: dict[str, list[Held]] = {}
        for item in held:
            item.lost = True
            by_queue.setdefault(item.queue, []).append(item)
        for queue, items in by_queue.items():
            released = self.app.scripts.release(
                self.app.now(), self.app.keys.queue(queue), self.id,
                [(h.task_id, h.token) for h in items])
            self._forget_leases((h.task_id, h.token) for h in items)
            for task_id in released:
                log.warning("task released at shutdown task=%s queue=%s worker=%s", task_id,
                            queue, self.id)
        return held

    # Running one task.

    def _execute_guarded(self, task: ClaimedTask, runner: ThreadRunner | ProcessRunner
                         ) -> Settle | None:
        """Run one task. An error in the worker's own handling of it, such as a record value it
        cannot use (a result_ttl_s of 1e308), sends that task dead and the slot goes on."""
        try:
            return self._execute(task, runner)
        except Exception as exc:  # noqa: BLE001 - one bad record must not end the slot
            log_error(log, "task handling failed", exc, task=task.task_id, worker=self.id)
            error = describe_exception(exc, self.app.settings)
            error["type"] = "InvalidRecord"
            error["message"] = (f"the worker cannot handle this task's record "
                                f"({type(exc).__name__}: {error['message']})")
            try:
                token = str(json.loads(task.record_json).get("lease", ""))
                self.app.scripts.fail(self.app.now(), self.app.keys.queue(task.queue), self.id,
                                      task.task_id, token, json.dumps(error), -1)
            except Exception as fail_exc:  # noqa: BLE001 - the lease expires and is recovered
                log_error(log, "recording an invalid record failed", fail_exc,
                          task=task.task_id, worker=self.id)
            return None

    def _execute(self, task: ClaimedTask, runner: ThreadRunner | ProcessRunner
                 ) -> Settle | None:
        rec = TaskRecord.from_json(task.record_json)
        token = str(rec.raw.get("lease", ""))
        held = Held(task.task_id, task.queue, token, rec.name, rec.attempts,
                    int(time.time() * 1000))
        with self._held_cond:
            # stop() sets _stopping before it reads _held under this lock, so a task claimed
            # while a stop began is either seen by it or handed back here, never started late.
            starting = not self._stopping.is_set()
            if starting:
                self._held[task.task_id] = held
        if not starting:
            if not self._killed:
                self._release_claimed([task])
            return None
        try:
            outcome = self._run_body(task, rec, held, runner)
        finally:
            with self._held_cond:
                # After this attempt's lease was lost, another slot may hold a newer attempt of
                # the same task under the same id: remove only this attempt's own entry, or the
                # heartbeat would stop extending the newer lease.
                if self._held.get(task.task_id) is held:
                    del self._held[task.task_id]
                self._held_cond.notify_all()
        if self._killed or held.lost:
            log.warning("outcome dropped task=%s queue=%s worker=%s ok=%s: the lease was lost "
                        "or the worker stopped", task.task_id, task.queue, self.id, outcome.ok)
            return None
        if outcome.ok:
            try:
                result_json = codec.encode_result(outcome.result)
            except InvalidTaskError as exc:
                error = describe_exception(exc, self.app.settings)
                error["type"] = "InvalidResult"
                self._fail(task, rec, token, Outcome(False, error=error))
                return None
            self.processed += 1
            return (task.queue, task.task_id, token, result_json, self._result_ttl_ms(rec))
        self._fail(task, rec, token, outcome)
        return None

    def _run_body(self, task: ClaimedTask, rec: TaskRecord, held: Held,
                  runner: ThreadRunner | ProcessRunner) -> Outcome:
        if rec.name not in self.app.registered():
            return Outcome(False, error={
                "type": "UnknownTask", "traceback": "", "truncated": False,
                "message": f"task name {rec.name[:200]!r} is not registered in this worker "
                           "(check the --app modules)"})
        try:
            args, kwargs = codec.decode_arguments(task.args_json)
        except ValueError as exc:
            return Outcome(False, error={
                "type": "DecodeError", "traceback": "", "truncated": False,
                "message": f"cannot decode the task's arguments as JSON: {exc}"})

        def report(fraction: float, message: str) -> bool:
            return self._report_progress(held, fraction, message)

        context = TaskContext(task.task_id, task.queue, rec.attempts, self.id, report,
                              held.cancel.is_set)
        timeout = rec.raw.get("timeout_s")
        timeout_s = float(timeout) if isinstance(timeout, (int, float)) and timeout > 0 else None
        log.debug("task started task=%s queue=%s worker=%s attempt=%d/%d", task.task_id,
                  task.queue, self.id, rec.attempts, rec.max_retries + 1)
        return runner.run(rec.name, args, kwargs, context, timeout_s)

    def _report_progress(self, held: Held, fraction: float, message: str) -> bool:
        if not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
            raise InvalidTaskError(f"progress fraction {fraction!r} is invalid: use a "
                                         "number from 0 to 1")
        text = str(message)[: self.app.settings.max_progress_message_chars]
        return self.app.scripts.progress(self.app.now(), self.app.keys.queue(held.queue),
                                         held.task_id, held.token, float(fraction), text)

    def _result_ttl_ms(self, rec: TaskRecord) -> int:
        ttl = rec.raw.get("result_ttl_s")
        if not isinstance(ttl, (int, float)):
            ttl = self.app.settings.default_result_ttl_s
        return -1 if ttl < 0 else round(ttl * 1000)

    def _backoff(self, rec: TaskRecord) -> Backoff:
        raw = rec.raw.get("backoff")
        s = self.app.settings
        if not isinstance(raw, dict):
            raw = {}

        def number(name: str, default: float) -> float:
            value = raw.get(name)
            return float(value) if isinstance(value, (int, float)) else default

        return Backoff(number("min_s", s.default_backoff_min_s),
                       number("max_s", s.default_backoff_max_s),
                       number("factor", s.default_backoff_factor),
                       number("jitter", s.default_backoff_jitter))

    def _fail(self, task: ClaimedTask, rec: TaskRecord, token: str, outcome: Outcome) -> None:
        error = outcome.error or {"type": "Error", "message": "", "traceback": "",
                                  "truncated": False}
        retry_allowed = rec.attempts <= rec.max_retries and error["type"] not in PERMANENT_ERRORS
        if retry_allowed and isinstance(outcome.exception, Retry) and \
                outcome.exception.delay_s is not None:
            delay_s = outcome.exception.delay_s
        else:
            delay_s = self._backoff(rec).delay_s(rec.attempts, self._rng)
        delay_ms = round(delay_s * 1000) if retry_allowed else -1
        self.failed += 1
        while True:
            try:
                result = self.app.scripts.fail(
                    self.app.now(), self.app.keys.queue(task.queue), self.id, task.task_id,
                    token, json.dumps(error), delay_ms)
                self._forget_leases([(task.task_id, token)])
                break
            except Exception as exc:  # noqa: BLE001 - Redis down: keep trying, lease may expire
                if self._killed:
                    return
                log_error(log, "recording a failure failed", exc, task=task.task_id,
                          worker=self.id)
                time.sleep(0.5)
        attempt = f"{rec.attempts}/{rec.max_retries + 1}"
        if result == "dead":
            log.warning("task dead task=%s queue=%s worker=%s attempt=%s error=%s: %.200s",
                        task.task_id, task.queue, self.id, attempt, error["type"],
                        error.get("message", ""))
        elif result == "cancelled":
            log.info("task cancelled task=%s queue=%s worker=%s attempt=%s error=%s: %.200s",
                     task.task_id, task.queue, self.id, attempt, error["type"],
                     error.get("message", ""))
        elif result == "fenced":
            log.warning("failure not recorded task=%s worker=%s: the lease was no longer held",
                        task.task_id, self.id)
        else:
            log.warning("task retry task=%s queue=%s worker=%s attempt=%s delay_s=%.3f "
                        "error=%s: %.200s", task.task_id, task.queue, self.id, attempt,
                        delay_s, error["type"], error.get("message", ""))
