"""The Server-Sent Events endpoint: engine events from the per-queue streams, resumable.

Each queue has its own Redis stream and workers have one more, so one offset cannot describe a
client's position. The SSE ``id`` of every event is therefore a cursor holding the offset of
every stream the connection reads. A reconnecting ``EventSource`` sends the last one back in
``Last-Event-ID`` and the server resumes each stream after its own offset, so the client misses
nothing that the streams still hold. Streams are capped near ``Settings.events_max_len``: an
offset older than a stream's first entry resumes at that first entry.
"""

from __future__ import annotations

import base64
import binascii
import heapq
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio.to_thread
import redis
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from taskq import codec
from taskq.api.deps import Engine
from taskq.api.errors import ApiError
from taskq.app import App
from taskq.events import Event, read_events

log = logging.getLogger("taskq.api")

router = APIRouter(tags=["events"])

CURSOR_PREFIX = "c1."
# The worker stream's name inside a cursor; queue names are never empty, so it cannot clash.
WORKER_STREAM = ""
STREAM_ID = re.compile(r"^(0|\d{1,20}-\d{1,20})$")
MAX_CURSOR_CHARS = 200_000

READ_COUNT = 500
# How long one XREAD blocks. Bounds how late a stop (limit, timeout, disconnect) is noticed.
BLOCK_MS = 1000
KEEPALIVE_S = 15.0
# How often a connection that follows every queue looks for queues created since it started.
QUEUE_REFRESH_S = 2.0
# Sent once at the start: the delay in ms an EventSource waits before it reconnects.
RECONNECT_MS = 1000


def encode_cursor(offsets: dict[str, str]) -> str:
    """Return an opaque, URL-safe cursor for stream offsets keyed by queue name."""
    raw = json.dumps(offsets, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return CURSOR_PREFIX + base64.urlsafe_b64encode(raw.encode("utf-8")).decode("ascii").rstrip(
        "=")


def decode_cursor(text: str, where: str) -> dict[str, str]:
    """Parse a cursor made by ``encode_cursor``; raises ApiError 400 naming ``where``."""
    hint = (f"{where} {text[:60]!r} is not an event id from this API: reconnect without it, "
            "or with from=start to read every event still kept")
    if not text.startswith(CURSOR_PREFIX) or len(text) > MAX_CURSOR_CHARS:
        raise ApiError(400, "invalid_cursor", hint)
    body = text[len(CURSOR_PREFIX):]
    try:
        data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (ValueError, binascii.Error):
        raise ApiError(400, "invalid_cursor", hint) from None
    if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and STREAM_ID.match(v)
            for k, v in data.items()):
        raise ApiError(400, "invalid_cursor", hint)
    return data


def _id_key(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


def _merge(events: list[Event]) -> list[Event]:
    """Order events by time across streams without reordering any one stream.

    A stream's ids only grow, but the ``t`` field comes from the caller's clock (a test's fake
    clock, or another Cluster node). A plain sort by time could therefore put a stream's later
    entry before an earlier one, and a cursor sent in between would skip the earlier one.
    """
    by_stream: dict[str, list[Event]] = {}
    for event in events:
        by_stream.setdefault(event.stream, []).append(event)
    ordered = [sorted(group, key=lambda e: _id_key(e.id)) for group in by_stream.values()]
    return list(heapq.merge(*ordered, key=lambda e: (e.t_ms, _id_key(e.id))))


def event_data(event: Event) -> dict[str, Any]:
    """Build the JSON ``data`` of one SSE message."""
    return {"stream_id": event.id, "kind": event.kind, "queue": event.queue,
            "task_id": event.task_id, "worker": event.worker, "attempt": event.attempt,
            "t_ms": event.t_ms, "fields": event.fields}


class Subscription:
    """The streams one connection reads and its offset in each, keyed by stream key."""

    def __init__(self, app: App, queues: list[str] | None, workers: bool) -> None:
        self.app = app
        self.follow_all = queues is None
        self.workers = workers
        self.names: dict[str, str] = {}   # stream key -> queue name (or WORKER_STREAM)
        self.offsets: dict[str, str] = {}
        self._queues = queues or []
        self._last_refresh = 0.0

    def _wanted(self) -> list[str]:
        names = self.app.queues() if self.follow_all else self._queues
        self._last_refresh = time.monotonic()
        return names

    def _add(self, name: str, offset: str) -> None:
        key = (self.app.keys.global_keys.events if name == WORKER_STREAM
               else self.app.keys.queue(name).events)
        if key not in self.offsets:
            self.names[key] = name
            self.offsets[key] = offset

    def start(self, mode: str, cursor: dict[str, str] | None) -> None:
        """Set the first offsets: after the cursor, from the start, or from now."""
        names = self._wanted() + ([WORKER_STREAM] if self.workers else [])
        for name in names:
            if cursor is not None:
                # A stream missing from the cursor was created after it: read it whole.
                self._add(name, cursor.get(name, "0"))
            elif mode == "start":
                self._add(name, "0")
            else:
                key = (self.app.keys.global_keys.events if name == WORKER_STREAM
                       else self.app.keys.queue(name).events)
                last = self.app.client.xrevrange(key, count=1)
                self._add(name, last[0][0].decode() if last else "0")

    def refresh(self) -> None:
        """Add the streams of queues created since the last look (whole, from offset 0)."""
        if self.follow_all and time.monotonic() - self._last_refresh >= QUEUE_REFRESH_S:
            for name in self._wanted():
                self._add(name, "0")

    def read(self, block_ms: int) -> list[Event]:
        self.refresh()
        if not self.offsets:
            # Nothing to read yet (no queue exists and worker events are off): wait as a
            # blocking read would, instead of spinning.
            time.sleep(block_ms / 1000)
            return []
        events, _ = read_events(self.app, dict(self.offsets), count=READ_COUNT,
                                block_ms=block_ms)
        return _merge(events)

    def advance(self, event: Event) -> str:
        """Record ``event`` as delivered and return the cursor that resumes after it."""
        self.offsets[event.stream] = event.id
        return encode_cursor({self.names[k]: v for k, v in self.offsets.items()})


def _parse_queues(raw: str | None, max_chars: int) -> list[str] | None:
    if raw is None:
        return None
    names = [part.strip() for part in raw.split(",") if part.strip()]
    if not names:
        raise ApiError(422, "invalid_value", f"queues {raw!r} names no queue: pass "
                       "comma-separated queue names, or leave the parameter out for all")
    return [codec.validate_name("queue", name, max_chars) for name in names]


def _sse(event: Event, cursor: str) -> str:
    data = json.dumps(event_data(event), ensure_ascii=False, separators=(",", ":"))
    return f"id: {cursor}\ndata: {data}\n\n"


@router.get(
    "/events",
    summary="Stream engine events (Server-Sent Events)",
    response_class=StreamingResponse,
    responses={200: {"description": "An endless text/event-stream; each event's id is a "
                                    "cursor to resume after it.",
                     "content": {"text/event-stream": {"schema": {"type": "string"}}}}},
)
async def stream_events(
    request: Request,
    app: Engine,
    queues: Annotated[str | None, Query(
        description="Comma-separated queues to follow; default: every queue, including "
                    "queues created while the stream is open.")] = None,
    start: Annotated[str, Query(
        alias="from", description="Where to start when there is no Last-Event-ID: 'now' "
                                  "(new events only), 'start' (every event still kept), or an "
                                  "event id received earlier.")] = "now",
    workers: Annotated[bool, Query(description="Include worker events (online, offline, "
                                               "pool resized).")] = True,
    limit: Annotated[int | None, Query(ge=1, le=1_000_000, description=(
        "Close the stream after this many events."))] = None,
    timeout_s: Annotated[float | None, Query(gt=0, le=86_400, description=(
        "Close the stream after this many seconds."))] = None,
    last_event_id: Annotated[str | None, Header(
        alias="Last-Event-ID", description="Sent by a reconnecting EventSource: resume after "
                                           "this event.")] = None,
) -> StreamingResponse:
    """Stream every engine event from an offset as Server-Sent Events.

    Each message's data is a JSON object with the event kind, task, queue, worker, attempt,
    time (ms) and extra fields. A comment line is sent every 15 s while nothing happens.
    """
    names = _parse_queues(queues, app.settings.max_queue_name_chars)
    cursor = None
    if last_event_id:
        cursor = decode_cursor(last_event_id, "Last-Event-ID")
    elif start not in ("now", "start"):
        cursor = decode_cursor(start, "from")
    subscription = Subscription(app, names, workers)
    await anyio.to_thread.run_sync(subscription.start, start, cursor)
    log.info("event stream opened client=%s streams=%d resumed=%s",
             request.client.host if request.client else "-", len(subscription.offsets),
             cursor is not None)
    return StreamingResponse(_generate(subscription, limit, timeout_s),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _generate(subscription: Subscription, limit: int | None,
                    timeout_s: float | None) -> AsyncIterator[str]:
    started = time.monotonic()
    deadline = None if timeout_s is None else started + timeout_s
    last_write = started
    sent = 0
    yield f"retry: {RECONNECT_MS}\n\n"
    try:
        while limit is None or sent < limit:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            block_ms = BLOCK_MS if deadline is None else max(
                1, min(BLOCK_MS, round((deadline - now) * 1000)))
            try:
                events = await anyio.to_thread.run_sync(subscription.read, block_ms)
            except redis.RedisError as exc:
                # End the response: the client's EventSource reconnects with its last id.
                log.warning("event stream read failed error=%s: %s", type(exc).__name__, exc)
                yield ": Redis read failed, reconnect to resume\n\n"
                break
            for event in events:
                if limit is not None and sent >= limit:
                    break
                yield _sse(event, subscription.advance(event))
                sent += 1
                last_write = time.monotonic()
            if not events and time.monotonic() - last_write >= KEEPALIVE_S:
                yield ": keepalive\n\n"
                last_write = time.monotonic()
    finally:
        log.info("event stream closed events=%d duration_s=%.1f", sent,
                 time.monotonic() - started)
