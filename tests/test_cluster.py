"""The engine on a 3-master Redis Cluster: its contract tests, re-run here, and a demo with
several worker processes serving queues whose hash slots live on different nodes.

The core engine test modules are imported below, so pytest collects their tests a second time
in this module. Here the ``backend``, ``redis_url`` and ``real_redis_url`` fixtures point at the
private cluster instead of the embedded server or the shared test Redis.
"""

from __future__ import annotations

import importlib
import inspect
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import taskq
from tests.cluster import Cluster, redis_cluster_fixture  # noqa: F401 - registers redis_cluster
from tests.conftest import FAST_SETTINGS, start_worker_process, wait_until

pytestmark = pytest.mark.real_redis

# Engine contract modules whose tests run again on the cluster. Modules that test one server's
# behaviour (connection URLs, Redis restarts, the CLI's output) stay out.
CONTRACT_MODULES = (
    "tests.test_enqueue",
    "tests.test_claim_order",
    "tests.test_control",
    "tests.test_dead_letters",
    "tests.test_delayed",
    "tests.test_events_metrics",
    "tests.test_leases",
    "tests.test_outcomes",
    "tests.test_worker_pool",
    "tests.test_state_machine",
)

# Chaos tests restart or pause servers, which the cluster fixture does not support.
SKIPPED_MARKS = {"chaos"}
# Process-pool tests check child processes, not Redis, and their short task timeouts make them
# sensitive to machine load; they stay with the single-server suite.
PROCESS_POOL = 'pool="process"'


def _import_contract_tests() -> None:
    """Copy the tests and module fixtures of ``CONTRACT_MODULES`` into this module."""
    own = set(globals())
    for name in CONTRACT_MODULES:
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            is_test = attr.startswith("test_") and callable(value)
            is_fixture = hasattr(value, "_fixture_function_marker") or type(
                value).__name__ == "FixtureFunctionDefinition"
            if not (is_test or is_fixture) or attr in own:
                continue
            marks = {mark.name for mark in getattr(value, "pytestmark", [])}
            if marks & SKIPPED_MARKS or (is_test and PROCESS_POOL in inspect.getsource(value)):
                continue
            if attr in globals() and globals()[attr] is not value:
                raise RuntimeError(f"{name}.{attr} clashes with another contract module")
            globals()[attr] = value


_import_contract_tests()


@pytest.fixture
def cluster_url(redis_cluster: Cluster) -> str:
    """The cluster's engine URL, every node flushed."""
    redis_cluster.flush()
    return redis_cluster.url


@pytest.fixture
def backend() -> str:
    return "cluster"


@pytest.fixture
def redis_url(cluster_url: str) -> str:
    return cluster_url


@pytest.fixture
def real_redis_url(cluster_url: str) -> str:
    return cluster_url


def spread_queues(cluster: Cluster, app: taskq.App, count: int = 3) -> list[str]:
    """The first queue names q0, q1, ... whose slots land on ``count`` different nodes."""
    chosen: dict[int, str] = {}
    for i in range(1000):
        name = f"q{i}"
        port = cluster.port_of(app.keys.queue(name).tasks)
        chosen.setdefault(port, name)
        if len(chosen) == count:
            return sorted(chosen.values(), key=lambda q: int(q[1:]))
    raise AssertionError("no queue names spread over the cluster's nodes")


@pytest.fixture
def cluster_app(cluster_url: str) -> taskq.App:
    app = taskq.App(cluster_url, settings=FAST_SETTINGS)
    app.task("add")(lambda x, y: x + y)
    return app


def test_cluster_url_selects_cluster(cluster_app: taskq.App) -> None:
    assert cluster_app.cluster is True
    assert cluster_app.backend.kind == "cluster"


def test_single_server_is_not_cluster(app: taskq.App, redis_cluster: Cluster) -> None:
    single = taskq.App(f"redis://127.0.0.1:{redis_cluster.ports[0]}/0")
    assert single.cluster is False


def test_cluster_database_rejected(redis_cluster: Cluster) -> None:
    app = taskq.App(redis_cluster.url + "/3")
    with pytest.raises(taskq.ConfigurationError, match="only be 0"):
        app.queues()


def test_queues_spread_over_nodes(cluster_app: taskq.App, redis_cluster: Cluster
                                  ) -> None:
    queues = spread_queues(redis_cluster, cluster_app)
    ports = {redis_cluster.port_of(cluster_app.keys.queue(q).tasks) for q in queues}
    assert len(ports) == 3


def test_snapshot_merges_slots(cluster_app: taskq.App, redis_cluster: Cluster
                               ) -> None:
    queues = spread_queues(redis_cluster, cluster_app)
    for index, queue in enumerate(queues):
        for _ in range(index + 1):
            cluster_app.enqueue("add", [1, 1], queue=queue)
    worker = taskq.Worker(cluster_app, ["elsewhere"], concurrency=1)
    worker.start()
    try:
        snapshot = taskq.take_snapshot(cluster_app)
    finally:
        worker.stop(grace_s=0.5)
    assert {q: v.ready for q, v in snapshot.queues.items()} == dict(zip(queues, [1, 2, 3]))
    assert [w.id for w in snapshot.workers] == [worker.id]


def test_events_read_across_slots(cluster_app: taskq.App, redis_cluster: Cluster
                                  ) -> None:
    queues = spread_queues(redis_cluster, cluster_app)
    ids = [cluster_app.enqueue("add", [1, 1], queue=q).id for q in queues]
    offsets = {cluster_app.keys.queue(q).events: "0" for q in queues}
    events, offsets = taskq.read_events(cluster_app, offsets)
    assert sorted(e.task_id for e in events) == sorted(ids)
    assert set(offsets.values()) == {e.id for e in events}


def test_blocking_read_wakes_on_any_slot(cluster_app: taskq.App,
                                         redis_cluster: Cluster) -> None:
    queues = spread_queues(redis_cluster, cluster_app)
    offsets = {cluster_app.keys.queue(q).events: "0" for q in queues}
    started = threading.Event()

    def enqueue_later() -> None:
        started.wait(5)
        cluster_app.enqueue("add", [1, 1], queue=queues[-1])

    thread = threading.Thread(target=enqueue_later)
    thread.start()
    began = time.monotonic()
    started.set()
    events, _ = taskq.read_events(cluster_app, offsets, block_ms=10_000)
    elapsed = time.monotonic() - began
    thread.join(5)
    assert [e.queue for e in events] == [queues[-1]]
    assert elapsed < 10, "the read waited for its timeout instead of the new event"


def test_idle_worker_wakes_on_any_slot(cluster_app: taskq.App,
                                       redis_cluster: Cluster) -> None:
    queues = spread_queues(redis_cluster, cluster_app)
    worker = taskq.Worker(cluster_app, queues, concurrency=1)
    worker.start()
    try:
        handles = [cluster_app.enqueue("add", [i, 1], queue=q) for i, q in enumerate(queues)]
        results = [h.result(timeout_s=10) for h in handles]
    finally:
        worker.stop(grace_s=0.5)
    assert results == [1, 2, 3]


def test_claim_keeps_strict_queue_order(cluster_app: taskq.App,
                                        redis_cluster: Cluster) -> None:
    queues = spread_queues(redis_cluster, cluster_app)
    for queue in reversed(queues):
        cluster_app.enqueue("add", [1, 1], queue=queue, task_id=f"in-{queue}")
    worker = taskq.Worker(cluster_app, queues, concurrency=1, run_promoter=False,
                          run_reaper=False)
    claimed = worker._claim(3, [])
    assert [t.queue for t in claimed] == queues


def test_api_serves_cluster(cluster_app: taskq.App, redis_cluster: Cluster
                            ) -> None:
    import warnings

    from taskq.api import create_app
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from fastapi.testclient import TestClient

    queues = spread_queues(redis_cluster, cluster_app)
    with TestClient(create_app(cluster_app)) as client:
        ids = [client.post("/tasks", json={"name": "add", "args": [1, 2], "queue": q}).json()["id"]
               for q in queues]
        stats = client.get("/stats").json()
        found = client.get(f"/tasks/{ids[1]}").json()
        stream = client.get("/events", params={"from": "start", "limit": 3, "workers": "false"})
    data = [json.loads(line[6:]) for line in stream.text.splitlines()
            if line.startswith("data: ")]
    assert stats["totals"]["ready"] == 3
    assert found["queue"] == queues[1]
    assert sorted(d["task_id"] for d in data) == sorted(ids)


# The multi-worker demo.

@pytest.fixture
def worker_processes(cluster_url: str, redis_cluster: Cluster
                     ) -> Iterator[tuple[list[str], list[Any]]]:
    probe = taskq.App(cluster_url)
    queues = spread_queues(redis_cluster, probe)
    processes = [start_worker_process(cluster_url, queues=",".join(queues), concurrency=2)
                 for _ in range(3)]
    try:
        yield queues, processes
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(15)
            except Exception:  # noqa: BLE001 - make sure no worker outlives the test
                process.kill()
                process.wait(5)


def test_workers_share_spread_queues(cluster_url: str,
                                     worker_processes: tuple[list[str], list[Any]]) -> None:
    queues, processes = worker_processes
    app = taskq.App(cluster_url, settings=FAST_SETTINGS)
    app.task("record_run", max_retries=3)(lambda log_key: None)
    wait_until(lambda: len(taskq.take_snapshot(app).workers) == 3, timeout_s=30,
               message="three worker processes to register")
    calls = [taskq.Call("record_run", ["cluster-demo:runs"], queue=queues[i % 3])
             for i in range(90)]
    handles = app.enqueue_many(calls)

    wait_until(lambda: all(h.state() is taskq.State.SUCCEEDED for h in handles),
               timeout_s=30, message="90 tasks to succeed on the cluster")
    runs = [x.decode() for x in app.client.lrange("cluster-demo:runs", 0, -1)]
    # Workers publish their processed count at each heartbeat (0.2 s with the test settings).
    snapshot = wait_until(
        lambda: (lambda s: s if sum(w.processed for w in s.workers) == 90 else None)(
            taskq.take_snapshot(app)), timeout_s=10, message="heartbeats counting 90 tasks")
    assert sorted(runs) == sorted(h.id for h in handles), "every task ran exactly once"
    assert {q: snapshot.queues[q].counters.get("succeeded") for q in queues} == {
        q: 30 for q in queues}
    assert len(snapshot.workers) == 3
    assert sum(1 for w in snapshot.workers if w.processed > 0) >= 2, "no sharing of work"
    assert all(p.poll() is None for p in processes)
