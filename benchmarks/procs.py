"""Worker and producer subprocesses of one queue system."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

log = logging.getLogger(__name__)

SECOND_SIGNAL_AFTER_S = 3.0
STOP_TIMEOUT_S = 12.0
CHILD_LIST_REFRESH_S = 0.2


@dataclass
class SystemEnv:
    """How to run one system's subprocesses: the interpreter and the environment."""

    system: str
    python: str
    env: dict[str, str]
    log_dir: Path

    def argv(self, *args: str) -> list[str]:
        return [self.python, "-m", "benchmarks.peers", self.system, *args]


class Producer:
    """A long-lived producer subprocess of one system, driven one command line at a time.

    Keeping one process (and one Redis connection) per system takes process
    start-up and connection set-up out of every timed producer phase.
    """

    def __init__(self, sysenv: SystemEnv) -> None:
        self.sysenv = sysenv
        self.log_path = sysenv.log_dir / f"{sysenv.system}-producer.log"
        with open(self.log_path, "ab") as log_file:
            self.popen = subprocess.Popen(
                sysenv.argv("serve"),
                env=sysenv.env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log_file,
            )

    def call(self, args: list[str], timeout_s: float) -> dict[str, Any]:
        """Run one role command line and return its JSON result; raise RuntimeError on failure."""
        assert self.popen.stdin is not None and self.popen.stdout is not None
        command = " ".join(args)
        try:
            self.popen.stdin.write((json.dumps(args) + "\n").encode())
            self.popen.stdin.flush()
        except BrokenPipeError:
            raise RuntimeError(
                f"{self.sysenv.system} producer has exited; see {self.log_path}"
            ) from None
        ready, _, _ = select.select([self.popen.stdout], [], [], timeout_s)
        if not ready:
            self.close()
            raise RuntimeError(
                f"{self.sysenv.system} producer timed out after {timeout_s:.0f} s: {command}"
            )
        line = self.popen.stdout.readline()
        if not line:
            raise RuntimeError(
                f"{self.sysenv.system} producer exited during: {command}\n{self._log_tail()}"
            )
        result = dict(json.loads(line))
        if "error" in result:
            raise RuntimeError(
                f"{self.sysenv.system} producer failed: {command}: {result['error']}"
            )
        return result

    def _log_tail(self) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-15:])
        except OSError:
            return ""

    def close(self) -> None:
        if self.popen.poll() is None:
            assert self.popen.stdin is not None
            try:
                self.popen.stdin.close()
                self.popen.wait(timeout=10)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.popen.kill()
                self.popen.wait(timeout=10)


@dataclass
class WorkerGroup:
    """One or more worker processes of a system, each in its own process group.

    Every process is started with ``start_new_session`` so that signals reach
    the worker and any children it forks (RQ work horses, Dramatiq's worker
    processes) and nothing else.
    """

    sysenv: SystemEnv
    mode: str
    concurrency: int
    record_file: Path
    processes: int = 1
    scheduler: bool = False
    label: str = ""
    popens: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _children: dict[int, list[psutil.Process]] = field(default_factory=dict)
    _children_read_s: float = 0.0

    def start(self) -> None:
        env = dict(self.sysenv.env, BENCH_RECORD_FILE=str(self.record_file))
        args = ["worker", "--mode", self.mode, "--concurrency", str(self.concurrency)]
        if self.scheduler:
            args.append("--scheduler")
        for index in range(self.processes):
            log_path = self.sysenv.log_dir / f"{self.label or self.sysenv.system}-{index}.log"
            with open(log_path, "ab") as log_file:
                popen = subprocess.Popen(
                    self.sysenv.argv(*args),
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            self.popens.append(popen)
            log.debug(
                "started %s worker pid %d (%s)", self.sysenv.system, popen.pid, " ".join(args)
            )

    def check_alive(self) -> None:
        for popen in self.popens:
            if popen.poll() is not None:
                raise RuntimeError(
                    f"{self.sysenv.system} worker pid {popen.pid} exited with code "
                    f"{popen.returncode}; see logs in {self.sysenv.log_dir}"
                )

    def _signal(self, signum: int) -> None:
        for popen in self.popens:
            if popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(popen.pid, signum)

    def pause(self) -> None:
        """Stop every process of the group (SIGSTOP), so Redis can be filled undisturbed."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def cpu_s(self) -> float:
        """Return CPU seconds (user + system) used so far by the workers and all their children.

        Children that exited and were reaped are included through the parent's
        ``children_user``/``children_system``; live children are read directly.
        """
        now = time.monotonic()
        refresh = now - self._children_read_s > CHILD_LIST_REFRESH_S
        total = 0.0
        for popen in self.popens:
            try:
                parent = psutil.Process(popen.pid)
                if refresh or popen.pid not in self._children:
                    self._children[popen.pid] = parent.children(recursive=True)
                for proc in [parent, *self._children[popen.pid]]:
                    try:
                        times = proc.cpu_times()
                    except psutil.NoSuchProcess:
                        continue
                    total += times.user + times.system + times.children_user + times.children_system
            except psutil.NoSuchProcess:
                continue
        if refresh:
            self._children_read_s = now
        return total

    def pids(self) -> list[int]:
        return [popen.pid for popen in self.popens]

    def stop(self) -> None:
        """Stop the workers: SIGTERM, a second SIGTERM after a pause, then SIGKILL.

        The workers are idle when the harness stops them. Most stop on the
        first SIGTERM; RQ 3.0's SimpleWorker waits for its blocking dequeue
        to time out after the first and stops at once on the second, which
        every system here treats as a request to exit now.
        """
        self._signal(signal.SIGCONT)
        self._signal(signal.SIGTERM)
        if not self._wait_all(SECOND_SIGNAL_AFTER_S):
            self._signal(signal.SIGTERM)
            if not self._wait_all(STOP_TIMEOUT_S):
                log.warning(
                    "%s worker pids %s ignored two SIGTERMs for %.0f s; killing their groups",
                    self.sysenv.system,
                    self.pids(),
                    SECOND_SIGNAL_AFTER_S + STOP_TIMEOUT_S,
                )
        # Children that outlived their parent (for example a Dramatiq worker process) share its
        # group; SIGKILL reaches them by the group id, which is the parent's pid.
        for popen in self.popens:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(popen.pid, signal.SIGKILL)
            if popen.poll() is None:
                popen.wait(timeout=10)
        self.popens = []

    def _wait_all(self, timeout_s: float) -> bool:
        deadline_s = time.monotonic() + timeout_s
        for popen in self.popens:
            try:
                popen.wait(timeout=max(0.01, deadline_s - time.monotonic()))
            except subprocess.TimeoutExpired:
                return False
        return True
