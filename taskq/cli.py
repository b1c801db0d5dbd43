"""The ``taskq`` command line. Every command takes ``--redis-url`` (default: TASKQ_REDIS_URL,
else the embedded server, which only lives as long as the command).

Commands that read or change many tasks show a ``click.progressbar``. ``stats`` and ``events``
live in ``cli_inspect.py``, the ``dead`` group in ``cli_dead.py``, shared helpers in
``cli_common.py``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from taskq.cli_common import (
    EXIT_FAILURE,
    EXIT_INVALID,
    CommandError,
    TaskqGroup,
    app_option,
    known_queue,
    load_app,
    open_app,
    redis_url_option,
    remember_url,
)
from taskq.cli_dead import dead
from taskq.cli_inspect import events, stats
from taskq.errors import TaskqError
from taskq.settings import DEFAULT_PRIORITY, MAX_PRIORITY, MIN_PRIORITY

log = logging.getLogger(__name__)


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _parse_weights(raw: str | None) -> dict[str, float] | None:
    if not raw:
        return None
    weights: dict[str, float] = {}
    for part in raw.split(","):
        name, sep, value = part.partition("=")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            raise click.BadParameter(
                f"{part!r} is invalid: use queue=weight pairs such as high=3,low=1") from None
        if not sep:
            raise click.BadParameter(f"{part!r} is invalid: use queue=weight")
    return weights


def _task_queues(app: Any) -> list[str]:
    """Return the default queues of the app's registered tasks, in registration order."""
    queues: list[str] = []
    for definition in app.registered().values():
        if definition.options.queue not in queues:
            queues.append(definition.options.queue)
    return queues or ["default"]


@click.group(cls=TaskqGroup)
@click.option("--log-level", default=None,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
              help="Logging level (logs go to stderr). Default: INFO for `worker`, ERROR for "
                   "`demo` (its summary reports retries and dead tasks), WARNING otherwise.")
@click.pass_context
def cli(ctx: click.Context, log_level: str | None) -> None:
    """taskq: an at-least-once task queue on Redis that explains itself."""
    ctx.obj = {"log_level": log_level}
    defaults = {"worker": "INFO", "demo": "ERROR"}
    _setup_logging(log_level or defaults.get(ctx.invoked_subcommand or "", "WARNING"))


@cli.command()
@app_option(required=True)
@redis_url_option
@click.option("--queues", default=None,
              help="Comma-separated queues, in strict priority order unless --weights is set. "
                   "Default: the queues of the app's registered tasks, in registration order.")
@click.option("--weights", default=None,
              help="Serve queues by weight instead of strictly in order, e.g. high=3,low=1.")
@click.option("--concurrency", default=1, show_default=True, type=click.IntRange(1, 1024),
              help="Number of slots: tasks run at the same time by this process.")
@click.option("--prefetch", default=0, show_default=True, type=click.IntRange(0, 1000),
              help="Extra tasks each slot claims per call (batched claims: fewer round trips, "
                   "longer-held leases).")
@click.option("--pool", default="thread", show_default=True,
              type=click.Choice(["thread", "process"]),
              help="Run task bodies in slot threads, or in one child process per slot "
                   "(CPU-bound tasks, hard timeouts).")
@click.option("--grace", "grace_s", default=None, type=click.FloatRange(0),
              help="Seconds running tasks may finish after SIGTERM before their leases are "
                   "released. Default: the app's shutdown_grace_s (30 s).")
@click.option("--worker-id", default=None, help="Worker id. Default: host:pid:random.")
def worker(app_spec: str, redis_url: str | None, queues: str | None, weights: str | None,
           concurrency: int, prefetch: int, pool: str, grace_s: float | None,
           worker_id: str | None) -> None:
    """Run a worker process until SIGTERM or SIGINT (a second signal exits at once)."""
    from taskq.worker import Worker

    if grace_s is not None and not math.isfinite(grace_s):
        raise click.BadParameter(f"{grace_s} is not a number of seconds", param_hint="--grace")

    app = load_app(app_spec)
    remember_url(redis_url)
    if redis_url:
        # Task bodies and child processes that open their own clients see the same URL.
        os.environ["TASKQ_REDIS_URL"] = redis_url
        app.configure(redis_url=redis_url)
    names = ([q.strip() for q in queues.split(",") if q.strip()] if queues
             else _task_queues(app))
    pause_s = float(os.environ.get("TASKQ_TEST_PAUSE_AFTER_CLAIM_S", "0") or 0)
    hook: Any = None
    if pause_s > 0:
        # Test hook: hold the slot right after the claim returns, to kill the process there.
        import time

        def hook(_claimed: Any) -> None:
            log.warning("test hook: pausing %.1f s after claim", pause_s)
            time.sleep(pause_s)

    Worker(app, names, concurrency, weights=_parse_weights(weights), prefetch=prefetch,
           pool=pool, app_spec=app_spec, worker_id=worker_id, shutdown_grace_s=grace_s,
           after_claim=hook).run()


def _json_option(raw: str, option: str, kind: type, example: str) -> Any:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CommandError(f"{option} {raw!r} is not valid JSON ({exc.msg} at character "
                           f"{exc.pos}): pass e.g. {example}", EXIT_INVALID) from None
    except (ValueError, RecursionError) as exc:  # an integer past 4300 digits, deep nesting
        raise CommandError(f"{option} {raw[:80]!r}... cannot be read as JSON ({exc}): pass e.g. "
                           f"{example}", EXIT_INVALID) from None
    if not isinstance(value, kind):
        wanted = "array" if kind is list else "object"
        raise CommandError(f"{option} {raw!r} is not a JSON {wanted}: pass e.g. {example}",
                           EXIT_INVALID)
    return value


def _parse_eta(raw: str) -> datetime:
    try:
        return datetime.fromisoformat(raw)
    except ValueError:
        raise CommandError(f"--eta {raw!r} is not an ISO 8601 time: pass e.g. "
                           "2030-01-31T12:00:00+00:00", EXIT_INVALID) from None


@cli.command()
@click.argument("name")
@app_option(required=True, extra_help=" Only tasks registered there can be enqueued.")
@redis_url_option
@click.option("--args", "args_json", default="[]", show_default=True, metavar="JSON",
              help="Positional arguments as a JSON array, e.g. '[2, 3]'.")
@click.option("--kwargs", "kwargs_json", default="{}", show_default=True, metavar="JSON",
              help="Keyword arguments as a JSON object, e.g. '{\"x\": 2}'.")
@click.option("--queue", default=None, help="Queue to put the task in. Default: the task's.")
@click.option("--priority", type=int, default=None,
              help=f"{MIN_PRIORITY} (lowest) to {MAX_PRIORITY} (highest). Default: the task's "
                   f"({DEFAULT_PRIORITY} unless it sets one).")
@click.option("--delay", "delay_s", type=float, default=None, metavar="SECONDS",
              help="Run no earlier than this many seconds from now (Redis server clock).")
@click.option("--eta", default=None, metavar="DATETIME",
              help="Run no earlier than this ISO 8601 time, e.g. 2030-01-31T12:00:00+00:00; "
                   "a time without offset is local time. Excludes --delay.")
@click.option("--id", "task_id", default=None,
              help="Task id. Enqueueing an id that exists in the queue writes nothing. "
                   "Default: a random UUID.")
def enqueue(name: str, app_spec: str, redis_url: str | None, args_json: str, kwargs_json: str,
            queue: str | None, priority: int | None, delay_s: float | None, eta: str | None,
            task_id: str | None) -> None:
    """Enqueue one task NAME registered by --app; prints its id."""
    args = _json_option(args_json, "--args", list, "'[2, 3]'")
    kwargs = _json_option(kwargs_json, "--kwargs", dict, "'{\"x\": 2}'")
    if eta is not None and delay_s is not None:
        raise CommandError("--delay and --eta both set: pass only one", EXIT_INVALID)
    when = _parse_eta(eta) if eta is not None else None
    app = open_app(redis_url, app_spec)
    handle = app.enqueue(name, args, kwargs, queue=queue, priority=priority, delay_s=delay_s,
                         eta=when, task_id=task_id)
    if handle.created:
        click.echo(f"enqueued {handle.id} to queue {handle.queue!r}")
    else:
        click.echo(f"task {handle.id} already exists in queue {handle.queue!r}: nothing written")


@cli.command()
@click.argument("queue")
@redis_url_option
@app_option(required=False, extra_help=" Optional: only its key prefix is used.")
@click.option("--force", is_flag=True,
              help="Pause a queue that has never had a task (by default that is taken as a "
                   "typo).")
def pause(queue: str, redis_url: str | None, app_spec: str | None, force: bool) -> None:
    """Stop workers claiming from QUEUE; enqueue keeps working."""
    app = open_app(redis_url, app_spec)
    if not force:
        known_queue(app, queue)
    changed = app.pause(queue)
    click.echo(f"queue {queue!r} paused" if changed else f"queue {queue!r} was already paused")


@cli.command()
@click.argument("queue")
@redis_url_option
@app_option(required=False, extra_help=" Optional: only its key prefix is used.")
def resume(queue: str, redis_url: str | None, app_spec: str | None) -> None:
    """Let workers claim from QUEUE again."""
    app = open_app(redis_url, app_spec)
    known_queue(app, queue)
    changed = app.resume(queue)
    click.echo(f"queue {queue!r} resumed" if changed else f"queue {queue!r} was not paused")


@cli.command()
@click.argument("task_id")
@click.option("--queue", default=None, help="Queue of the task. Default: found by id.")
@redis_url_option
@app_option(required=False, extra_help=" Optional: only its key prefix is used.")
def cancel(task_id: str, queue: str | None, redis_url: str | None,
           app_spec: str | None) -> None:
    """Cancel TASK_ID: a waiting task is removed, a running one is asked to stop.

    Exits 1 when the task had already finished.
    """
    app = open_app(redis_url, app_spec)
    # cancel() returns the final state of a finished task, and for a task cancelled earlier
    # that is 'cancelled' too, so read the state first to tell the two apart.
    state = app.get(task_id, queue).state
    if state.terminal:
        raise CommandError(f"task {task_id} already finished as {state.value}: nothing to cancel")
    outcome = app.cancel(task_id, queue)
    if outcome == "cancelled":
        click.echo(f"task {task_id} cancelled before it ran")
    elif outcome == "requested":
        click.echo(f"task {task_id} is running: cancellation requested; its body sees "
                   "current_task().cancelled() turn true at the worker's next heartbeat")
    else:
        raise CommandError(f"task {task_id} already finished as {outcome}: nothing to cancel")


@cli.command()
@click.argument("task_id")
@click.option("--queue", default=None, help="Queue of the task. Default: found by id.")
@click.option("--json", "as_json", is_flag=True, help="Print the answer and facts as JSON.")
@redis_url_option
@app_option(required=False, extra_help=" Optional: only its key prefix is used.")
def explain(task_id: str, queue: str | None, as_json: bool, redis_url: str | None,
            app_spec: str | None) -> None:
    """Explain where TASK_ID is and what it waits for."""
    from taskq.explain import explain as explain_task

    app = open_app(redis_url, app_spec)
    answer = explain_task(app, task_id, queue)
    if as_json:
        click.echo(json.dumps({"task_id": answer.task_id, "state": answer.state,
                               "answer": answer.answer, "facts": answer.facts}, indent=2))
        return
    click.echo(answer.answer)
    for key, value in answer.facts.items():
        click.echo(f"  {key}: {value}")
    if answer.state == "missing":
        sys.exit(EXIT_FAILURE)


@cli.command()
@redis_url_option
@click.option("--workers", default=4, show_default=True, type=click.IntRange(0, 256),
              help="In-process worker slots (threads). 0 relies on `taskq worker --app "
                   "taskq.demo_tasks` processes started elsewhere (needs --redis-url).")
@click.option("--limit", default=None, type=click.IntRange(1), metavar="N",
              help="Analyze only the first N source files in sorted path order. Default: all.")
@click.option("--queue", default="demo", show_default=True,
              help="Queue the demo owns. Each run deletes its keys first, and rejects a queue "
                   "that contains tasks the demo did not create. Workers elsewhere need --queues "
                   "with a non-default name.")
@click.option("--timeout", "timeout_s", default=600.0, show_default=True,
              type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Give up and exit 1 when the workload has not finished after this long.")
@click.option("--source-dir", default=None, type=click.Path(path_type=Path), metavar="DIR",
              help="Folder whose *.py files to analyze. Default: the running Python's "
                   "standard library (sysconfig 'stdlib' path), without site-packages.")
@click.option("--plain", is_flag=True,
              help="Print a status line every 2 s instead of a progress bar (automatic when "
                   "stdout is not a terminal).")
def demo(redis_url: str | None, workers: int, limit: int | None, queue: str,
         timeout_s: float, source_dir: Path | None, plain: bool) -> None:
    """Analyze every standard-library source file on the queue, then print a summary.

    One task per *.py file computes its SHA-256, line and word counts and zlib ratio. Four
    made bad inputs (missing path, directory, invalid UTF-8, unknown encoding) retry twice
    and end dead, and so do the standard library's own files with an invalid encoding
    declaration. Exits 0 when every other file task succeeded and exactly those inputs are dead.
    Every count is read from Redis, so workers elsewhere are counted exactly.
    """
    from taskq.demo import DemoOptions, run_demo

    remember_url(redis_url)
    summary = run_demo(DemoOptions(redis_url=redis_url, workers=workers, limit=limit,
                                   queue=queue, timeout_s=timeout_s, source_dir=source_dir,
                                   plain_progress=plain))
    for line in summary.lines():
        click.echo(line)
    sys.exit(summary.exit_code)


cli.add_command(stats)
cli.add_command(events)
cli.add_command(dead)


@cli.command("api")
@app_option(required=False, extra_help=" Only its tasks can be enqueued over HTTP. Default: "
                                       "none, so every enqueue is rejected.")
@redis_url_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind. Any address but loopback needs a token.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535),
              help="TCP port to listen on.")
@click.option("--token", default=None, envvar="TASKQ_API_TOKEN", show_envvar=True,
              help="Bearer token every request but /health must send. Prefer the environment "
                   "variable: a command-line argument is visible to other local users.")
def api_command(app_spec: str | None, redis_url: str | None, host: str, port: int,
                token: str | None) -> None:
    """Serve the HTTP API and its event stream with uvicorn until SIGINT or SIGTERM."""
    try:
        from taskq.api import serve
    except ImportError as exc:
        raise CommandError(f"`taskq api` needs FastAPI and uvicorn ({exc}): pip install "
                           "'taskq-lab[api]'", EXIT_INVALID) from None
    serve(open_app(redis_url, app_spec), host, port, token)


@cli.command("dashboard")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind. Any address but loopback needs a token.")
@click.option("--port", default=8866, show_default=True, type=click.IntRange(1, 65535),
              help="TCP port to listen on.")
@click.option("--redis-url", default=None,
              help="Redis to watch. Default: $TASKQ_REDIS_URL, else the embedded backend with "
                   "a built-in demo (in-process workers and a load generator).")
@click.option("--token", default=None,
              help="Token the page requires. Default: none on loopback, a random one elsewhere.")
@click.option("--demo/--no-demo", default=None,
              help="Run the demo workers and load generator. Default: only on the embedded "
                   "backend.")
def dashboard_command(host: str, port: int, redis_url: str | None, token: str | None,
                      demo: bool | None) -> None:
    """Serve the live dashboard with Voilà and print its URL."""
    from taskq.dashboard_server import serve as serve_dashboard

    sys.exit(serve_dashboard(host=host, port=port, redis_url=redis_url, token=token, demo=demo))


def main() -> None:
    try:
        cli(standalone_mode=True)
    except TaskqError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
