"""Request and response bodies of the HTTP API, as pydantic models (the OpenAPI schemas)."""

from __future__ import annotations

from enum import Enum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from taskq.settings import MAX_PRIORITY, MIN_PRIORITY

MAX_BULK_TASKS = 10_000
MAX_IDS_PER_REQUEST = 10_000


class Strict(BaseModel):
    """A request body that rejects unknown fields, so a misspelt option is an error."""

    model_config = ConfigDict(extra="forbid")


class EnqueueRequest(Strict):
    """One task to enqueue. Options left out take the task's registered defaults."""

    name: str = Field(description="Registered task name.", min_length=1)
    args: list[Any] = Field(default_factory=list, description="Positional arguments (JSON).")
    kwargs: dict[str, Any] = Field(default_factory=dict,
                                   description="Keyword arguments (JSON object).")
    queue: str | None = Field(default=None, description="Queue; default: the task's queue.")
    # strict: JSON true or "7" is not a priority or a delay, as in the Python API.
    priority: int | None = Field(default=None, ge=MIN_PRIORITY, le=MAX_PRIORITY, strict=True,
                                 description="Higher runs first; default: the task's.")
    delay_s: float | None = Field(default=None, ge=0, strict=True, allow_inf_nan=False,
                                  description="Run after this many seconds (Redis clock).")
    eta: AwareDatetime | None = Field(
        default=None, description="Run at this time; ISO 8601 with a time zone offset or Z.")
    task_id: str | None = Field(
        default=None, description="Idempotency key: while a task with this id exists in the "
                                  "queue, the request writes nothing and returns 200.")


class BulkEnqueueRequest(Strict):
    """Tasks to enqueue together; all are validated before any is written."""

    tasks: list[EnqueueRequest] = Field(min_length=1, max_length=MAX_BULK_TASKS)


class EnqueuedTask(BaseModel):
    """The id and queue of an enqueued task."""

    id: str
    queue: str
    created: bool = Field(description="False when a task with this id already existed.")


class BulkEnqueued(BaseModel):
    """The enqueued tasks, in request order."""

    tasks: list[EnqueuedTask]
    created: int = Field(description="How many tasks were new.")


class TaskState(str, Enum):
    """The Redis structure a listing reads; each maps to one or two task states."""

    READY = "ready"            # state ready, in claim order
    SCHEDULED = "scheduled"    # states scheduled and retrying, soonest due first
    ACTIVE = "active"          # state active, earliest lease deadline first
    DEAD = "dead"              # state dead, newest first
    FINISHED = "finished"      # states succeeded and cancelled, soonest to expire first


class TaskPage(BaseModel):
    """One page of the tasks in a queue structure. Records read without their arguments."""

    queue: str
    state: TaskState
    offset: int
    limit: int
    total: int = Field(description="Tasks in the structure when the page was read.")
    tasks: list[dict[str, Any]]


class Timeline(BaseModel):
    """Every event of one task still kept in its queue's event stream, oldest first."""

    task_id: str
    queue: str
    events: list[dict[str, Any]]


class CancelResult(BaseModel):
    """``cancelled`` (removed before it ran) or ``requested`` (running; the body sees the flag)."""

    task_id: str
    queue: str
    outcome: str


class QueueState(BaseModel):
    """A queue's paused flag after a pause or resume request."""

    queue: str
    paused: bool
    changed: bool = Field(description="False when the queue already was in that state.")


class IdsRequest(Strict):
    """Dead task ids to act on; leave ``task_ids`` out to act on every dead task of the queue."""

    task_ids: list[str] | None = Field(default=None, max_length=MAX_IDS_PER_REQUEST)


class RequeueRequest(IdsRequest):
    """Dead tasks to move back to ready, after an optional delay, here or in another queue."""

    delay_s: float = Field(default=0.0, ge=0, strict=True, allow_inf_nan=False,
                           description="Seconds to wait before they run.")
    to_queue: str | None = Field(default=None, description="Move them to this queue instead.")


class Count(BaseModel):
    """How many tasks an operation touched."""

    queue: str
    count: int


class ResizeRequest(Strict):
    """The new number of slots of a worker."""

    concurrency: int = Field(ge=1, le=1024)


class ResizeSent(BaseModel):
    """A resize command left for the worker; it applies it at its next heartbeat."""

    worker_id: str
    concurrency: int


class RegisteredTask(BaseModel):
    """A task name this server can enqueue, with its defaults."""

    name: str
    queue: str
    priority: int
    max_retries: int
    timeout_s: float | None


class Health(BaseModel):
    """The server's version and backend, and whether Redis replies."""

    status: str
    version: str
    backend: str


class ErrorBody(BaseModel):
    """Every error response: a stable code, a sentence for people, and per-field details."""

    error: str = Field(description="Stable machine-readable code, e.g. task_not_found.")
    message: str = Field(description="What failed, on which value, and what to do.")
    details: list[dict[str, Any]] = Field(default_factory=list)
