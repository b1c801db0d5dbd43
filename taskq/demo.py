"""``taskq demo``: analyze every Python file of the standard library on the task queue.

Workload: one task per ``*.py`` file under the running Python's standard library folder
(``sysconfig.get_paths()["stdlib"]``, searched recursively, without ``site-packages``), each
computing the file's SHA-256, line and word counts and zlib ratio (``taskq.demo_tasks``). Four
bad inputs made in a temporary folder fail, retry and end dead:

- ``missing.py``, a path that does not exist (FileNotFoundError);
- ``directory.py``, a directory (IsADirectoryError);
- ``latin1.py``, Latin-1 bytes without an encoding declaration, so invalid UTF-8
  (UnicodeDecodeError);
- ``bad_declaration.py``, which declares an encoding that does not exist (SyntaxError).

CPython's test suite also ships a few files whose encoding declaration is invalid on purpose
(3.11 has three in ``test/tokenizedata``, such as ``bad_coding.py``). Before it enqueues, the demo
reads each file's declaration lines with ``tokenize.detect_encoding`` and expects those files
dead as well. The known bad set is these files plus the four made ones.

Priorities follow file size (see ``priority_for_size``) and every 20th file is delayed by 0.5 to
1.5 s (see ``delay_for_index``).

Rerun safety: the demo owns one queue (``demo`` unless ``--queue``) and deletes every key of it
at the start of each run, so the counters it reports belong to that run alone. It rejects a
queue that contains tasks no demo run created, and a queue whose owning run is still alive.

Every count in the summary is read from Redis (queue counters and task records), never from
in-process counters, so work done by ``taskq worker`` processes elsewhere is counted exactly.
"""

from __future__ import annotations

import logging
import os
import sys
import sysconfig
import tempfile
import time
import tokenize
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click
import redis

from taskq import demo_tasks
from taskq.app import App
from taskq.demo_report import DemoSummary, verify_run
from taskq.errors import ConfigurationError
from taskq.keys import QueueKeys
from taskq.snapshot import Snapshot, take_snapshot
from taskq.task import Call
from taskq.worker import Worker

log = logging.getLogger(__name__)

# Fields of the queue's config hash that mark it as the demo's: the id of the run that owns it,
# and the Redis server time (ms) at which that run last showed it was alive.
OWNER_FIELD = "demo_run"
ALIVE_FIELD = "demo_alive_ms"
# A run refreshes ALIVE_FIELD every poll; one silent for this long is taken as gone.
ALIVE_TIMEOUT_S = 5.0
POLL_S = 0.2
# With no live worker serving the queue for this long, the demo prints how to start one.
STALL_HINT_S = 10.0
# Without a TTY the progress bar cannot redraw, so a status line is printed this often instead.
PLAIN_STATUS_EVERY_S = 2.0

Echo = Callable[[str], None]


@dataclass(frozen=True)
class WorkItem:
    """One task of the demo and the outcome the demo expects for it."""

    task_id: str
    path: str
    label: str
    expect_dead: bool
    reason: str
    expect_error: str
    priority: int
    delay_s: float | None


@dataclass
class DemoOptions:
    """Options of one ``taskq demo`` run; the command's help describes each."""

    redis_url: str | None = None
    workers: int = 4
    limit: int | None = None
    queue: str = demo_tasks.QUEUE
    timeout_s: float = 600.0
    source_dir: Path | None = None
    plain_progress: bool = False


def stdlib_dir() -> Path:
    """Return the standard library source folder of the running Python."""
    return Path(sysconfig.get_paths()["stdlib"])


def list_source_files(root: Path, limit: int | None = None) -> list[Path]:
    """Return the ``*.py`` files under ``root`` in sorted order, skipping installed packages."""
    skip = {"site-packages", "dist-packages", "__pycache__"}
    files: list[Path] = []
    for folder, subfolders, names in os.walk(root):
        # Prune in place so os.walk never descends into installed third-party packages.
        subfolders[:] = [name for name in subfolders if name not in skip]
        files.extend(Path(folder, name) for name in names if name.endswith(".py"))
    regular = sorted(path for path in files if path.is_file())
    return regular if limit is None else regular[:limit]


def priority_for_size(size_bytes: int) -> int:
    """Return a priority from file size: small files (< 4 KiB) 7, up to 32 KiB 5, larger 3."""
    if size_bytes < 4 * 1024:
        return 7
    if size_bytes < 32 * 1024:
        return 5
    return 3


def delay_for_index(index: int) -> float | None:
    """Return the delay in seconds of file number ``index``: every 20th is delayed 0.5-1.5 s."""
    if index % 20 != 10:
        return None
    return 0.5 + 0.5 * ((index // 20) % 3)


def invalid_declaration(path: Path) -> str | None:
    """Return why the file's encoding declaration or BOM is invalid, or None when it is valid.

    Reads at most the first two lines, as Python does to find the declaration (PEP 263).
    """
    try:
        with path.open("rb") as handle:
            tokenize.detect_encoding(handle.readline)
    except SyntaxError as exc:
        return f"invalid encoding declaration ({exc.msg})"
    except OSError:
        # Not a known bad input: the task fails on it too, and the summary names the file.
        return None
    return None


def make_bad_inputs(folder: Path) -> list[tuple[Path, str, str]]:
    """Create the made bad inputs in ``folder``; returns (path, reason, expected error type)."""
    directory = folder / "directory.py"
    directory.mkdir()
    latin1 = folder / "latin1.py"
    # The invalid byte sits after the first two lines, which are all that tokenize reads to find
    # an encoding declaration, so only decoding the whole file fails.
    latin1.write_bytes(b"# No encoding declaration: this file must be UTF-8.\n\n"
                       b"city = 'S\xe3o Paulo'  # Latin-1 byte 0xe3 is invalid UTF-8\n")
    declaration = folder / "bad_declaration.py"
    declaration.write_bytes(b"# -*- coding: no-such-codec -*-\nx = 1\n")
    return [
        (folder / "missing.py", "path does not exist", "FileNotFoundError"),
        (directory, "path is a directory", "IsADirectoryError"),
        (latin1, "bytes are not valid UTF-8", "UnicodeDecodeError"),
        (declaration, "declares an encoding that does not exist", "SyntaxError"),
    ]


def plan_workload(run_id: str, root: Path, files: list[Path],
                  bad_inputs: list[tuple[Path, str, str]]) -> list[WorkItem]:
    """Build the task list: the source files in order, then the made bad inputs."""
    items = []
    for index, path in enumerate(files):
        reason = invalid_declaration(path)
        items.append(WorkItem(
            task_id=f"{run_id}-{index:05d}", path=str(path),
            label=str(path.relative_to(root)), expect_dead=reason is not None,
            reason=reason or "", expect_error="SyntaxError" if reason else "",
            priority=priority_for_size(path.stat().st_size), delay_s=delay_for_index(index)))
    for offset, (path, reason, error) in enumerate(bad_inputs):
        items.append(WorkItem(
            task_id=f"{run_id}-bad{offset}", path=str(path), label=f"made: {path.name}",
            expect_dead=True, reason=reason, expect_error=error, priority=5, delay_s=None))
    return items


def queue_keys(keys: QueueKeys) -> list[str]:
    """Return every Redis key of one queue: each property of QueueKeys plus the ready lists."""
    names = [name for name, attr in vars(QueueKeys).items() if isinstance(attr, property)]
    return [getattr(keys, name) for name in names] + keys.ready_all()


def _server_ms(app: App) -> int:
    seconds, micros = app.client.time()
    return int(seconds) * 1000 + int(micros) // 1000


def take_queue(app: App, queue: str, run_id: str) -> None:
    """Delete every key of ``queue`` and mark this run as its owner, in one transaction.

    Raises ConfigurationError when the queue contains data that no demo run wrote, or when its
    owning run refreshed its alive mark less than ALIVE_TIMEOUT_S ago. WATCH on the config hash
    makes two runs that start together fail one of them instead of both deleting.
    """
    keys = app.keys.queue(queue)
    all_keys = queue_keys(keys)
    with app.client.pipeline(transaction=True) as pipe:
        try:
            pipe.watch(keys.config)
            config = {k.decode(): v.decode() for k, v in pipe.hgetall(keys.config).items()}
            owner = config.get(OWNER_FIELD)
            if owner is None and pipe.exists(*all_keys):
                raise ConfigurationError(
                    f"queue {queue!r} contains tasks that taskq demo did not create, and the demo "
                    "deletes its queue before each run: pass another name with --queue")
            alive_ms = int(config.get(ALIVE_FIELD, "0") or 0)
            age_s = (_server_ms(app) - alive_ms) / 1000
            if owner is not None and age_s < ALIVE_TIMEOUT_S:
                raise ConfigurationError(
                    f"demo run {owner} is still running on queue {queue!r} (alive {age_s:.1f} s "
                    "ago): wait for it to finish, or pass another name with --queue")
            pipe.multi()
            pipe.delete(*all_keys)
            pipe.hset(keys.config, mapping={OWNER_FIELD: run_id,
                                            ALIVE_FIELD: str(_server_ms(app))})
            pipe.execute()
        except redis.WatchError:
            raise ConfigurationError(
                f"another demo run took queue {queue!r} at the same moment: wait for it to "
                "finish, or pass another name with --queue") from None
    app._register_queue(queue)
    log.info("demo queue reset queue=%s run=%s keys=%d", queue, run_id, len(all_keys))


def _mark_alive(app: App, queue: str, alive: bool) -> None:
    config = app.keys.queue(queue).config
    if alive:
        app.client.hset(config, ALIVE_FIELD, str(_server_ms(app)))
    else:
        app.client.hdel(config, ALIVE_FIELD)


class LiveProgress:
    """A click progress bar of finished tasks with live counts; plain lines without a TTY."""

    def __init__(self, total: int, echo: Echo, force_plain: bool = False) -> None:
        self.total = total
        self.echo = echo
        self.finished = 0
        self.status = ""
        self._last_plain = 0.0
        self._bar = None
        if sys.stdout.isatty() and not force_plain:
            self._bar = click.progressbar(length=total, label="tasks", show_pos=True,
                                          show_eta=False, item_show_func=lambda s: s)
            self._bar.__enter__()

    def update(self, snap: Snapshot, queue: str) -> int:
        view = snap.queues[queue]
        succeeded = view.counters.get("succeeded", 0)
        finished = succeeded + view.dead
        self.status = (f"{succeeded} succeeded, {view.dead} dead, "
                       f"{view.counters.get('retried', 0)} retried | {view.ready} ready, "
                       f"{view.scheduled} scheduled, {view.active} active")
        if self._bar is not None:
            self._bar.update(max(finished - self.finished, 0), self.status)
        elif time.monotonic() - self._last_plain >= PLAIN_STATUS_EVERY_S or \
                finished >= self.total:
            self._last_plain = time.monotonic()
            self.echo(f"  {finished}/{self.total} finished: {self.status}")
        self.finished = max(finished, self.finished)
        return finished

    def close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None


def _is_done(snap: Snapshot, queue: str, total: int) -> bool:
    view = snap.queues[queue]
    finished = view.counters.get("succeeded", 0) + view.dead
    return finished >= total and view.ready == 0 and view.scheduled == 0 and view.active == 0


def _live_workers(snap: Snapshot, queue: str) -> int:
    return sum(1 for w in snap.workers if w.state != "offline" and queue in w.queues)


def _wait_for_workload(app: App, options: DemoOptions, total: int, echo: Echo) -> str:
    """Poll the queue until every task finished; returns "done", "timeout" or "interrupted"."""
    progress = LiveProgress(total, echo, force_plain=options.plain_progress)
    started = time.monotonic()
    last_worker_seen = started
    hinted = False
    try:
        while True:
            snap = take_snapshot(app, [options.queue])
            progress.update(snap, options.queue)
            _mark_alive(app, options.queue, True)
            if _is_done(snap, options.queue, total):
                return "done"
            now = time.monotonic()
            if _live_workers(snap, options.queue):
                last_worker_seen = now
            elif not hinted and now - last_worker_seen > STALL_HINT_S:
                hinted = True
                echo(f"\nno live worker serves queue {options.queue!r}: start one with "
                     f"`taskq worker --app taskq.demo_tasks --queues {options.queue} "
                     f"--redis-url {app.backend.display_url}`")
            if now - started > options.timeout_s:
                return "timeout"
            time.sleep(POLL_S)
    except KeyboardInterrupt:
        return "interrupted"
    finally:
        progress.close()


def _check_options(options: DemoOptions, app: App) -> None:
    if options.workers < 0:
        raise ConfigurationError(f"--workers {options.workers} is invalid: use 0 or more")
    if options.workers == 0 and app.backend.kind == "embedded":
        raise ConfigurationError(
            "--workers 0 relies on external workers, but the embedded server lives inside this "
            "process where no other process can reach it: use --workers 1 or more, or pass "
            "--redis-url")


def run_demo(options: DemoOptions, echo: Echo = click.echo) -> DemoSummary:
    """Run the whole demo: reset the queue, enqueue, process, wait, then verify from Redis."""
    app = demo_tasks.create_app(options.redis_url)
    _check_options(options, app)
    root = options.source_dir or stdlib_dir()
    if not root.is_dir():
        raise ConfigurationError(f"source folder {str(root)!r} is not a directory: pass an "
                                 "existing folder with --source-dir")
    run_id = f"demo{uuid.uuid4().hex[:8]}"
    take_queue(app, options.queue, run_id)

    with tempfile.TemporaryDirectory(prefix="taskq-demo-") as temp:
        files = list_source_files(root, options.limit)
        items = plan_workload(run_id, root, files, make_bad_inputs(Path(temp)))
        fixtures = sum(1 for item in items if item.expect_dead and
                       not item.label.startswith("made: "))
        echo(f"taskq demo run {run_id}: {len(items)} tasks on queue {options.queue!r} at "
             f"{app.backend}")
        echo(f"  {len(files)} source files from {root} ({fixtures} with an invalid encoding "
             f"declaration, expected dead), {len(items) - len(files)} made bad inputs in {temp}")
        slots = (f"{options.workers} in-process worker slots" if options.workers else
                 "no in-process worker: external `taskq worker` processes do the work")
        echo(f"  {slots}; progress counts come from Redis")

        worker = None
        if options.workers:
            worker = Worker(app, [options.queue], options.workers)
            worker.start()
        try:
            started = time.monotonic()
            app.enqueue_many([
                Call(demo_tasks.TASK_NAME, [item.path], {}, options.queue, item.priority,
                     item.delay_s, None, item.task_id) for item in items])
            log.info("demo enqueued run=%s tasks=%d queue=%s", run_id, len(items),
                     options.queue)
            ending = _wait_for_workload(app, options, len(items), echo)
            elapsed_s = time.monotonic() - started
        finally:
            if worker is not None:
                worker.stop(grace_s=5.0)
            _mark_alive(app, options.queue, False)
        summary = verify_run(app, options.queue, items, ending, elapsed_s,
                             worker.id if worker else None, options.timeout_s)
    summary.backend = str(app.backend)
    summary.run_id = run_id
    log.info("demo finished run=%s ok=%s pid=%d", run_id, summary.ok, os.getpid())
    return summary
