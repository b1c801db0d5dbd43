"""Dependencies shared by the routes: the engine App, bearer-token checks, input checks."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from taskq import codec
from taskq.api.errors import ApiError
from taskq.app import App

bearer = HTTPBearer(auto_error=False, description="Required when the server has a token "
                                                 "(TASKQ_API_TOKEN or --token).")


def engine(request: Request) -> App:
    app: App = request.app.state.taskq
    return app


Engine = Annotated[App, Depends(engine)]


def require_token(request: Request,
                  credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
                  ) -> None:
    """Reject the request with 401 unless it carries the server's bearer token (if it has one)."""
    token: str | None = request.app.state.token
    if token is None:
        return
    if credentials is None:
        raise ApiError(401, "unauthorized", "this server requires a bearer token: send the "
                       "header 'Authorization: Bearer <token>'")
    if not hmac.compare_digest(credentials.credentials.encode("utf-8", "replace"),
                               token.encode("utf-8")):
        raise ApiError(401, "unauthorized", "the bearer token is wrong: use the token the "
                       "server was started with (TASKQ_API_TOKEN or --token)")


def check_queue_name(app: App, queue: str) -> str:
    return codec.validate_name("queue", queue, app.settings.max_queue_name_chars)


def check_task_id(app: App, task_id: str) -> str:
    return codec.validate_name("task_id", task_id, app.settings.max_id_chars)


def known_queue(app: App, queue: str) -> str:
    """Return ``queue`` if it is valid and has had a task; raises ApiError 404 otherwise."""
    check_queue_name(app, queue)
    if not app.client.sismember(app.keys.global_keys.queues, queue):
        raise ApiError(404, "queue_not_found", f"queue {queue!r} not found: no task was ever "
                       "enqueued to it (GET /queues lists the queues)")
    return queue


def locate_task(app: App, task_id: str, queue: str | None) -> str:
    """Return the queue holding ``task_id``'s record.

    Raises TaskNotFoundError (404), or ApiError 409 when the id exists in several queues.
    This is ``App.find_queue`` with the ambiguous case kept apart, so it can return 409.
    """
    check_task_id(app, task_id)
    if queue is not None:
        known_queue(app, queue)
        if not app.client.hexists(app.keys.queue(queue).tasks, task_id):
            raise ApiError(404, "task_not_found", f"task {task_id!r} not found in queue "
                           f"{queue!r}: it was never enqueued there or its record has expired")
        return queue
    queues = app.queues()
    pipe = app.client.pipeline(transaction=False)
    for name in queues:
        pipe.hexists(app.keys.queue(name).tasks, task_id)
    found = [name for name, exists in zip(queues, pipe.execute()) if exists]
    if not found:
        raise ApiError(404, "task_not_found", f"task {task_id!r} not found: it was never "
                       "enqueued or its record has expired")
    if len(found) > 1:
        raise ApiError(409, "ambiguous_task_id", f"task id {task_id!r} exists in several queues "
                       f"({', '.join(found)}): pass ?queue= to choose one")
    return found[0]
