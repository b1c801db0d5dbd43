"""Private ``redis-server`` processes for tests that kill, pause, reconfigure or restart Redis.

Such tests never touch the shared server on 6379. Each server binds 127.0.0.1 on a free port,
keeps its data in a temporary folder, and writes no RDB snapshot (``--save ""``). Options add an
append-only file (``appendfsync always``), a password, or TLS with a self-signed certificate made
by ``openssl`` at test time. The ``redis_servers`` fixture stops every server it started, and
removes its folder, whatever the test's outcome.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.conftest import free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class TlsFiles:
    """A self-signed certificate for 127.0.0.1 and its key, both PEM files."""

    cert: Path
    key: Path


def make_self_signed_cert(folder: Path) -> TlsFiles:
    """Create a one-day self-signed certificate whose subject names IP 127.0.0.1."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60)
    return TlsFiles(cert, key)


class PortTakenError(RuntimeError):
    """Another process bound the port chosen for a server before the server did."""


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1 that a test may stop, kill and restart.

    The port and the data folder stay the same across restarts, so a server with an
    append-only file comes back with its data and clients reconnect to the same URL.
    """

    def __init__(self, folder: Path, *, aof: bool = False, password: str | None = None,
                 tls: bool = False) -> None:
        self.folder = folder
        self.aof = aof
        self.password = password
        self.tls = make_self_signed_cert(folder) if tls else None
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        """The URL clients use, with the password when one is set."""
        scheme = "rediss" if self.tls else "redis"
        auth = f":{self.password}@" if self.password else ""
        return f"{scheme}://{auth}127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.folder / "redis.log"

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for ``redis.Redis.from_url`` that trust the test certificate."""
        if self.tls is None:
            return {}
        return {"ssl_ca_certs": str(self.tls.cert)}

    def client(self, **options: Any) -> redis.Redis:
        """A new client of this server; short timeouts so a test never hangs on it."""
        options.setdefault("socket_timeout", 10)
        options.setdefault("socket_connect_timeout", 2)
        return redis.Redis.from_url(self.url, **self.client_options(), **options)

    def _command(self) -> list[str]:
        command = [REDIS_SERVER, "--bind", "127.0.0.1", "--save", "", "--dir", str(self.folder),
                   "--logfile", str(self.log_path), "--daemonize", "no"]
        if self.tls is not None:
            command += ["--port", "0", "--tls-port", str(self.port),
                        "--tls-cert-file", str(self.tls.cert),
                        "--tls-key-file", str(self.tls.key),
                        "--tls-ca-cert-file", str(self.tls.cert),
                        "--tls-auth-clients", "no"]
        else:
            command += ["--port", str(self.port)]
        if self.aof:
            command += ["--appendonly", "yes", "--appendfsync", "always"]
        if self.password:
            command += ["--requirepass", self.password]
        return command

    def start(self) -> RedisServer:
        """Start the server and wait until it answers PING; raises after START_TIMEOUT_S.

        On the first start only, a port taken between ``free_port`` and the bind is replaced
        by another free port (at most three tries); a restart keeps its port.
        """
        if self.running():
            return self
        for attempt in range(3):
            try:
                return self._launch()
            except PortTakenError:
                if self.starts > 1 or attempt == 2:
                    raise
                self.starts -= 1
                self.port = free_port()
        raise AssertionError("unreachable")

    def _launch(self) -> RedisServer:
        self.process = subprocess.Popen(self._command(), stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        self.starts += 1
        deadline = time.monotonic() + START_TIMEOUT_S
        probe = self.client(socket_timeout=1, socket_connect_timeout=0.5)
        try:
            while True:
                try:
                    if probe.ping():
                        return self
                except redis.BusyLoadingError:
                    pass  # the server is reading its append-only file: wait
                except redis.ConnectionError:
                    if self.process.poll() is not None:
                        if "Address already in use" in self.log_tail():
                            raise PortTakenError(self.port) from None
                        raise RuntimeError(
                            f"redis-server on port {self.port} exited with code "
                            f"{self.process.returncode}: {self.log_tail()}") from None
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on port {self.port} did not answer "
                                       f"within {START_TIMEOUT_S} s: {self.log_tail()}")
                time.sleep(0.02)
        finally:
            probe.close()

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """Shut down cleanly (SIGTERM: Redis flushes the append-only file) and wait."""
        self._signal_and_wait(signal.SIGTERM)

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash or a power cut would."""
        self._signal_and_wait(signal.SIGKILL)

    def restart(self, down_s: float = 0.0, *, hard: bool = False) -> float:
        """Stop (or kill), stay down ``down_s`` seconds, start again; returns the monotonic
        time at which the server answered again."""
        if hard:
            self.kill()
        else:
            self.stop()
        time.sleep(down_s)  # the outage itself is the scenario, not a wait for a condition
        self.start()
        return time.monotonic()

    def _signal_and_wait(self, signum: signal.Signals) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signum)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT_S)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "<no log>"


@pytest.fixture
def redis_servers() -> Iterator[Callable[..., RedisServer]]:
    """A factory of started private servers: ``redis_servers(aof=True, password=..., tls=...)``.

    Every server is killed and its folder removed at the end of the test.
    """
    started: list[RedisServer] = []
    folders: list[str] = []

    def start(**options: Any) -> RedisServer:
        folder = tempfile.mkdtemp(prefix="taskq-redis-")
        folders.append(folder)
        server = RedisServer(Path(folder), **options)
        started.append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in started:
            server.kill()
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def redis_server(redis_servers: Callable[..., RedisServer]) -> RedisServer:
    """One private server without persistence."""
    return redis_servers()


@pytest.fixture
def aof_redis_server(redis_servers: Callable[..., RedisServer]) -> RedisServer:
    """One private server with an append-only file fsynced on every write."""
    return redis_servers(aof=True)
