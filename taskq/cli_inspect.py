"""``taskq stats`` and ``taskq events``: read-only views of queues, workers and transitions."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from taskq.cli_common import app_option, format_table, open_app, redis_url_option
from taskq.codec import utc_iso
from taskq.events import Event, latest_events, read_events, stream_keys
from taskq.metrics import percentile_ms
from taskq.snapshot import take_snapshot

QUEUE_HELP = "Only this queue (repeat for several). Default: every queue."
# How long one blocking read of --follow waits before it checks --duration again, in ms.
FOLLOW_BLOCK_MS = 500


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


@click.command()
@click.option("--queue", "queues", multiple=True, help=QUEUE_HELP)
@click.option("--json", "as_json", is_flag=True,
              help="Print the snapshot as JSON (totals, queues, workers) instead of tables.")
@redis_url_option
@app_option(required=False, extra_help=" Optional: only its key prefix is used.")
def stats(queues: tuple[str, ...], as_json: bool, redis_url: str | None,
          app_spec: str | None) -> None:
    """Print depths, counters and queue waits per queue, and the workers, from one snapshot.

    Waits are in ms, estimated from histogram buckets; counters count since the queue was
    created.
    """
    app = open_app(redis_url, app_spec)
    snap = take_snapshot(app, list(queues) or None)
    if as_json:
        click.echo(json.dumps(snap.to_dict(), indent=2, sort_keys=True))
        return
    rows = []
    for name, view in sorted(snap.queues.items()):
        counters = view.counters
        rows.append([name, "yes" if view.paused else "no", view.ready, view.scheduled,
                     view.active, view.dead, counters.get("enqueued", 0),
                     counters.get("succeeded", 0), counters.get("failed", 0),
                     counters.get("retried", 0), counters.get("recovered", 0),
                     counters.get("dead_trimmed", 0),
                     _ms(percentile_ms(view.wait_hist, 0.5)),
                     _ms(percentile_ms(view.wait_hist, 0.99))])
    headers = ["queue", "paused", "ready", "scheduled", "active", "dead", "enqueued",
               "succeeded", "failed", "retried", "recovered", "dead trimmed", "wait p50 ms",
               "wait p99 ms"]
    if not rows:
        click.echo("no queues yet: enqueue a task first")
    else:
        for line in format_table(headers, rows, right=range(2, 14)):
            click.echo(line)
    click.echo(f"\nthroughput {snap.throughput_per_s():.1f} succeeded/s over the last 5 s; "
               f"wait p50 {_ms(snap.wait_percentile_ms(0.5))} ms, "
               f"p99 {_ms(snap.wait_percentile_ms(0.99))} ms over all queues shown")
    if not snap.workers:
        click.echo("no workers registered")
        return
    worker_rows = [[w.id, w.state, w.concurrency, len(w.tasks), w.processed, w.failed,
                    f"{w.heartbeat_age_s:.1f}", ",".join(w.queues)] for w in snap.workers]
    click.echo("")
    for line in format_table(["worker", "state", "slots", "running", "processed", "failed",
                              "heartbeat age s", "queues"], worker_rows, right=range(2, 7)):
        click.echo(line)


def _format_event(event: Event) -> str:
    extra = " ".join(f"{key}={value}" for key, value in sorted(event.fields.items()))
    parts = [utc_iso(event.t_ms), f"{event.kind:<15}"]
    if event.task_id:
        parts.append(f"task={event.task_id}")
    if event.queue:
        parts.append(f"queue={event.queue}")
    if event.worker:
        parts.append(f"worker={event.worker}")
    if event.attempt:
        parts.append(f"attempt={event.attempt}")
    if extra:
        parts.append(extra)
    return " ".join(parts)


def _event_json(event: Event) -> str:
    return json.dumps({"stream": event.stream, "id": event.id, "kind": event.kind,
                       "task_id": event.task_id, "queue": event.queue, "worker": event.worker,
                       "attempt": event.attempt, "t_ms": event.t_ms, "fields": event.fields})


def _stream_id(value: str) -> tuple[int, int]:
    ms, _, seq = value.partition("-")
    return int(ms), int(seq or 0)


def _pin_offsets(app: Any, keys: list[str]) -> dict[str, str]:
    """Return each stream's newest id ('0' when empty), so following starts right after it."""
    offsets = {}
    for key in keys:
        last = app.client.xrevrange(key, count=1)
        offsets[key] = last[0][0].decode() if last else "0"
    return offsets


@click.command()
@click.option("--queue", "queues", multiple=True, help=QUEUE_HELP)
@click.option("-n", "--count", default=20, show_default=True, type=click.IntRange(0, 10_000),
              help="How many of the newest events to print first.")
@click.option("--follow", "-f", is_flag=True,
              help="Keep printing new events as they arrive, until Ctrl-C or --duration.")
@click.option("--duration", "duration_s", default=None, type=click.FloatRange(min=0),
              metavar="SECONDS", help="With --follow: stop after this many seconds. "
                                      "Default: run until Ctrl-C.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per event.")
@redis_url_option
@app_option(required=False, extra_help=" Optional: only its key prefix is used.")
def events(queues: tuple[str, ...], count: int, follow: bool, duration_s: float | None,
           as_json: bool, redis_url: str | None, app_spec: str | None) -> None:
    """Print the newest task and worker events, oldest first; --follow streams new ones."""
    app = open_app(redis_url, app_spec)
    names = list(queues) or None
    fmt = _event_json if as_json else _format_event
    offsets = _pin_offsets(app, stream_keys(app, names)) if follow else {}
    newest = latest_events(app, names, count) if count else []
    for event in reversed(newest):
        # Events newer than the pinned offsets are printed by the follow loop below.
        if not follow or _stream_id(event.id) <= _stream_id(offsets.get(event.stream, "0")):
            click.echo(fmt(event))
    if not follow:
        return
    deadline = None if duration_s is None else time.monotonic() + duration_s
    try:
        while deadline is None or time.monotonic() < deadline:
            for key in stream_keys(app, names):
                # A queue created while following: all its events are new.
                offsets.setdefault(key, "0")
            block_ms = FOLLOW_BLOCK_MS
            if deadline is not None:
                block_ms = max(1, min(block_ms, int((deadline - time.monotonic()) * 1000)))
            batch, offsets = read_events(app, offsets, block_ms=block_ms)
            for event in batch:
                click.echo(fmt(event))
    except KeyboardInterrupt:
        pass
