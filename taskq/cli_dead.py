"""``taskq dead``: list, show, requeue and purge dead tasks (dead letters)."""

from __future__ import annotations

import json
from typing import Any

import click

from taskq.admin import DEAD_PAGE
from taskq.app import App
from taskq.cli_common import (
    EXIT_INVALID,
    CommandError,
    app_option,
    format_table,
    known_queue,
    open_app,
    progressbar,
    redis_url_option,
)
from taskq.codec import utc_iso
from taskq.errors import TaskNotFoundError, UnknownTaskError
from taskq.task import State

QUEUE_HELP = "Only dead tasks of this queue. Default: every queue."
# Maximum length of the error message in one table cell, in characters.
MESSAGE_CHARS = 60


@click.group()
def dead() -> None:
    """Inspect and act on dead tasks: tasks out of retries or with a permanent error."""


def _queues(app: App, queue: str | None) -> list[str]:
    return [known_queue(app, queue)] if queue else app.queues()


def _short(text: str, limit: int = MESSAGE_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


@dead.command("list")
@click.option("--queue", default=None, help=QUEUE_HELP)
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000),
              help="Show at most this many of the newest dead tasks per queue.")
@click.option("--groups", is_flag=True,
              help="Group by error type and message shape (numbers and ids masked) instead.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@redis_url_option
@app_option(required=False, extra_help=" Optional: only its key prefix is used.")
def dead_list(queue: str | None, limit: int, groups: bool, as_json: bool,
              redis_url: str | None, app_spec: str | None) -> None:
    """List dead tasks, newest first, with their last error."""
    app = open_app(redis_url, app_spec)
    names = _queues(app, queue)
    if groups:
        _print_groups(app, names, as_json)
        return
    rows: list[dict[str, Any]] = []
    totals = {}
    for name in names:
        totals[name] = int(app.client.zcard(app.keys.queue(name).dead))
        for rec in app.dead_letters(name, 0, limit):
            error = rec.error or {}
            rows.append({"id": rec.id, "queue": name, "name": rec.name,
                         "attempts": rec.attempts, "dead_at": utc_iso(rec.finished_ms),
                         "error_type": error.get("type"), "message": error.get("message")})
    if as_json:
        click.echo(json.dumps({"totals": totals, "tasks": rows}, indent=2))
        return
    if not rows:
        click.echo("no dead tasks")
        return
    table = [[r["id"], r["queue"], r["name"], r["attempts"], r["dead_at"],
              f"{r['error_type']}: {_short(str(r['message']))}"] for r in rows]
    for line in format_table(["id", "queue", "task", "attempts", "dead at (UTC)", "error"],
                             table, right=[3]):
        click.echo(line)
    shown = ", ".join(f"{name}: {total}" for name, total in totals.items() if total)
    click.echo(f"\ndead tasks per queue: {shown}")


def _print_groups(app: App, names: list[str], as_json: bool) -> None:
    rows = []
    for name in names:
        for group in app.dead_groups(name):
            rows.append({"queue": name, "count": group.count, "error_type": group.error_type,
                         "sample_message": group.sample_message,
                         "example_id": group.task_ids[0]})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no dead tasks")
        return
    table = [[r["queue"], r["count"], r["error_type"], _short(str(r["sample_message"])),
              r["example_id"]] for r in rows]
    for line in format_table(["queue", "count", "error", "sample message", "example id"],
                             table, right=[1]):
        click.echo(line)


@dead.command("show")
@click.argument("task_id")
@click.option("--queue", default=None, help="Queue of the task. Default: found by id.")
@click.option("--json", "as_json", is_flag=True, help="Print the full record as JSON.")
@redis_url_option
@app_option(required=False, extra_help=" Optional: only its key prefix is used.")
def dead_show(task_id: str, queue: str | None, as_json: bool, redis_url: str | None,
              app_spec: str | None) -> None:
    """Show a dead task: arguments, attempts and its last error with traceback."""
    app = open_app(redis_url, app_spec)
    rec = app.get(task_id, queue)
    if rec.state is not State.DEAD:
        raise CommandError(f"task {task_id} is {rec.state.value}, not dead: use `taskq explain "
                           f"{task_id}` for where it is")
    if as_json:
        click.echo(json.dumps(rec.to_dict(), indent=2, sort_keys=True))
        return
    error = rec.error or {}
    lines = [
        f"task      {rec.id}",
        f"name      {rec.name}",
        f"queue     {rec.queue} (priority {rec.priority})",
        f"attempts  {rec.attempts} of {rec.max_retries + 1}",
        f"enqueued  {utc_iso(rec.enqueued_ms)}",
        f"dead at   {utc_iso(rec.finished_ms)} (last worker {rec.worker or '-'})",
        f"args      {json.dumps(rec.args)}",
        f"kwargs    {json.dumps(rec.kwargs)}",
        f"error     {error.get('type')}: {error.get('message')}",
    ]
    for line in lines:
        click.echo(line)
    traceback = str(error.get("traceback") or "").rstrip()
    if traceback:
        click.echo("traceback:")
        click.echo(traceback)
    if error.get("truncated"):
        click.echo("(error text truncated to the engine's size limits)")


def _select(app: App, task_ids: tuple[str, ...], all_dead: bool, queue: str | None
            ) -> dict[str, list[str]]:
    """Map queue to the dead ids to act on; explicit ids that are not dead raise CommandError."""
    if bool(task_ids) == all_dead:
        raise CommandError("name dead task ids, or pass --all (not both)", EXIT_INVALID)
    selected: dict[str, list[str]] = {}
    if all_dead:
        for name in _queues(app, queue):
            ids = app.dead_ids(name, 0, max(int(app.client.zcard(app.keys.queue(name).dead)), 1))
            if ids:
                selected[name] = ids
        return selected
    problems = []
    for task_id in task_ids:
        try:
            rec = app.get(task_id, queue)
        except TaskNotFoundError as exc:
            problems.append(str(exc))
            continue
        if rec.state is not State.DEAD:
            problems.append(f"task {task_id} is {rec.state.value}, not dead")
            continue
        selected.setdefault(rec.queue, []).append(task_id)
    if problems:
        raise CommandError("; ".join(problems) + ": nothing was changed")
    return selected


def _in_pages(selected: dict[str, list[str]], label: str, action: Any) -> int:
    """Apply ``action(queue, ids)`` in pages of DEAD_PAGE ids under one progress bar."""
    done = 0
    total = sum(len(ids) for ids in selected.values())
    with progressbar(total, label) as bar:
        for queue, ids in selected.items():
            for start in range(0, len(ids), DEAD_PAGE):
                page = ids[start:start + DEAD_PAGE]
                done += action(queue, page)
                bar.update(len(page))
    return done


@dead.command("requeue")
@click.argument("task_ids", nargs=-1)
@click.option("--all", "all_dead", is_flag=True, help="Requeue every dead task (of --queue).")
@click.option("--queue", default=None, help=QUEUE_HELP)
@click.option("--delay", "delay_s", default=0.0, show_default=True,
              type=click.FloatRange(min=0), metavar="SECONDS",
              help="Make the tasks ready this many seconds from now instead of at once.")
@click.option("--to-queue", default=None,
              help="Move the tasks to this queue (same ids). Needs --app: each task is "
                   "enqueued again by its registered name.")
@redis_url_option
@app_option(required=False, extra_help=" Required with --to-queue.")
def dead_requeue(task_ids: tuple[str, ...], all_dead: bool, queue: str | None, delay_s: float,
                 to_queue: str | None, redis_url: str | None, app_spec: str | None) -> None:
    """Give dead tasks TASK_IDS (or --all) a new attempt; retry counts start over."""
    if to_queue and not app_spec:
        raise CommandError("--to-queue enqueues each task again by its registered name: pass "
                           "--app with the module that registers the tasks", EXIT_INVALID)
    app = open_app(redis_url, app_spec)
    selected = _select(app, task_ids, all_dead, queue)
    if not selected:
        click.echo("no dead tasks to requeue")
        return

    def requeue(name: str, ids: list[str]) -> int:
        try:
            return app.requeue_dead(name, ids, delay_s=delay_s, to_queue=to_queue)
        except UnknownTaskError as exc:
            raise CommandError(f"{exc}; tasks already moved stay moved", EXIT_INVALID) from None

    moved = _in_pages(selected, "requeueing dead tasks", requeue)
    where = f" to queue {to_queue!r}" if to_queue else ""
    when = f", ready in {delay_s:g} s" if delay_s else ""
    click.echo(f"requeued {moved} dead tasks from {', '.join(map(repr, selected))}{where}{when}")


@dead.command("purge")
@click.argument("task_ids", nargs=-1)
@click.option("--all", "all_dead", is_flag=True, help="Purge every dead task (of --queue).")
@click.option("--queue", default=None, help=QUEUE_HELP)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@redis_url_option
@app_option(required=False, extra_help=" Optional: only its key prefix is used.")
def dead_purge(task_ids: tuple[str, ...], all_dead: bool, queue: str | None, yes: bool,
               redis_url: str | None, app_spec: str | None) -> None:
    """Delete dead tasks TASK_IDS (or --all) with their records and arguments, for good."""
    app = open_app(redis_url, app_spec)
    selected = _select(app, task_ids, all_dead, queue)
    total = sum(len(ids) for ids in selected.values())
    if not total:
        click.echo("no dead tasks to purge")
        return
    if not yes:
        click.confirm(f"Delete {total} dead tasks of {', '.join(map(repr, selected))} for good?",
                      abort=True)
    purged = _in_pages(selected, "purging dead tasks", app.purge_dead)
    click.echo(f"purged {purged} dead tasks")
