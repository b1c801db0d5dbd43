"""Worker and producer subprocesses of one queue system."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 15.0
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


def run_producer(sysenv: SystemEnv, args: list[str], timeout_s: float, extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run one producer role to completion and return the JSON it printed last."""
    env = dict(sysenv.env, **(extra_env or {}))
    argv = sysenv.argv(*args)
    try:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"{sysenv.system} producer timed out after {timeout_s:.0f} s: {' '.join(argv)}") from exc
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"{sysenv.system} producer failed with exit code {done.returncode}: {' '.join(argv)}\n{tail}")
    lines = [line for line in done.stdout.strip().splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"{sysenv.system} producer printed no JSON result: {' '.join(argv)}\n{done.stderr[-2000:]}")
    return dict(json.loads(lines[-1]))


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
            log.debug("started %s worker pid %d (%s)", self.sysenv.system, popen.pid, " ".join(args))

    def check_alive(self) -> None:
        for popen in self.popens:
            if popen.poll() is not None:
                raise RuntimeError(
                    f"{self.sysenv.system} worker pid {popen.pid} exited with code {popen.returncode}; "
                    f"see logs in {self.sysenv.log_dir}"
                )

    def _signal(self, signum: int) -> None:
        for popen in self.popens:
            if popen.poll() is None:
                try:
                    os.killpg(popen.pid, signum)
                except ProcessLookupError:
                    pass

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
        """Stop the workers: SIGCONT and SIGTERM, then SIGKILL the groups still alive after a timeout."""
        self._signal(signal.SIGCONT)
        self._signal(signal.SIGTERM)
        deadline_s = time.monotonic() + STOP_TIMEOUT_S
        for popen in self.popens:
            remaining_s = max(0.1, deadline_s - time.monotonic())
            try:
                popen.wait(timeout=remaining_s)
            except subprocess.TimeoutExpired:
                log.warning("%s worker pid %d ignored SIGTERM for %.0f s; killing its process group",
                            self.sysenv.system, popen.pid, STOP_TIMEOUT_S)
                try:
                    os.killpg(popen.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                popen.wait(timeout=10)
        # Children that outlived their parent (for example a Dramatiq worker process) share its group.
        for popen in self.popens:
            try:
                os.killpg(popen.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.popens = []
