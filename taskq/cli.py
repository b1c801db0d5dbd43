"""The ``taskq`` command line. Every command takes ``--redis-url`` (default: TASKQ_REDIS_URL,
else the embedded server, which only lives as long as the command)."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import click

from taskq.errors import TaskqError

log = logging.getLogger(__name__)

REDIS_URL_HELP = ("Redis URL (redis://, rediss:// or unix://). Default: $TASKQ_REDIS_URL, "
                  "else the embedded in-process server.")


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


@click.group()
@click.option("--log-level", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
              help="Logging level for the taskq loggers.")
def cli(log_level: str) -> None:
    """taskq: an at-least-once task queue on Redis that explains itself."""
    _setup_logging(log_level)


@cli.command()
@click.option("--app", "app_spec", required=True,
              help="Module that registers the tasks, as module or module:attr (attr defaults "
                   "to 'app'), like Celery's -A.")
@click.option("--redis-url", default=None, help=REDIS_URL_HELP)
@click.option("--queues", default="default", show_default=True,
              help="Comma-separated queues, in strict priority order unless --weights is set.")
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
def worker(app_spec: str, redis_url: str | None, queues: str, weights: str | None,
           concurrency: int, prefetch: int, pool: str, grace_s: float | None,
           worker_id: str | None) -> None:
    """Run a worker process until SIGTERM or SIGINT (a second signal exits at once)."""
    from taskq.runner import load_app
    from taskq.worker import Worker

    sys.path.insert(0, os.getcwd())
    app = load_app(app_spec)
    if redis_url:
        # Task bodies and child processes that open their own clients see the same URL.
        os.environ["TASKQ_REDIS_URL"] = redis_url
        app.configure(redis_url=redis_url)
    names = [q.strip() for q in queues.split(",") if q.strip()]
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


def main() -> None:
    try:
        cli(standalone_mode=True)
    except TaskqError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
