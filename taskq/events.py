"""Reading the engine's event streams: one per queue plus one for workers.

Each event is a transition appended by the Lua call that made it, with the server time in ms.
Offsets are stream ids; a reader that keeps the last id it saw resumes without gaps for as long
as the stream still holds those entries (streams are capped near ``events_max_len``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from taskq.cluster import xread_each

if TYPE_CHECKING:
    from taskq.app import App


@dataclass(frozen=True)
class Event:
    """One transition: ``kind`` (enqueued, started, succeeded, ...) and its fields."""

    stream: str
    id: str
    kind: str
    task_id: str
    queue: str
    worker: str
    attempt: int
    t_ms: int
    fields: dict[str, str]


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _event(stream: str, event_id: Any, raw: dict[Any, Any]) -> Event:
    fields = {_text(k): _text(v) for k, v in raw.items()}
    return Event(
        stream=stream, id=_text(event_id), kind=fields.pop("kind", ""),
        task_id=fields.pop("task", ""), queue=fields.pop("queue", ""),
        worker=fields.pop("worker", ""), attempt=int(fields.pop("attempt", "0") or 0),
        t_ms=int(fields.pop("t", "0") or 0), fields=fields,
    )


def stream_keys(app: App, queues: list[str] | None = None) -> list[str]:
    """The event streams to read: the named queues' (all by default) and the workers'."""
    names = app.queues() if queues is None else queues
    return [app.keys.queue(q).events for q in names] + [app.keys.global_keys.events]


def read_events(app: App, offsets: dict[str, str], count: int = 500,
                block_ms: int | None = None) -> tuple[list[Event], dict[str, str]]:
    """Read events after each stream's offset ('0' = from the start, '$' = only new ones).

    Returns the events in time order and the new offsets. ``block_ms`` waits for the first
    event when there is none yet.
    """
    if not offsets:
        return [], offsets
    if app.cluster and len(offsets) > 1:
        # Streams of different queues live in different hash slots: read them one by one.
        reply = xread_each(app, offsets, count, block_ms)
    else:
        reply = app.client.xread(offsets, count=count, block=block_ms)
    events: list[Event] = []
    new_offsets = dict(offsets)
    for stream, entries in reply or []:
        name = _text(stream)
        for event_id, raw in entries:
            events.append(_event(name, event_id, raw))
            new_offsets[name] = _text(event_id)
    events.sort(key=lambda e: (e.t_ms, e.id))
    return events, new_offsets


def latest_events(app: App, queues: list[str] | None = None, count: int = 100) -> list[Event]:
    """The newest ``count`` events of each stream, merged newest first. Cost does not depend on
    the event rate, so the dashboard can call it on every refresh."""
    events: list[Event] = []
    for key in stream_keys(app, queues):
        for event_id, raw in app.client.xrevrange(key, count=count):
            events.append(_event(key, event_id, raw))
    events.sort(key=lambda e: (e.t_ms, e.id), reverse=True)
    return events[:count]


def events_since(app: App, offsets: dict[str, str], count: int = 100
                 ) -> tuple[list[Event], dict[str, str], bool]:
    """The newest ``count`` events of each stream after its offset ('0' = any), newest first.

    Unlike ``read_events``, which returns the oldest events after an offset, this skips the
    middle when more than ``count`` arrived, so one call costs the same at any event rate: the
    live view's reader. Returns the events, the new offsets (each stream's newest id seen) and
    whether some stream had more new events than ``count``. One pipelined round trip.
    """
    keys = list(offsets)
    pipe = app.client.pipeline(transaction=False)
    for key in keys:
        since = offsets[key]
        pipe.xrevrange(key, max="+", min="-" if since in ("", "0") else f"({since}",
                       count=count)
    events: list[Event] = []
    new_offsets = dict(offsets)
    truncated = False
    for key, entries in zip(keys, pipe.execute()):
        if entries:
            new_offsets[key] = _text(entries[0][0])
            truncated = truncated or len(entries) >= count
        events.extend(_event(key, event_id, raw) for event_id, raw in entries)
    events.sort(key=lambda e: (e.t_ms, e.id), reverse=True)
    return events, new_offsets, truncated


def task_timeline(app: App, task_id: str, queue: str, scan: int = 10_000) -> list[Event]:
    """Every event of one task still in its queue's stream (the newest ``scan`` are searched)."""
    key = app.keys.queue(queue).events
    found = [_event(key, event_id, raw) for event_id, raw in
             app.client.xrevrange(key, count=scan)]
    return sorted((e for e in found if e.task_id == task_id), key=lambda e: e.id)


def follow(app: App, queues: list[str] | None = None, start: str = "$",
           block_ms: int = 1000) -> Iterator[Event]:
    """Yield events as they arrive, forever; ``start`` is '$' (new only) or '0' (all kept)."""
    offsets = {key: start for key in stream_keys(app, queues)}
    if start == "$":
        # '$' would skip events that arrive between two reads: pin each stream's current id.
        for key in offsets:
            last = app.client.xrevrange(key, count=1)
            offsets[key] = _text(last[0][0]) if last else "0"
    while True:
        events, offsets = read_events(app, offsets, block_ms=block_ms)
        yield from events
