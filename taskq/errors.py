"""Exceptions raised by the engine. Every one derives from ``TaskqError``."""

from __future__ import annotations


class TaskqError(Exception):
    """Base class of every error the engine raises."""


class ConfigurationError(TaskqError):
    """A setting, URL or registration that cannot work; the message says how to fix it."""


class InvalidTaskError(TaskqError, ValueError):
    """Input to enqueue or a control call that is rejected before anything is written."""


class PayloadTooLargeError(InvalidTaskError):
    """Encoded arguments larger than ``Settings.max_payload_bytes``."""


class UnknownTaskError(InvalidTaskError):
    """A task name that is not registered with the app."""


class TaskNotFoundError(TaskqError, LookupError):
    """No record exists for the task id (never enqueued, or removed by retention)."""

    def __init__(self, task_id: str, message: str | None = None) -> None:
        super().__init__(message or f"task {task_id!r} not found: it was never enqueued or its "
                         "record has expired")
        self.task_id = task_id


class TaskFailedError(TaskqError):
    """Raised by ``TaskHandle.result`` when the task ended dead or cancelled."""

    def __init__(self, task_id: str, state: str, error: dict[str, object] | None) -> None:
        detail = ""
        if error:
            detail = f": {error.get('type')}: {error.get('message')}"
        super().__init__(f"task {task_id!r} ended {state}{detail}")
        self.task_id = task_id
        self.state = state
        self.error = error


class ResultTimeoutError(TaskqError, TimeoutError):
    """``TaskHandle.result`` waited its full timeout without the task finishing."""

    def __init__(self, task_id: str, timeout_s: float, state: str) -> None:
        super().__init__(f"task {task_id!r} did not finish within {timeout_s} s "
                         f"(state is {state!r})")
        self.task_id = task_id
        self.state = state


class TaskTimeoutError(TaskqError, TimeoutError):
    """The task body ran longer than its timeout; the attempt fails with this error."""


class Retry(Exception):  # noqa: N818 - a control-flow signal, deliberately not named *Error
    """Raise from a task body to fail this attempt and retry after ``delay_s`` seconds.

    It is not a ``TaskqError``: it signals a decision, not a fault. The retry still counts
    against the task's ``max_retries``; past it, the task goes dead.
    """

    def __init__(self, delay_s: float | None = None, reason: str = "retry requested") -> None:
        super().__init__(reason)
        if delay_s is not None and (delay_s != delay_s or delay_s < 0):
            raise InvalidTaskError(f"Retry delay_s={delay_s!r} is invalid: use a number >= 0")
        self.delay_s = delay_s
