"""Run task bodies: in the slot's own thread, or in a child process owned by the slot.

Thread runner: the body runs in the slot thread; a timeout raises TaskTimeoutError inside the
body through ``PyThreadState_SetAsyncExc``. That interrupts Python code only: a body blocked in
C (a long ``time.sleep``, a C extension holding the GIL) sees the exception when it returns.
Use the process runner for hard limits.

Process runner: each slot owns one child process, started with the ``spawn`` method, that
imports the app from its ``module:attr`` spec. A timeout kills the child and starts a new one.
The parent keeps heartbeating, so a CPU-bound body never starves lease renewal.
"""

from __future__ import annotations

import contextlib
import ctypes
import heapq
import importlib
import itertools
import json
import logging
import multiprocessing
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from taskq.errors import ConfigurationError, TaskTimeoutError
from taskq.task import TaskContext, _current, describe_exception

if TYPE_CHECKING:
    from taskq.app import App

log = logging.getLogger(__name__)

# How long a process-runner child may take to start and import the app, in seconds.
CHILD_START_TIMEOUT_S = 60.0


@dataclass
class Outcome:
    """How one attempt ended: ``ok`` with a result, or an error description."""

    ok: bool
    result: Any = None
    error: dict[str, Any] | None = None
    exception: BaseException | None = None


def load_app(spec: str) -> App:
    """Import ``module:attr`` (attr defaults to ``app``) and return the App it names."""
    from taskq.app import App

    module_name, _, attr = spec.partition(":")
    module = importlib.import_module(module_name)
    app = getattr(module, attr or "app", None)
    if not isinstance(app, App):
        raise ConfigurationError(
            f"--app {spec!r} does not name a taskq.App: define `app = taskq.App()` in "
            f"{module_name} or pass module:attribute")
    return app


class Watchdog:
    """Raises TaskTimeoutError in slot threads whose task outlives its deadline."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, int]] = []
        self._live: dict[int, int] = {}
        self._counter = itertools.count()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="taskq-watchdog", daemon=True)
        self._thread.start()

    def arm(self, thread_id: int, timeout_s: float) -> int:
        token = next(self._counter)
        with self._cond:
            self._live[token] = thread_id
            heapq.heappush(self._heap, (time.monotonic() + timeout_s, token, thread_id))
            self._cond.notify()
        return token

    def disarm(self, token: int) -> None:
        with self._cond:
            self._live.pop(token, None)

    def close(self) -> None:
        """End the watchdog thread; deadlines still armed no longer fire."""
        with self._cond:
            self._closed = True
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                deadline, token, thread_id = self._heap[0]
                delay = deadline - time.monotonic()
                if delay > 0:
                    # A timeout_s near the float maximum would overflow the wait and end this
                    # thread, so that no later deadline fired: wait at most TIMEOUT_MAX at once.
                    self._cond.wait(min(delay, threading.TIMEOUT_MAX))
                    continue
                heapq.heappop(self._heap)
                if self._live.pop(token, None) is None:
                    continue
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(thread_id), ctypes.py_object(TaskTimeoutError))


class ThreadRunner:
    """Runs bodies in the calling (slot) thread."""

    def __init__(self, app: App, watchdog: Watchdog) -> None:
        self.app = app
        self.watchdog = watchdog

    def run(self, name: str, args: list[Any], kwargs: dict[str, Any], context: TaskContext,
            timeout_s: float | None) -> Outcome:
        func = self.app.lookup(name).func
        token = None
        reset = _current.set(context)
        try:
            if timeout_s:
                token = self.watchdog.arm(threading.get_ident(), timeout_s)
            try:
                result = func(*args, **kwargs)
            finally:
                if token is not None:
                    self.watchdog.disarm(token)
            return Outcome(True, result)
        except TaskTimeoutError as exc:
            message = TaskTimeoutError(f"task {name!r} ran longer than its timeout of "
                                       f"{timeout_s} s")
            message.__traceback__ = exc.__traceback__
            return Outcome(False, error=describe_exception(message, self.app.settings),
                           exception=message)
        except Exception as exc:  # noqa: BLE001 - every task failure becomes a stored error
            return Outcome(False, error=describe_exception(exc, self.app.settings),
                           exception=exc)
        finally:
            _current.reset(reset)

    def close(self) -> None:
        pass


def send_json(conn: Connection, message: Any) -> None:
    """Send one message as JSON bytes. The pipe never carries pickles, so a child cannot be
    handed an object that runs code when it is read."""
    conn.send_bytes(json.dumps(message, allow_nan=False).encode("utf-8"))


def recv_json(conn: Connection) -> Any:
    """Receive one message sent by ``send_json``."""
    return json.loads(conn.recv_bytes())


def _child_main(conn: Connection, app_spec: str) -> None:
    """Entry point of a process-runner child: run bodies sent by the parent slot."""
    app = load_app(app_spec)
    send_json(conn, ["ready", None, None])
    while True:
        message = recv_json(conn)
        if message is None:
            return
        name, args, kwargs, task_id, queue, attempt, worker_id = message

        def report(fraction: float, text: str) -> bool:
            send_json(conn, ["progress", fraction, text])
            return True

        # TODO: cancel requests do not reach the child yet, so cancelled() stays False here.
        context = TaskContext(task_id, queue, attempt, worker_id, report, lambda: False)
        reset = _current.set(context)
        try:
            result = app.lookup(name).func(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - reported to the parent as the stored error
            send_json(conn, ["error", None, describe_exception(exc, app.settings)])
            continue
        finally:
            _current.reset(reset)
        try:
            send_json(conn, ["ok", result, None])
        except (TypeError, ValueError) as exc:
            error = describe_exception(exc, app.settings)
            error["type"] = "InvalidResult"
            error["message"] = (f"task result {type(result).__name__} cannot be encoded as JSON "
                                f"({exc}): return JSON types")
            send_json(conn, ["error", None, error])


class ProcessRunner:
    """Runs bodies in one child process per slot; a timeout kills and replaces the child."""

    def __init__(self, app: App, app_spec: str) -> None:
        if not app_spec:
            raise ConfigurationError("the process pool needs the app as module:attr (--app)")
        self.app = app
        self.app_spec = app_spec
        self._context = multiprocessing.get_context("spawn")
        self._process: Any = None
        self._conn: Connection | None = None

    def _ensure_child(self) -> Connection:
        """Return the pipe of a child that has imported the app, starting one if needed.

        Waiting for the child's "ready" keeps its start-up (spawn and imports) out of the task's
        timeout. Raises RuntimeError when the child cannot start.
        """
        if self._process is None or not self._process.is_alive() or self._conn is None:
            parent, child = self._context.Pipe()
            self._process = self._context.Process(
                target=_child_main, args=(child, self.app_spec), daemon=True)
            self._process.start()
            child.close()  # the child holds its own end; EOF now means the child is gone
            self._conn = parent
            try:
                started = parent.poll(CHILD_START_TIMEOUT_S) and recv_json(parent)[0] == "ready"
            except (EOFError, OSError):
                started = False
            if not started:
                self._reset()
                raise RuntimeError(f"the child process could not load the app {self.app_spec!r}"
                                   f" within {CHILD_START_TIMEOUT_S} s")
        assert self._conn is not None
        return self._conn

    def run(self, name: str, args: list[Any], kwargs: dict[str, Any], context: TaskContext,
            timeout_s: float | None) -> Outcome:
        try:
            conn = self._ensure_child()
        except RuntimeError as start_error:
            return Outcome(False, error=describe_exception(start_error, self.app.settings),
                           exception=start_error)
        send_json(conn, (name, args, kwargs, context.task_id, context.queue, context.attempt,
                   context.worker_id))
        deadline = None if not timeout_s else time.monotonic() + timeout_s
        while True:
            wait_s = 0.5 if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                ready = conn.poll(wait_s)
            except (EOFError, OSError):
                ready = True
            if ready:
                try:
                    kind, value, error = recv_json(conn)
                except (EOFError, OSError):
                    self._reset()
                    exc = RuntimeError(f"the child process running task {name!r} exited")
                    return Outcome(False, error=describe_exception(exc, self.app.settings),
                                   exception=exc)
                if kind == "progress":
                    context.progress(value, error)
                    continue
                if kind == "ok":
                    return Outcome(True, value)
                return Outcome(False, error=error)
            if deadline is not None and time.monotonic() >= deadline:
                self._reset()
                timeout = TaskTimeoutError(f"task {name!r} ran longer than its timeout of "
                                           f"{timeout_s} s; its process was killed")
                return Outcome(False, error=describe_exception(timeout, self.app.settings),
                               exception=timeout)

    def _reset(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.join(5)
        self._process = None
        self._conn = None

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError):
                send_json(self._conn, None)
        if self._process is not None:
            self._process.join(2)
            if self._process.is_alive():
                self._process.kill()
        self._process = None
        self._conn = None
