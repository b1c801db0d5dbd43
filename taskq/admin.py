"""Control and inspection calls of the app: pause, cancel, dead letters, worker commands."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from taskq import codec
from taskq.errors import InvalidTaskError, TaskNotFoundError
from taskq.task import Call, State, TaskRecord

if TYPE_CHECKING:
    from taskq.keys import KeySpace
    from taskq.scripts import Scripts
    from taskq.settings import Settings

log = logging.getLogger(__name__)

DEAD_PAGE = 500

_VOLATILE = re.compile(r"0x[0-9a-fA-F]+|[0-9a-fA-F]{8,}|\d+")


def error_fingerprint(error: dict[str, Any] | None) -> str:
    """Group key for dead letters: error type plus the message with numbers and ids masked."""
    if not error:
        return "no-error"
    text = f"{error.get('type')}|{_VOLATILE.sub('#', str(error.get('message', '')))[:300]}"
    return hashlib.sha1(text.encode("utf-8", "replace")).hexdigest()[:12]


@dataclass
class DeadGroup:
    """Dead letters that share an error type and message shape."""

    fingerprint: str
    error_type: str
    sample_message: str
    task_ids: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.task_ids)


class AdminMixin:
    """Operations shared by the CLI, the dashboard, notebooks and the HTTP API."""

    if TYPE_CHECKING:
        settings: Settings
        keys: KeySpace

        @property
        def client(self) -> Any: ...
        @property
        def scripts(self) -> Scripts: ...
        def now(self) -> str: ...
        def find_queue(self, task_id: str) -> str: ...
        def get(self, task_id: str, queue: str | None = None) -> TaskRecord: ...
        def queues(self) -> list[str]: ...
        def enqueue_many(self, calls: Any) -> Any: ...
        def _register_queue(self, queue: str) -> None: ...

    # Queues.

    def pause(self, queue: str) -> bool:
        """Stop workers claiming from ``queue``; enqueue still works. Returns True if changed."""
        changed = self.scripts.set_paused(self.now(), self.keys.queue(queue), True)
        log.info("queue paused queue=%s changed=%s", queue, changed)
        return changed

    def resume(self, queue: str) -> bool:
        changed = self.scripts.set_paused(self.now(), self.keys.queue(queue), False)
        log.info("queue resumed queue=%s changed=%s", queue, changed)
        return changed

    def set_lifo(self, queue: str, lifo: bool) -> None:
        """Make workers claim the newest ready task first (LIFO) or the oldest (FIFO, default)."""
        codec.validate_name("queue", queue, self.settings.max_queue_name_chars)
        self._register_queue(queue)
        config = self.keys.queue(queue).config
        if lifo:
            self.client.hset(config, "lifo", "1")
        else:
            self.client.hdel(config, "lifo")

    # Tasks.

    def cancel(self, task_id: str, queue: str | None = None) -> str:
        """Cancel a task: ready or scheduled ones are removed, active ones get a cancel flag.

        Returns 'cancelled', 'requested' (active task; the body sees ``cancelled()`` turn true
        at the worker's next heartbeat), or the final state of a task that already finished.
        """
        queue = queue or self.find_queue(task_id)
        ttl_ms = round(self.settings.default_result_ttl_s * 1000)
        outcome = self.scripts.cancel(self.now(), self.keys.queue(queue), task_id, ttl_ms)
        if outcome == "missing":
            raise TaskNotFoundError(task_id)
        log.info("cancel task=%s queue=%s outcome=%s", task_id, queue, outcome)
        return outcome

    # Dead letters.

    def dead_ids(self, queue: str, offset: int = 0, limit: int = 100) -> list[str]:
        """Ids in the dead set of ``queue``, newest first."""
        raw = self.client.zrevrange(self.keys.queue(queue).dead, offset, offset + limit - 1)
        return [x.decode("utf-8", "replace") for x in raw]

    def dead_letters(self, queue: str, offset: int = 0, limit: int = 100) -> list[TaskRecord]:
        """Dead tasks of ``queue`` with their records (error included), newest first."""
        ids = self.dead_ids(queue, offset, limit)
        if not ids:
            return []
        raws = self.client.hmget(self.keys.queue(queue).tasks, ids)
        out = []
        for task_id, raw in zip(ids, raws):
            if raw is None:
                continue
            try:
                out.append(TaskRecord.from_json(raw.decode("utf-8", "replace")))
            except ValueError:
                log.warning("dead record unreadable task=%s queue=%s", task_id, queue)
        return out

    def dead_groups(self, queue: str, limit: int = 10_000) -> list[DeadGroup]:
        """Group up to ``limit`` dead tasks by error fingerprint, largest group first."""
        groups: dict[str, DeadGroup] = {}
        for offset in range(0, limit, DEAD_PAGE):
            page = self.dead_letters(queue, offset, min(DEAD_PAGE, limit - offset))
            for rec in page:
                key = error_fingerprint(rec.error)
                group = groups.get(key)
                if group is None:
                    error = rec.error or {}
                    group = DeadGroup(key, str(error.get("type", "")),
                                      str(error.get("message", ""))[:300])
                    groups[key] = group
                group.task_ids.append(rec.id)
            if len(page) < DEAD_PAGE:
                break
        return sorted(groups.values(), key=lambda g: -g.count)

    def requeue_dead(self, queue: str, task_ids: list[str] | None = None, *,
                     delay_s: float = 0.0, to_queue: str | None = None) -> int:
        """Move dead tasks back to ready (or scheduled after ``delay_s``); all when ids is None.

        With ``to_queue``, each task is first enqueued in the other queue under the same id and
        then purged here. The two steps are separate calls (the queues may live in different
        Redis Cluster slots), so a crash between them leaves the task in both places, never in
        neither. Returns the number of tasks moved.
        """
        delay_ms = round(codec.validate_delay(delay_s) * 1000)
        ids = task_ids if task_ids is not None else self._all_dead_ids(queue)
        moved = 0
        for start in range(0, len(ids), DEAD_PAGE):
            part = ids[start:start + DEAD_PAGE]
            if to_queue is None or to_queue == queue:
                moved += len(self.scripts.requeue(self.now(), self.keys.queue(queue), part,
                                                  delay_ms))
            else:
                moved += self._move_dead(queue, part, to_queue, delay_s)
        log.info("dead requeued queue=%s to=%s count=%d", queue, to_queue or queue, moved)
        return moved

    def _move_dead(self, queue: str, task_ids: list[str], to_queue: str, delay_s: float) -> int:
        calls = []
        for task_id in task_ids:
            try:
                rec = self.get(task_id, queue)
            except TaskNotFoundError:
                continue
            if rec.state is not State.DEAD or rec.args is None:
                continue
            calls.append(Call(rec.name, rec.args, rec.kwargs or {}, to_queue, rec.priority,
                              delay_s or None, None, task_id))
        if not calls:
            return 0
        # Purge only what the target took: an id already used there was not written, and its
        # dead task must stay here rather than vanish.
        created = [h.id for h in self.enqueue_many(calls) if h.created]
        if not created:
            return 0
        return len(self.scripts.purge(self.now(), self.keys.queue(queue), created))

    def purge_dead(self, queue: str, task_ids: list[str] | None = None) -> int:
        """Delete dead tasks and their records for good; all of the queue's when ids is None."""
        ids = task_ids if task_ids is not None else self._all_dead_ids(queue)
        purged = 0
        for start in range(0, len(ids), DEAD_PAGE):
            purged += len(self.scripts.purge(self.now(), self.keys.queue(queue),
                                             ids[start:start + DEAD_PAGE]))
        log.info("dead purged queue=%s count=%d", queue, purged)
        return purged

    def _all_dead_ids(self, queue: str) -> list[str]:
        raw = self.client.zrange(self.keys.queue(queue).dead, 0, -1)
        return [x.decode("utf-8", "replace") for x in raw]

    # Workers.

    def send_worker_command(self, worker_id: str, command: dict[str, Any]) -> None:
        """Leave a command for a worker, applied at its next heartbeat.

        Commands: ``{"resize": N}`` sets the number of slots; ``{"stop": true}`` stops it
        gracefully. A newer command replaces one not yet read.
        """
        if "resize" in command:
            size = command["resize"]
            if isinstance(size, bool) or not isinstance(size, int) or not 0 < size <= 1024:
                raise InvalidTaskError(f"resize {size!r} is invalid: use an integer from 1 to "
                                       "1024")
        self.client.hset(self.keys.global_keys.worker_control, worker_id, json.dumps(command))
        log.info("worker command sent worker=%s command=%s", worker_id, command)
