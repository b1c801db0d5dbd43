"""Options, error handling and output helpers shared by the ``taskq`` commands."""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

import click
import redis

from taskq.app import App
from taskq.connection import ENV_VAR, mask_url, resolve_url
from taskq.errors import ConfigurationError, InvalidTaskError, TaskqError

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

REDIS_URL_HELP = ("Redis URL (redis://, rediss:// or unix://). Default: $TASKQ_REDIS_URL, "
                  "else the embedded in-process server, which starts empty and lives only as "
                  "long as the command.")
APP_HELP = ("Module that registers the tasks, as module or module:attr (attr defaults to "
            "'app'), like Celery's -A. The current directory is importable.")

# Exit codes: 1 for a runtime failure (Redis unreachable, task not found, demo failed), 2 for
# input rejected before anything ran (click uses 2 for usage errors too).
EXIT_FAILURE = 1
EXIT_INVALID = 2

# The URL the running command connects to, kept so error messages can mask its password.
_active_url: str | None = None


class CommandError(click.ClickException):
    """A user-facing failure: printed as ``Error: <message>`` without a traceback."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        # click types exit_code as a class variable but reads it from the instance.
        self.exit_code = exit_code  # type: ignore[misc]


def scrub(text: str) -> str:
    """Replace the active URL's password, and the whole URL, by their masked forms in ``text``."""
    url = _active_url or resolve_url(None)
    if not url:
        return text
    masked = mask_url(url)
    text = text.replace(url, masked)
    try:
        parts = urlsplit(url)
        # mask_url hides a lone username too, because Redis URLs often carry the password there.
        secret = parts.password if parts.password is not None else parts.username
    except ValueError:
        secret = None
    if secret and secret != masked:
        text = text.replace(secret, "***")
    return text


class TaskqGroup(click.Group):
    """A click group that turns engine and Redis errors into one-line messages."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (InvalidTaskError, ConfigurationError) as exc:
            raise CommandError(scrub(str(exc)), EXIT_INVALID) from None
        except TaskqError as exc:
            raise CommandError(scrub(str(exc))) from None
        except redis.RedisError as exc:
            where = mask_url(_active_url) if _active_url else "the Redis server"
            detail = scrub(str(exc)).rstrip(".")
            raise CommandError(
                f"Redis at {where} failed: {type(exc).__name__}: {detail}. Check that the "
                f"server runs and that --redis-url (or ${ENV_VAR}) is right") from None


def redis_url_option(func: F) -> F:
    return click.option("--redis-url", default=None, metavar="URL", help=REDIS_URL_HELP)(func)


def app_option(required: bool, extra_help: str = "") -> Callable[[F], F]:
    def decorate(func: F) -> F:
        return click.option("--app", "app_spec", required=required, default=None,
                            metavar="MODULE[:ATTR]", help=APP_HELP + extra_help)(func)
    return decorate


def load_app(spec: str) -> App:
    """Import the app named by ``--app``; raises CommandError naming the spec and the fix."""
    from taskq import runner

    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module_name = spec.partition(":")[0]
    try:
        importlib.import_module(module_name)
    except ImportError as exc:
        raise CommandError(
            f"--app {spec!r}: cannot import module {module_name!r} ({exc}): check the "
            "module path, and run from the folder that contains it", EXIT_INVALID) from None
    return runner.load_app(spec)


def copy_app(source: App, redis_url: str | None) -> App:
    """Return a new App on ``redis_url`` with the settings and tasks of ``source``.

    The module's own App is left unconnected and unchanged, so code in the same process that
    imports it (tests, notebooks) keeps its own URL.
    """
    app = App(redis_url, settings=source.settings, clock=source.clock)
    for definition in source.registered().values():
        options = definition.options
        app.task(name=definition.name, queue=options.queue, priority=options.priority,
                 max_retries=options.max_retries, backoff_min_s=options.backoff.min_s,
                 backoff_max_s=options.backoff.max_s, backoff_factor=options.backoff.factor,
                 backoff_jitter=options.backoff.jitter, timeout_s=options.timeout_s,
                 result_ttl_s=options.result_ttl_s)(definition.func)
    return app


def remember_url(redis_url: str | None) -> None:
    """Record the URL the command uses, so error messages can mask its password."""
    global _active_url
    _active_url = resolve_url(redis_url)


def open_app(redis_url: str | None, app_spec: str | None = None, quiet: bool = False) -> App:
    """Return the App a command works on: a copy of the ``--app`` one, else a bare App.

    A bare App has no tasks registered, which is enough for every command that reads or
    changes existing tasks. Unless ``quiet``, warns on stderr when the embedded server is used,
    because it is empty in a new process.
    """
    app = copy_app(load_app(app_spec), redis_url) if app_spec else App(redis_url)
    remember_url(redis_url)
    if _active_url is None and not quiet:
        click.echo(f"note: no --redis-url and no ${ENV_VAR}: using the embedded server, which "
                   "is empty in a new process", err=True)
    return app


def progressbar(length: int, label: str) -> Any:
    """Return a click progress bar on stderr, so stdout keeps only the command's result."""
    return click.progressbar(length=length, label=label, show_pos=True,
                             file=sys.stderr)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]],
                 right: Sequence[int] = ()) -> list[str]:
    """Format rows as aligned columns; column indexes in ``right`` are right-aligned."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        parts = [cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
                 for i, cell in enumerate(row)]
        return "  ".join(parts).rstrip()

    return [line(cells[0]), line(["-" * w for w in widths])] + [line(r) for r in cells[1:]]


def resolve_queue(app: App, queue: str | None, task_id: str) -> str:
    """Return ``queue``, or find the one queue that contains ``task_id``."""
    return queue or app.find_queue(task_id)


def known_queue(app: App, queue: str) -> str:
    """Return ``queue`` when some task was ever enqueued to it, else raise naming the known ones."""
    known = app.queues()
    if queue not in known:
        listed = ", ".join(known) or "none yet"
        raise CommandError(f"queue {queue!r} not found (known queues: {listed}): check the name",
                           EXIT_INVALID)
    return queue
