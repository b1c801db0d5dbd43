"""Routes for single tasks: enqueue (one and bulk), read, timeline, cancel, registered names."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Response

from taskq.api.deps import Engine, locate_task
from taskq.api.errors import ApiError
from taskq.api.models import (
    BulkEnqueued,
    BulkEnqueueRequest,
    CancelResult,
    EnqueuedTask,
    EnqueueRequest,
    ErrorBody,
    RegisteredTask,
    Timeline,
)
from taskq.api.stream import event_data
from taskq.events import task_timeline
from taskq.task import Call

router = APIRouter(tags=["tasks"])

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text} for status, text in (
        (400, "Malformed request"), (401, "Missing or wrong bearer token"),
        (404, "Not found"), (409, "Conflicts with the current state"),
        (413, "Too large"), (422, "Invalid value"), (503, "Redis unavailable"))
}

QueueQuery = Annotated[str | None, Query(
    description="The task's queue; needed only when the id exists in several queues.")]


def _call(body: EnqueueRequest) -> Call:
    return Call(body.name, body.args, body.kwargs, body.queue, body.priority, body.delay_s,
                body.eta, body.task_id)


@router.post("/tasks", status_code=201, response_model=EnqueuedTask, responses={
    **ERRORS, 200: {"model": EnqueuedTask, "description": "A task with this task_id exists"}})
def enqueue(body: EnqueueRequest, app: Engine, response: Response) -> EnqueuedTask:
    """Enqueue one task. A repeated ``task_id`` writes nothing and returns 200."""
    handle = app.enqueue_many([_call(body)])[0]
    if not handle.created:
        response.status_code = 200
    response.headers["Location"] = f"/tasks/{quote(handle.id, safe='')}"
    return EnqueuedTask(id=handle.id, queue=handle.queue, created=handle.created)


@router.post("/tasks/bulk", status_code=201, response_model=BulkEnqueued, responses=ERRORS)
def enqueue_bulk(body: BulkEnqueueRequest, app: Engine) -> BulkEnqueued:
    """Enqueue many tasks with one Lua call per queue and 500 tasks.

    Every task is validated first; one invalid task rejects the request with nothing written.
    """
    handles = app.enqueue_many([_call(item) for item in body.tasks])
    tasks = [EnqueuedTask(id=h.id, queue=h.queue, created=h.created) for h in handles]
    return BulkEnqueued(tasks=tasks, created=sum(1 for h in handles if h.created))


@router.get("/tasks/{task_id:path}/timeline", response_model=Timeline, responses=ERRORS)
def get_timeline(task_id: str, app: Engine, queue: QueueQuery = None) -> Timeline:
    """Return every event of the task still kept in its queue's stream, oldest first."""
    found = locate_task(app, task_id, queue)
    events = [event_data(e) for e in task_timeline(app, task_id, found)]
    return Timeline(task_id=task_id, queue=found, events=events)


@router.post("/tasks/{task_id:path}/cancel", response_model=CancelResult, responses={
    **ERRORS, 202: {"model": CancelResult, "description": "Running: cancellation requested"}})
def cancel(task_id: str, app: Engine, response: Response, queue: QueueQuery = None
           ) -> CancelResult:
    """Cancel a ready or scheduled task (200), or ask a running one to stop (202).

    A task that already finished returns 409 with its final state.
    """
    found = locate_task(app, task_id, queue)
    state = app.get(task_id, found).state
    # For a finished task the cancel script returns its state, which for a cancelled task
    # reads like success, so check first: a repeated cancel gets 409.
    outcome = state.value if state.terminal else app.cancel(task_id, found)
    if state.terminal or outcome not in ("cancelled", "requested"):
        raise ApiError(409, "already_finished", f"task {task_id!r} is {outcome}: only ready, "
                       "scheduled, retrying or active tasks can be cancelled")
    if outcome == "requested":
        response.status_code = 202
    return CancelResult(task_id=task_id, queue=found, outcome=outcome)


@router.get("/tasks/{task_id:path}", responses={
    **ERRORS, 200: {"description": "The task record with its arguments and, once it "
                                   "succeeded, its result",
                    "content": {"application/json": {"schema": {"type": "object"}}}}})
def get_task(task_id: str, app: Engine, queue: QueueQuery = None) -> dict[str, Any]:
    """Read a task: state, attempts, times, error, progress, arguments and result."""
    found = locate_task(app, task_id, queue)
    return app.get(task_id, found).to_dict()


@router.get("/registered-tasks", response_model=list[RegisteredTask], responses=ERRORS)
def registered_tasks(app: Engine) -> list[RegisteredTask]:
    """List the task names this server can enqueue (those its --app module registers)."""
    return [RegisteredTask(name=name, queue=d.options.queue, priority=d.options.priority,
                           max_retries=d.options.max_retries, timeout_s=d.options.timeout_s)
            for name, d in sorted(app.registered().items())]
