"""The HTTP API against a real Redis: endpoints through Starlette's TestClient, and the event
stream's resume through a real ``taskq api`` server (uvicorn) on a free loopback port."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

with warnings.catch_warnings():
    # Starlette 1.x warns that its TestClient will move from httpx to httpx2.
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

import taskq
from taskq.api import check_bind, create_app, openapi_json
from taskq.api.stream import decode_cursor
from taskq.cli import cli
from tests.conftest import FAST_SETTINGS, ROOT, free_port, wait_until, with_settings

pytestmark = pytest.mark.real_redis

OPENAPI_PATH = ROOT / "docs" / "openapi.json"


def build_engine(url: str, settings: taskq.Settings = FAST_SETTINGS) -> taskq.App:
    """An App on ``url`` with the tasks these tests enqueue."""
    app = taskq.App(url, settings=settings)

    @app.task(name="add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="explode", max_retries=0)
    def explode(message: str) -> None:
        raise ValueError(message)

    @app.task(name="wait_for_cancel", max_retries=0)
    def wait_for_cancel(limit_s: float) -> str:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if taskq.current_task().cancelled():
                return "stopped"
            time.sleep(0.01)
        return "timed out"

    return app


@pytest.fixture
def engine(real_redis_url: str) -> taskq.App:
    return build_engine(real_redis_url)


@pytest.fixture
def client(engine: taskq.App) -> Iterator[TestClient]:
    with TestClient(create_app(engine)) as test_client:
        yield test_client


@pytest.fixture
def worker(engine: taskq.App) -> Iterator[taskq.Worker]:
    running = taskq.Worker(engine, ["default"], concurrency=2)
    running.start()
    yield running
    running.stop(grace_s=0.5)


def enqueue(client: TestClient, **body: Any) -> dict[str, Any]:
    response = client.post("/tasks", json={"name": "add", "args": [1, 2], **body})
    assert response.status_code in (200, 201), response.text
    result: dict[str, Any] = response.json()
    return result


def task_state(client: TestClient, task_id: str) -> str:
    state: str = client.get(f"/tasks/{task_id}").json()["state"]
    return state


def sse_messages(text: str) -> list[dict[str, str]]:
    """Parse a text/event-stream body into messages with their id and data fields."""
    messages = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line.startswith(":") or ": " not in line:
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
        if "data" in fields:
            messages.append(fields)
    return messages


# Enqueue.

def test_enqueue_returns_created(client: TestClient) -> None:
    response = client.post("/tasks", json={"name": "add", "args": [2, 3]})
    body = response.json()
    assert response.status_code == 201
    assert body["created"] is True
    assert body["queue"] == "default"
    assert response.headers["location"] == f"/tasks/{body['id']}"


def test_enqueue_stores_arguments(client: TestClient) -> None:
    task_id = enqueue(client, args=[], kwargs={"x": 4, "y": 5})["id"]
    record = client.get(f"/tasks/{task_id}").json()
    assert record["state"] == "ready"
    assert record["kwargs"] == {"x": 4, "y": 5}
    assert record["name"] == "add"


def test_enqueue_same_id_twice(client: TestClient) -> None:
    first = client.post("/tasks", json={"name": "add", "args": [1, 1], "task_id": "job-1"})
    second = client.post("/tasks", json={"name": "add", "args": [9, 9], "task_id": "job-1"})
    assert first.status_code == 201
    assert second.status_code == 200
    assert second.json()["created"] is False
    assert client.get("/tasks/job-1").json()["args"] == [1, 1]


def test_enqueue_unknown_name(client: TestClient, engine: taskq.App) -> None:
    response = client.post("/tasks", json={"name": "no_such_task"})
    assert response.status_code == 422
    assert response.json()["error"] == "unknown_task"
    assert "no_such_task" in response.json()["message"]
    assert engine.queues() == []


def test_enqueue_priority_out_of_range(client: TestClient) -> None:
    response = client.post("/tasks", json={"name": "add", "priority": 12})
    body = response.json()
    assert response.status_code == 422
    assert body["error"] == "invalid_request"
    assert body["details"][0]["location"] == "body.priority"


def test_enqueue_unknown_field(client: TestClient) -> None:
    response = client.post("/tasks", json={"name": "add", "prority": 3})
    assert response.status_code == 422
    assert "prority" in response.json()["message"]


def test_enqueue_malformed_json(client: TestClient) -> None:
    response = client.post("/tasks", content=b'{"name": "add",',
                           headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_json"


def test_enqueue_naive_eta(client: TestClient) -> None:
    response = client.post("/tasks", json={"name": "add", "eta": "2030-01-01T00:00:00"})
    assert response.status_code == 422
    assert response.json()["details"][0]["location"] == "body.eta"


def test_enqueue_aware_eta_schedules(client: TestClient) -> None:
    eta = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    task_id = enqueue(client, eta=eta)["id"]
    assert task_state(client, task_id) == "scheduled"


def test_enqueue_delay_and_eta(client: TestClient) -> None:
    response = client.post("/tasks", json={"name": "add", "delay_s": 5,
                                           "eta": "2030-01-01T00:00:00Z"})
    assert response.status_code == 422
    assert "either delay_s or eta" in response.json()["message"]


def test_enqueue_payload_too_large(real_redis_url: str) -> None:
    engine = build_engine(real_redis_url, with_settings(max_payload_bytes=1000))
    with TestClient(create_app(engine)) as client:
        response = client.post("/tasks", json={"name": "add", "args": ["x" * 2000, 1]})
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
    assert engine.queues() == []


def test_body_over_limit(engine: taskq.App) -> None:
    with TestClient(create_app(engine, max_body_bytes=1000)) as client:
        response = client.post("/tasks", json={"name": "add", "args": ["x" * 2000]})
    assert response.status_code == 413
    assert "1000 bytes" in response.json()["message"]


def test_bulk_enqueue(client: TestClient) -> None:
    tasks = [{"name": "add", "args": [i, i]} for i in range(30)]
    tasks.append({"name": "add", "args": [0, 0], "queue": "other"})
    response = client.post("/tasks/bulk", json={"tasks": tasks})
    body = response.json()
    assert response.status_code == 201
    assert body["created"] == 31
    assert [t["queue"] for t in body["tasks"]].count("other") == 1
    assert client.get("/queues/default/tasks").json()["total"] == 30


def test_bulk_invalid_writes_nothing(client: TestClient, engine: taskq.App) -> None:
    tasks = [{"name": "add", "args": [1, 2]}, {"name": "add", "queue": "bad\nname"}]
    response = client.post("/tasks/bulk", json={"tasks": tasks})
    assert response.status_code == 422
    assert "control characters" in response.json()["message"]
    assert engine.queues() == []


def test_bulk_empty_list(client: TestClient) -> None:
    response = client.post("/tasks/bulk", json={"tasks": []})
    assert response.status_code == 422


# Reading tasks.

def test_get_unknown_task(client: TestClient) -> None:
    enqueue(client)
    response = client.get("/tasks/nope")
    assert response.status_code == 404
    assert response.json()["error"] == "task_not_found"
    assert "'nope'" in response.json()["message"]


def test_get_ambiguous_task_id(client: TestClient) -> None:
    enqueue(client, task_id="twin")
    enqueue(client, task_id="twin", queue="other")
    response = client.get("/tasks/twin")
    assert response.status_code == 409
    assert "?queue=" in response.json()["message"]
    assert client.get("/tasks/twin", params={"queue": "other"}).json()["queue"] == "other"


def test_get_task_with_slash(client: TestClient) -> None:
    enqueue(client, task_id="reports/2030-01")
    response = client.get("/tasks/reports%2F2030-01")
    assert response.status_code == 200
    assert response.json()["id"] == "reports/2030-01"


def test_timeline_after_run(client: TestClient, worker: taskq.Worker) -> None:
    task_id = enqueue(client)["id"]
    wait_until(lambda: task_state(client, task_id) == "succeeded", message="task success")
    events = client.get(f"/tasks/{task_id}/timeline").json()["events"]
    assert [e["kind"] for e in events] == ["enqueued", "started", "succeeded"]
    assert client.get(f"/tasks/{task_id}").json()["result"] == 3


# Listing.

def test_ready_listing_claim_order(client: TestClient) -> None:
    for task_id, priority in (("p5a", 5), ("p9", 9), ("p5b", 5), ("p0", 0), ("p5c", 5)):
        enqueue(client, task_id=task_id, priority=priority)
    pages = [client.get("/queues/default/tasks", params={"offset": offset, "limit": 2}).json()
             for offset in (0, 2, 4)]
    ids = [[t["id"] for t in page["tasks"]] for page in pages]
    assert ids == [["p9", "p5a"], ["p5b", "p5c"], ["p0"]]
    assert {page["total"] for page in pages} == {5}


def test_ready_listing_lifo(client: TestClient, engine: taskq.App) -> None:
    for task_id in ("a", "b", "c"):
        enqueue(client, task_id=task_id)
    engine.set_lifo("default", True)
    page = client.get("/queues/default/tasks", params={"limit": 2}).json()
    assert [t["id"] for t in page["tasks"]] == ["c", "b"]


def test_scheduled_listing_soonest_first(client: TestClient) -> None:
    enqueue(client, task_id="later", delay_s=60)
    enqueue(client, task_id="sooner", delay_s=30)
    page = client.get("/queues/default/tasks", params={"state": "scheduled"}).json()
    assert [t["id"] for t in page["tasks"]] == ["sooner", "later"]


def test_listing_unknown_queue(client: TestClient) -> None:
    response = client.get("/queues/missing/tasks")
    assert response.status_code == 404
    assert response.json()["error"] == "queue_not_found"


def test_listing_invalid_state(client: TestClient) -> None:
    enqueue(client)
    response = client.get("/queues/default/tasks", params={"state": "sleeping"})
    assert response.status_code == 422
    assert response.json()["details"][0]["location"] == "query.state"


def test_listing_limit_too_large(client: TestClient) -> None:
    enqueue(client)
    response = client.get("/queues/default/tasks", params={"limit": 100_000})
    assert response.status_code == 422


# Queues, stats and workers.

def test_queues_and_stats(client: TestClient) -> None:
    enqueue(client)
    enqueue(client, queue="other", delay_s=30)
    queues = {q["name"]: q for q in client.get("/queues").json()}
    totals = client.get("/stats").json()["totals"]
    assert queues["default"]["ready"] == 1
    assert queues["other"]["scheduled"] == 1
    assert totals["enqueued"] == 2


def test_pause_and_resume(client: TestClient) -> None:
    enqueue(client)
    first = client.post("/queues/default/pause").json()
    second = client.post("/queues/default/pause").json()
    assert first == {"queue": "default", "paused": True, "changed": True}
    assert second["changed"] is False
    assert client.get("/queues/default").json()["paused"] is True
    assert client.post("/queues/default/resume").json()["changed"] is True
    assert client.get("/queues/default").json()["paused"] is False


def test_pause_unknown_queue(client: TestClient) -> None:
    response = client.post("/queues/never-used/pause")
    assert response.status_code == 404


def test_workers_listed(client: TestClient, worker: taskq.Worker) -> None:
    listed = wait_until(lambda: [w for w in client.get("/workers").json()
                                 if w["id"] == worker.id], message="worker listed")
    assert listed[0]["state"] in ("idle", "busy")
    assert listed[0]["concurrency"] == 2


def test_resize_worker(client: TestClient, worker: taskq.Worker) -> None:
    response = client.post(f"/workers/{worker.id}/resize", json={"concurrency": 3})
    assert response.status_code == 202
    wait_until(lambda: worker.concurrency == 3, message="worker resized to 3 slots")


def test_resize_unknown_worker(client: TestClient) -> None:
    response = client.post("/workers/ghost/resize", json={"concurrency": 3})
    assert response.status_code == 404
    assert response.json()["error"] == "worker_not_found"


def test_resize_offline_worker(client: TestClient, engine: taskq.App) -> None:
    stopped = taskq.Worker(engine, ["default"], concurrency=1)
    stopped.start()
    stopped.stop(grace_s=0.1)
    response = client.post(f"/workers/{stopped.id}/resize", json={"concurrency": 2})
    assert response.status_code == 409
    assert response.json()["error"] == "worker_offline"


def test_resize_invalid_size(client: TestClient, worker: taskq.Worker) -> None:
    response = client.post(f"/workers/{worker.id}/resize", json={"concurrency": 0})
    assert response.status_code == 422


# Cancel.

def test_cancel_scheduled_task(client: TestClient) -> None:
    task_id = enqueue(client, delay_s=60)["id"]
    response = client.post(f"/tasks/{task_id}/cancel")
    assert response.status_code == 200
    assert response.json()["outcome"] == "cancelled"
    assert task_state(client, task_id) == "cancelled"


def test_cancel_twice_conflicts(client: TestClient) -> None:
    task_id = enqueue(client, delay_s=60)["id"]
    client.post(f"/tasks/{task_id}/cancel")
    response = client.post(f"/tasks/{task_id}/cancel")
    assert response.status_code == 409
    assert "is cancelled" in response.json()["message"]


def test_cancel_running_task(client: TestClient, worker: taskq.Worker) -> None:
    task_id = client.post("/tasks", json={"name": "wait_for_cancel", "args": [10]}).json()["id"]
    wait_until(lambda: task_state(client, task_id) == "active", message="task running")
    response = client.post(f"/tasks/{task_id}/cancel")
    assert response.status_code == 202
    assert response.json()["outcome"] == "requested"
    wait_until(lambda: task_state(client, task_id) == "succeeded", message="task stopped")
    assert client.get(f"/tasks/{task_id}").json()["result"] == "stopped"


def test_cancel_unknown_task(client: TestClient) -> None:
    enqueue(client)
    assert client.post("/tasks/ghost/cancel").status_code == 404


# Dead letters.

def make_dead(client: TestClient, count: int) -> list[str]:
    ids = [client.post("/tasks", json={"name": "explode", "args": [f"boom {i}"]}).json()["id"]
           for i in range(count)]
    for task_id in ids:
        wait_until(lambda t=task_id: task_state(client, t) == "dead", message="task dead")
    return ids


def test_dead_letters_listed(client: TestClient, worker: taskq.Worker) -> None:
    ids = make_dead(client, 2)
    page = client.get("/queues/default/dead").json()
    groups = client.get("/queues/default/dead/groups").json()
    assert sorted(t["id"] for t in page["tasks"]) == sorted(ids)
    assert page["tasks"][0]["error"]["type"] == "ValueError"
    assert len(groups) == 1
    assert groups[0]["count"] == 2


def test_requeue_dead_task(client: TestClient, worker: taskq.Worker) -> None:
    [task_id] = make_dead(client, 1)
    worker.stop(grace_s=0.5)
    response = client.post("/queues/default/dead/requeue", json={"task_ids": [task_id]})
    assert response.json() == {"queue": "default", "count": 1}
    assert task_state(client, task_id) == "ready"


def test_purge_needs_confirm(client: TestClient, worker: taskq.Worker) -> None:
    [task_id] = make_dead(client, 1)
    response = client.post("/queues/default/dead/purge")
    assert response.status_code == 400
    assert response.json()["error"] == "confirmation_required"
    assert task_state(client, task_id) == "dead"


def test_purge_with_confirm(client: TestClient, worker: taskq.Worker) -> None:
    [task_id] = make_dead(client, 1)
    response = client.post("/queues/default/dead/purge", params={"confirm": "true"})
    assert response.json()["count"] == 1
    assert client.get(f"/tasks/{task_id}").status_code == 404


# Protocol, auth and failures.

def test_unknown_path_json_error(client: TestClient) -> None:
    response = client.get("/no/such/endpoint")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_wrong_method_json_error(client: TestClient) -> None:
    response = client.delete("/stats")
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"


def test_token_required(engine: taskq.App) -> None:
    with TestClient(create_app(engine, token="s3cret")) as client:
        missing = client.get("/stats")
        wrong = client.get("/stats", headers={"Authorization": "Bearer nope"})
        right = client.get("/stats", headers={"Authorization": "Bearer s3cret"})
        health = client.get("/health")
    assert missing.status_code == 401
    assert wrong.status_code == 401
    assert right.status_code == 200
    assert health.status_code == 200


def test_bind_without_token_rejected() -> None:
    with pytest.raises(taskq.ConfigurationError, match="TASKQ_API_TOKEN"):
        check_bind("0.0.0.0", None)
    check_bind("0.0.0.0", "s3cret")
    check_bind("127.0.0.2", None)
    check_bind("::1", None)


def test_cli_refuses_public_bind() -> None:
    result = CliRunner().invoke(cli, ["api", "--host", "0.0.0.0", "--redis-url",
                                      "redis://127.0.0.1:1/0"], env={"TASKQ_API_TOKEN": ""})
    assert result.exit_code == 2
    assert "without a token" in result.output


def test_redis_down_is_503() -> None:
    engine = taskq.App(f"redis://127.0.0.1:{free_port()}/0")
    with TestClient(create_app(engine)) as client:
        stats = client.get("/stats")
        health = client.get("/health")
    assert stats.status_code == 503
    assert stats.json()["error"] == "redis_unavailable"
    assert health.status_code == 503


def test_openapi_document_current(client: TestClient) -> None:
    committed = OPENAPI_PATH.read_text(encoding="utf-8")
    assert committed == openapi_json(), "run: python -m taskq.api docs/openapi.json"
    assert client.get("/openapi.json").json() == json.loads(committed)


# Event stream.

def test_events_from_start(client: TestClient) -> None:
    ids = [enqueue(client, queue=queue)["id"] for queue in ("a", "b", "a")]
    response = client.get("/events", params={"from": "start", "limit": 3, "workers": "false"})
    messages = sse_messages(response.text)
    data = [json.loads(m["data"]) for m in messages]
    assert response.headers["content-type"].startswith("text/event-stream")
    assert [d["task_id"] for d in data] == ids
    assert {d["kind"] for d in data} == {"enqueued"}


def test_events_resume_across_queues(client: TestClient) -> None:
    first = [enqueue(client, queue=queue)["id"] for queue in ("a", "b", "a", "b")]
    head = sse_messages(client.get("/events", params={
        "from": "start", "limit": 2, "workers": "false"}).text)
    later = [enqueue(client, queue=queue)["id"] for queue in ("b", "a")]
    rest = sse_messages(client.get("/events", params={"limit": 4, "workers": "false"},
                                   headers={"Last-Event-ID": head[-1]["id"]}).text)
    tail = sse_messages(client.get("/events", params={"timeout_s": 0.3, "workers": "false"},
                                   headers={"Last-Event-ID": rest[-1]["id"]}).text)
    seen = [json.loads(m["data"])["task_id"] for m in head + rest]
    assert seen == first + later
    assert tail == []


def test_events_cursor_names_streams(client: TestClient) -> None:
    enqueue(client, queue="a")
    [message] = sse_messages(client.get("/events", params={
        "from": "start", "limit": 1, "workers": "false"}).text)
    assert set(decode_cursor(message["id"], "id")) == {"a"}


def test_events_queue_filter(client: TestClient) -> None:
    enqueue(client, queue="a")
    wanted = enqueue(client, queue="b")["id"]
    response = client.get("/events", params={"from": "start", "queues": "b",
                                             "timeout_s": 0.3, "workers": "false"})
    assert [json.loads(m["data"])["task_id"] for m in sse_messages(response.text)] == [wanted]


def test_events_close_at_timeout(client: TestClient) -> None:
    response = client.get("/events", params={"timeout_s": 0.3, "workers": "false"})
    assert response.status_code == 200
    assert sse_messages(response.text) == []


def test_events_bad_last_event_id(client: TestClient) -> None:
    response = client.get("/events", headers={"Last-Event-ID": "42"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_cursor"


def test_events_bad_queue_name(client: TestClient) -> None:
    response = client.get("/events", params={"queues": ",,"})
    assert response.status_code == 422


# A real server.

@pytest.fixture
def api_server(real_redis_url: str, tmp_path: Path) -> Iterator[str]:
    """A ``taskq api`` process on a free loopback port; yields its base URL."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TASKQ_API_TOKEN": ""}
    log_path = tmp_path / "api.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "taskq", "api", "--app", "taskq.demo_tasks",
             "--redis-url", real_redis_url, "--port", str(port)],
            cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if process.poll() is not None:
            pytest.fail(f"taskq api exited early:\n{log_path.read_text()}")
        try:
            return httpx.get(base + "/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(healthy, timeout_s=20, interval_s=0.1, message="taskq api to answer")
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def read_events(lines: Iterator[str], count: int) -> list[dict[str, Any]]:
    """Read ``count`` SSE messages from the lines of an open streaming response."""
    messages: list[dict[str, Any]] = []
    fields: dict[str, str] = {}
    for line in lines:
        if line == "":
            if "data" in fields:
                messages.append({"id": fields["id"], **json.loads(fields["data"])})
                if len(messages) == count:
                    return messages
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value
    return messages


def demo_task(path: str) -> dict[str, Any]:
    """A request body for the task of ``taskq.demo_tasks``; no worker runs it here."""
    return {"name": "demo.analyze_file", "args": [path]}


def test_server_stream_resumes(api_server: str) -> None:
    params = {"workers": "false"}
    timeout = httpx.Timeout(10.0)
    with httpx.Client(base_url=api_server, timeout=timeout) as http:
        with http.stream("GET", "/events", params=params) as live:
            lines = live.iter_lines()
            # The first line arrives once the server has pinned its offsets at "now".
            assert next(lines) == "retry: 1000"
            ids = [http.post("/tasks", json=demo_task(f"first{i}.py")).json()["id"]
                   for i in range(3)]
            got = read_events(lines, 2)
        # Disconnected after two events; two more are enqueued while no one listens.
        ids += [http.post("/tasks", json=demo_task(f"later{i}.py")).json()["id"]
                for i in range(2)]
        with http.stream("GET", "/events", params={**params, "limit": "3"},
                         headers={"Last-Event-ID": got[-1]["id"]}) as resumed:
            got += read_events(resumed.iter_lines(), 3)
    assert [e["task_id"] for e in got] == ids
    assert {e["kind"] for e in got} == {"enqueued"}


def test_readme_curl_example(api_server: str) -> None:
    """The curl calls of the README's API section, against a real server."""
    curl = Path("/usr/bin/curl")
    if not curl.exists():
        pytest.skip("curl is not installed")
    enqueue_run = subprocess.run(
        [str(curl), "-sS", "-X", "POST", f"{api_server}/tasks", "-H",
         "Content-Type: application/json", "-d",
         '{"name": "demo.analyze_file", "args": ["taskq/app.py"]}'],
        capture_output=True, text=True, timeout=10, check=True)
    task_id = json.loads(enqueue_run.stdout)["id"]
    show = subprocess.run([str(curl), "-sS", f"{api_server}/tasks/{task_id}"],
                          capture_output=True, text=True, timeout=10, check=True)
    stream = subprocess.run(
        [str(curl), "-sSN", f"{api_server}/events?from=start&limit=1&workers=false"],
        capture_output=True, text=True, timeout=10, check=True)
    assert json.loads(show.stdout)["state"] == "ready"
    assert json.loads(sse_messages(stream.stdout)[0]["data"])["task_id"] == task_id
