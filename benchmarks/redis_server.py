"""A private ``redis-server`` on a free loopback port, with persistence off."""

from __future__ import annotations

import logging
import socket
import subprocess
import time
from pathlib import Path

import redis

log = logging.getLogger(__name__)

REDIS_SERVER_DEFAULT = "/usr/bin/redis-server"
START_TIMEOUT_S = 10.0


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """Start, query and stop one redis-server process owned by the harness."""

    def __init__(self, work_dir: Path, binary: str = REDIS_SERVER_DEFAULT) -> None:
        self.work_dir = work_dir
        self.binary = binary
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.port = free_port()
        log_file = self.work_dir / "redis-server.log"
        argv = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.work_dir),
            "--logfile",
            str(log_file),
        ]
        log.info("starting %s on 127.0.0.1:%d", self.binary, self.port)
        self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
        client = self.client()
        deadline_s = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError as exc:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"redis-server exited with code {self.process.returncode}; see {log_file}"
                    ) from exc
                if time.monotonic() > deadline_s:
                    self.stop()
                    raise RuntimeError(
                        f"redis-server did not reply to PING within {START_TIMEOUT_S} s; "
                        f"see {log_file}"
                    ) from exc
                time.sleep(0.05)
        client.close()

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True)

    def version(self) -> str:
        client = self.client()
        try:
            return str(client.info("server")["redis_version"])
        finally:
            client.close()

    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        log.info("stopping redis-server on port %d", self.port)
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            log.warning(
                "redis-server pid %d ignored SIGTERM for 10 s; killing it", self.process.pid
            )
            self.process.kill()
            self.process.wait(timeout=10)
