"""Routes for queues: summaries, task listings with paging, pause/resume and dead letters."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Query

from taskq.api.deps import Engine, check_queue_name, known_queue
from taskq.api.errors import ApiError
from taskq.api.models import (
    Count,
    IdsRequest,
    QueueState,
    RequeueRequest,
    TaskPage,
    TaskState,
)
from taskq.api.tasks import ERRORS
from taskq.app import App
from taskq.keys import QueueKeys
from taskq.snapshot import take_snapshot
from taskq.task import TaskRecord

log = logging.getLogger("taskq.api")

router = APIRouter(tags=["queues"])

MAX_PAGE = 1000
Offset = Annotated[int, Query(ge=0, le=10**9, description="Tasks to skip.")]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="Tasks to return.")]

# Sorted set and direction per listed structure; ready lists are paged separately.
SORTED_SETS = {
    TaskState.SCHEDULED: ("scheduled", False),
    TaskState.ACTIVE: ("active", False),
    TaskState.DEAD: ("dead", True),
    TaskState.FINISHED: ("finished", False),
}


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _ready_page(app: App, keys: QueueKeys, offset: int, limit: int) -> tuple[list[str], int]:
    """Ids of ready tasks in claim order (highest priority first), and the ready total."""
    lists = keys.ready_all()
    pipe = app.client.pipeline(transaction=False)
    for key in lists:
        pipe.llen(key)
    pipe.hget(keys.config, "lifo")
    *lengths, lifo_flag = pipe.execute()
    lifo = _text(lifo_flag) == "1" if lifo_flag is not None else False
    ids: list[str] = []
    skip, need = offset, limit
    for key, length in zip(lists, lengths):
        if need == 0:
            break
        if skip >= length:
            skip -= length
            continue
        take = min(length - skip, need)
        if lifo:
            # LIFO workers pop from the left: index 0 runs next.
            ids.extend(_text(x) for x in app.client.lrange(key, skip, skip + take - 1))
        else:
            # FIFO workers pop from the right: the last index runs next.
            raw = app.client.lrange(key, -(skip + take), -(skip + 1))
            ids.extend(_text(x) for x in reversed(raw))
        skip = 0
        need -= take
    return ids, sum(int(n) for n in lengths)


def _records(app: App, keys: QueueKeys, ids: list[str]) -> list[dict[str, Any]]:
    if not ids:
        return []
    out = []
    for task_id, raw in zip(ids, app.client.hmget(keys.tasks, ids)):
        if raw is None:
            continue  # finished and expired between the two reads
        try:
            out.append(TaskRecord.from_json(_text(raw)).to_dict())
        except ValueError:
            out.append({"id": task_id, "state": "corrupt"})
    return out


def list_tasks(app: App, queue: str, state: TaskState, offset: int, limit: int) -> TaskPage:
    keys = app.keys.queue(queue)
    if state is TaskState.READY:
        ids, total = _ready_page(app, keys, offset, limit)
    else:
        name, newest_first = SORTED_SETS[state]
        key = getattr(keys, name)
        pipe = app.client.pipeline(transaction=False)
        pipe.zcard(key)
        if newest_first:
            pipe.zrevrange(key, offset, offset + limit - 1)
        else:
            pipe.zrange(key, offset, offset + limit - 1)
        total, raw = pipe.execute()
        ids = [_text(x) for x in raw]
    return TaskPage(queue=queue, state=state, offset=offset, limit=limit, total=int(total),
                    tasks=_records(app, keys, ids))


@router.get("/queues", responses=ERRORS)
def list_queues(app: Engine) -> list[dict[str, Any]]:
    """List every queue with its depths, paused flag and lifetime counters."""
    queues = take_snapshot(app).to_dict()["queues"]
    return [{"name": name, **view} for name, view in queues.items()]


@router.get("/queues/{queue:path}/tasks", response_model=TaskPage, responses=ERRORS)
def queue_tasks(queue: str, app: Engine, state: TaskState = TaskState.READY,
                offset: Offset = 0, limit: Limit = 100) -> TaskPage:
    """Return one page of a queue's tasks in one state, in the order the engine handles them.

    ready: claim order; scheduled (and retrying): soonest due first; active: earliest lease
    deadline first; dead: newest first; finished (succeeded and cancelled): soonest to expire
    first. Pages are read with separate calls, so tasks that move between two page requests
    can be skipped or seen twice.
    """
    return list_tasks(app, known_queue(app, queue), state, offset, limit)


@router.get("/queues/{queue:path}/dead/groups", responses=ERRORS)
def dead_groups(queue: str, app: Engine,
                limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000) -> list[dict[str, Any]]:
    """Dead tasks grouped by error type and message shape, largest group first."""
    groups = app.dead_groups(known_queue(app, queue), limit)
    return [{"fingerprint": g.fingerprint, "error_type": g.error_type,
             "sample_message": g.sample_message, "count": g.count, "task_ids": g.task_ids}
            for g in groups]


@router.get("/queues/{queue:path}/dead", response_model=TaskPage, responses=ERRORS)
def dead_letters(queue: str, app: Engine, offset: Offset = 0, limit: Limit = 100) -> TaskPage:
    """Dead tasks of the queue with their errors, newest first."""
    return list_tasks(app, known_queue(app, queue), TaskState.DEAD, offset, limit)


@router.post("/queues/{queue:path}/dead/requeue", response_model=Count, responses=ERRORS)
def requeue_dead(queue: str, app: Engine, body: RequeueRequest | None = None) -> Count:
    """Move dead tasks back to ready (all of them unless ``task_ids`` is given)."""
    body = body or RequeueRequest()
    known_queue(app, queue)
    if body.to_queue is not None:
        check_queue_name(app, body.to_queue)
    moved = app.requeue_dead(queue, body.task_ids, delay_s=body.delay_s, to_queue=body.to_queue)
    return Count(queue=queue, count=moved)


@router.post("/queues/{queue:path}/dead/purge", response_model=Count, responses=ERRORS)
def purge_dead(queue: str, app: Engine, body: IdsRequest | None = None,
               confirm: Annotated[bool, Query(
                   description="Must be true: purged tasks are deleted for good.")] = False
               ) -> Count:
    """Delete dead tasks and their records for good (all of them unless ``task_ids`` is given).

    Needs ``confirm=true``. Without it the response is 400 and states how many would go.
    """
    body = body or IdsRequest()
    known_queue(app, queue)
    if not confirm:
        count = (len(body.task_ids) if body.task_ids is not None
                 else app.client.zcard(app.keys.queue(queue).dead))
        raise ApiError(400, "confirmation_required", f"purge deletes up to {count} dead tasks of "
                       f"queue {queue!r} for good: repeat the request with confirm=true")
    purged = app.purge_dead(queue, body.task_ids)
    log.info("dead purged via API queue=%s count=%d", queue, purged)
    return Count(queue=queue, count=purged)


@router.post("/queues/{queue:path}/pause", response_model=QueueState, responses=ERRORS)
def pause(queue: str, app: Engine) -> QueueState:
    """Stop workers claiming from the queue; enqueue still works."""
    changed = app.pause(known_queue(app, queue))
    return QueueState(queue=queue, paused=True, changed=changed)


@router.post("/queues/{queue:path}/resume", response_model=QueueState, responses=ERRORS)
def resume(queue: str, app: Engine) -> QueueState:
    """Let workers claim from the queue again."""
    changed = app.resume(known_queue(app, queue))
    return QueueState(queue=queue, paused=False, changed=changed)


@router.get("/queues/{queue:path}", responses=ERRORS)
def get_queue(queue: str, app: Engine) -> dict[str, Any]:
    """Return one queue's depths, counters, latency percentiles and active tasks."""
    snapshot = take_snapshot(app, [known_queue(app, queue)])
    view = snapshot.queues[queue]
    summary = snapshot.to_dict()
    return {"name": queue, **summary["queues"][queue], "totals": summary["totals"],
            "active_tasks": [{"task_id": t.task_id, "worker": t.worker, "name": t.name,
                              "attempt": t.attempt, "started_ms": t.started_ms,
                              "lease_deadline_ms": t.lease_deadline_ms}
                             for t in view.active_tasks]}
