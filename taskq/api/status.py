"""Routes for the whole engine: health, the stats snapshot, workers and pool resizing."""

from __future__ import annotations

import dataclasses
from typing import Any

import redis
from fastapi import APIRouter, Response

import taskq
from taskq.api.deps import Engine
from taskq.api.errors import ApiError
from taskq.api.models import Health, ResizeRequest, ResizeSent
from taskq.api.tasks import ERRORS
from taskq.snapshot import take_snapshot

health_router = APIRouter(tags=["status"])
router = APIRouter(tags=["status"])


@health_router.get("/health", response_model=Health, responses={503: {"model": Health}})
def health(app: Engine, response: Response) -> Health:
    """Report whether the server runs and Redis replies to PING. Needs no token."""
    try:
        app.client.ping()
        status = "ok"
    except redis.RedisError:
        status = "redis_unavailable"
        response.status_code = 503
    return Health(status=status, version=taskq.__version__, backend=str(app.backend))


@router.get("/stats", responses=ERRORS)
def stats(app: Engine) -> dict[str, Any]:
    """Return the engine snapshot: totals, rates, latency percentiles, queues and workers."""
    return take_snapshot(app).to_dict()


@router.get("/workers", responses=ERRORS)
def workers(app: Engine) -> list[dict[str, Any]]:
    """List every known worker with its state, heartbeat age, slots and leased tasks."""
    snapshot = take_snapshot(app)
    return [dataclasses.asdict(w) for w in snapshot.workers]


@router.post("/workers/{worker_id:path}/resize", status_code=202, response_model=ResizeSent,
             responses=ERRORS)
def resize(worker_id: str, body: ResizeRequest, app: Engine) -> ResizeSent:
    """Change a worker's number of slots; it applies the command at its next heartbeat."""
    found = [w for w in take_snapshot(app, queues=[]).workers if w.id == worker_id]
    if not found:
        raise ApiError(404, "worker_not_found", f"worker {worker_id!r} not found: GET /workers "
                       "lists the known workers")
    if found[0].state == "offline":
        raise ApiError(409, "worker_offline", f"worker {worker_id!r} is offline (last heartbeat "
                       f"{found[0].heartbeat_age_s:.0f} s ago): it cannot apply a resize")
    app.send_worker_command(worker_id, {"resize": body.concurrency})
    return ResizeSent(worker_id=worker_id, concurrency=body.concurrency)
