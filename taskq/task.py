"""Task definitions, records, retry policy and the context a running task sees."""

from __future__ import annotations

import contextvars
import json
import math
import random
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from taskq.settings import Settings


class State(str, Enum):
    """Where a task is. Each state maps to exactly one Redis structure (docs/architecture.md)."""

    SCHEDULED = "scheduled"  # in the scheduled set, waiting for its due time
    READY = "ready"          # in a ready list of its priority
    ACTIVE = "active"        # leased by a worker, in the active set
    SUCCEEDED = "succeeded"  # finished; record kept for the result retention
    RETRYING = "retrying"    # failed, in the scheduled set until its retry is due
    DEAD = "dead"            # out of retries (or not retryable), in the dead set
    CANCELLED = "cancelled"  # removed before it ran

    @property
    def terminal(self) -> bool:
        return self in (State.SUCCEEDED, State.DEAD, State.CANCELLED)


@dataclass(frozen=True)
class Backoff:
    """Exponential retry delay: ``min_s * factor**(retry-1)``, plus jitter, clamped to [min, max].

    Jitter adds a random amount of up to ``jitter`` times the computed delay before clamping, so
    a retry never comes earlier than the exponential schedule nor later than ``max_s``. An
    explicit ``min_s=0`` retries at once.
    """

    min_s: float
    max_s: float
    factor: float = 2.0
    jitter: float = 0.25

    def delay_s(self, retry: int, rng: random.Random | None = None) -> float:
        """Return the delay before retry number ``retry`` (1 for the first retry)."""
        try:
            base = self.min_s * self.factor ** max(retry - 1, 0)
        except OverflowError:
            # factor ** (retry - 1) passed the largest float: the max_s clamp decides, and a
            # minimum of 0 still means "retry at once".
            base = math.inf if self.min_s > 0 else 0.0
        spread = (rng or random).random() * self.jitter * base if base < math.inf else 0.0
        return max(self.min_s, min(self.max_s, base + spread))


@dataclass(frozen=True)
class TaskOptions:
    """Per-task defaults, stored on each record so workers apply what the producer chose."""

    queue: str
    priority: int
    max_retries: int
    backoff: Backoff
    timeout_s: float | None
    result_ttl_s: float

    def to_record_fields(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "priority": self.priority,
            "max_retries": self.max_retries,
            "backoff": {"min_s": self.backoff.min_s, "max_s": self.backoff.max_s,
                        "factor": self.backoff.factor, "jitter": self.backoff.jitter},
            "timeout_s": self.timeout_s,
            "result_ttl_s": self.result_ttl_s,
        }


@dataclass(frozen=True)
class TaskDef:
    """A registered task: its name, function and default options."""

    name: str
    func: Callable[..., Any]
    options: TaskOptions


@dataclass(frozen=True)
class Call:
    """One task to enqueue in bulk: the name and arguments, with optional overrides."""

    name: str
    args: Sequence[Any] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    queue: str | None = None
    priority: int | None = None
    delay_s: float | None = None
    eta: Any = None
    task_id: str | None = None


@dataclass
class TaskRecord:
    """A task record as read from Redis, with its arguments and result when loaded."""

    id: str
    name: str
    queue: str
    priority: int
    state: State
    attempts: int
    max_retries: int
    enqueued_ms: int | None = None
    due_ms: int | None = None
    started_ms: int | None = None
    finished_ms: int | None = None
    worker: str | None = None
    error: dict[str, Any] | None = None
    progress: dict[str, Any] | None = None
    cancel_requested: bool = False
    raw: dict[str, Any] = field(default_factory=dict)
    args: list[Any] | None = None
    kwargs: dict[str, Any] | None = None
    result: Any = None

    @classmethod
    def from_json(cls, raw_json: str) -> TaskRecord:
        """Parse a stored record; missing or mistyped fields get neutral values."""
        raw = json.loads(raw_json)
        if not isinstance(raw, dict):
            raise ValueError(f"task record is not a JSON object: {raw_json[:200]!r}")

        def as_int(name: str, default: int | None = None) -> int | None:
            value = raw.get(name)
            return int(value) if isinstance(value, (int, float)) else default

        try:
            state = State(raw.get("state"))
        except ValueError:
            state = State.DEAD
        error = raw.get("error")
        progress = raw.get("progress")
        return cls(
            id=str(raw.get("id", "")),
            name=str(raw.get("name", "")),
            queue=str(raw.get("queue", "")),
            priority=as_int("priority", 0) or 0,
            state=state,
            attempts=as_int("attempts", 0) or 0,
            max_retries=as_int("max_retries", 0) or 0,
            enqueued_ms=as_int("enqueued_ms"),
            due_ms=as_int("due_ms"),
            started_ms=as_int("started_ms"),
            finished_ms=as_int("finished_ms"),
            worker=raw.get("worker") if isinstance(raw.get("worker"), str) else None,
            error=error if isinstance(error, dict) else None,
            progress=progress if isinstance(progress, dict) else None,
            cancel_requested=bool(raw.get("cancel_requested")),
            raw=raw,
        )

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.raw)
        out.pop("lease", None)
        out.pop("started_us", None)
        out.pop("ready_us", None)
        if self.args is not None:
            out["args"] = self.args
            out["kwargs"] = self.kwargs
        if self.state is State.SUCCEEDED:
            out["result"] = self.result
        return out


def _safe_text(value: str, limit: int) -> tuple[str, bool]:
    """Make ``value`` valid UTF-8 and cut it to ``limit`` characters; returns (text, cut)."""
    text = value.encode("utf-8", "replace").decode("utf-8", "replace")
    if len(text) > limit:
        return text[:limit], True
    return text, False


def describe_exception(exc: BaseException, settings: Settings) -> dict[str, Any]:
    """Turn an exception into the stored error: type, message, traceback, truncated flag.

    Never raises: an exception whose ``str()`` raises gets a fallback message naming its class,
    and text that is not valid UTF-8 is replaced character by character.
    """
    kind = type(exc).__name__
    try:
        message = str(exc)
    except Exception as str_error:  # noqa: BLE001 - any failure here must not lose the error
        message = f"<{kind} whose str() raised {type(str_error).__name__}>"
    try:
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    except Exception as tb_error:  # noqa: BLE001
        tb = f"<traceback could not be formatted: {type(tb_error).__name__}>"
    message, cut_message = _safe_text(message, settings.max_error_message_chars)
    tb, cut_tb = _safe_text(tb, settings.max_traceback_chars)
    return {"type": kind, "message": message, "traceback": tb,
            "truncated": cut_message or cut_tb}


@dataclass
class TaskContext:
    """What a running task can see and do: its ids, progress reports and cancellation."""

    task_id: str
    queue: str
    attempt: int
    worker_id: str
    _report: Callable[[float, str], bool]
    _cancelled: Callable[[], bool]

    def progress(self, fraction: float, message: str = "") -> bool:
        """Store progress (0..1) and a short message on the record and emit a progress event.

        Returns False when the worker no longer holds the task's lease.
        """
        return self._report(fraction, message)

    def cancelled(self) -> bool:
        """True once someone asked to cancel this task; a long task should check it and stop."""
        return self._cancelled()


_current: contextvars.ContextVar[TaskContext | None] = contextvars.ContextVar(
    "taskq_current_task", default=None)


def current_task() -> TaskContext:
    """Return the context of the task running in this thread.

    Raises RuntimeError outside a task body.
    """
    context = _current.get()
    if context is None:
        raise RuntimeError("current_task() was called outside a running task")
    return context
