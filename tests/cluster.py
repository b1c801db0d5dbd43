"""A private 3-master Redis Cluster on loopback ports, for running the engine on Cluster.

Three ``redis-server --cluster-enabled yes`` processes bind 127.0.0.1 on free ports (each with
its own free cluster-bus port), keep no data on disk, and are joined by ``redis-cli --cluster
create ... --cluster-replicas 0``. The ``redis_cluster`` fixture starts the cluster once per test
session and stops every process it started, whatever the outcome. When redis-server or
redis-cli is missing the fixture skips, or fails when ``TASKQ_REQUIRE_REAL_REDIS=1``.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster

from tests.conftest import REQUIRE_REAL_REDIS, free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
NODES = 3
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0


@dataclass
class Cluster:
    """A running cluster: its node ports and the URL the engine uses."""

    folder: Path
    ports: list[int] = field(default_factory=list)
    bus_ports: list[int] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The engine URL: any one node, with the cluster scheme."""
        return f"redis+cluster://127.0.0.1:{self.ports[0]}"

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=10,
                           socket_connect_timeout=2)

    def client(self) -> RedisCluster:
        return RedisCluster(host="127.0.0.1", port=self.ports[0], socket_timeout=10)

    def flush(self) -> None:
        """Delete every key on every node of this private cluster."""
        for port in self.ports:
            self.node(port).flushall()

    def port_of(self, key: str) -> int:
        """The port of the master that serves ``key``'s hash slot."""
        node = self.client().get_node_from_key(key)
        return int(node.port)

    def start(self) -> None:
        for _ in range(NODES):
            self._start_node()
        for port in self.ports:
            self._wait(lambda p=port: self.node(p).ping(), f"node {port} to answer PING")
        create = subprocess.run(
            [REDIS_CLI, "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
             "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True, text=True, timeout=60)
        if create.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed:\n{create.stdout}\n"
                               f"{create.stderr}")
        for port in self.ports:
            self._wait(lambda p=port: b"cluster_state:ok" in self.node(p).execute_command(
                "CLUSTER", "INFO"), f"node {port} to report cluster_state:ok")
        # Every node must also agree on the whole slot map before clients read it.
        self._wait(lambda: all(len(self.node(p).execute_command("CLUSTER", "NODES").splitlines())
                               == NODES for p in self.ports), "every node to know the others")

    def _start_node(self) -> None:
        taken = set(self.ports) | set(self.bus_ports)
        port = bus_port = 0
        while port in taken or bus_port in taken or port == bus_port:
            port, bus_port = free_port(), free_port()
        self.bus_ports.append(bus_port)
        folder = self.folder / str(port)
        folder.mkdir()
        process = subprocess.Popen(
            [REDIS_SERVER, "--bind", "127.0.0.1", "--port", str(port),
             "--cluster-enabled", "yes", "--cluster-port", str(bus_port),
             "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000",
             "--save", "", "--appendonly", "no", "--dir", str(folder),
             "--logfile", str(folder / "redis.log"), "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.ports.append(port)
        self.processes.append(process)

    def _wait(self, predicate: object, what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                if predicate():  # type: ignore[operator]
                    return
            except redis.RedisError:
                pass
            if any(p.poll() is not None for p in self.processes):
                raise RuntimeError(f"a cluster node exited while waiting for {what}; see the "
                                   f"logs under {self.folder}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out after {START_TIMEOUT_S} s waiting for {what}")
            time.sleep(0.05)

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_TIMEOUT_S)


def cluster_tools_missing() -> str | None:
    for tool in (REDIS_SERVER, REDIS_CLI):
        if not Path(tool).exists():
            return f"{tool} is not installed"
    return None


@pytest.fixture(scope="session", name="redis_cluster")
def redis_cluster_fixture() -> Iterator[Cluster]:
    """A 3-master Redis Cluster on loopback ports, shared by the session's tests."""
    missing = cluster_tools_missing()
    if missing:
        if REQUIRE_REAL_REDIS:
            pytest.fail(f"{missing} (TASKQ_REQUIRE_REAL_REDIS=1)")
        pytest.skip(missing)
    cluster = Cluster(Path(tempfile.mkdtemp(prefix="taskq-cluster-")))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(cluster.folder, ignore_errors=True)
