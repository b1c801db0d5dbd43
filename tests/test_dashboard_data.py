"""The dashboard's data: what its widgets show equals the snapshot read at the same refresh.

These tests build the real views (ipywidgets and plotly objects work without a browser) and
drive the model's ``refresh`` by hand, so each comparison is against the exact snapshot that
refresh read. The browser test checks that the same values reach the page.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from taskq_widgets.activity import ALL, TaskPanel, filter_events
from taskq_widgets.dashboard import Dashboard, open_app
from taskq_widgets.dead import DeadLettersView
from taskq_widgets.frame import PRIORITIES, Frame
from taskq_widgets.model import DashboardModel
from taskq_widgets.session import PageSession, SessionWatch
from taskq_widgets.views import HeaderView

import taskq
from taskq.dashboard_server import choose_token, dashboard_url, is_loopback
from taskq.playground import Burst, LoadGenerator, WorkerPool, register_work_task
from tests.conftest import FAST_SETTINGS, wait_until
from tests.helpers import counters, depths, worker_running
from tests.redis_servers import RedisServer, redis_server, redis_servers  # noqa: F401

SAMPLE_S = 0.5
"""The sampling period of the hard-kill check: one dashboard refresh every 500 ms."""


def tiles_shown(html: str) -> dict[str, str]:
    """Tile name -> the raw value the tiles widget carries in ``data-value``."""
    return dict(re.findall(r'data-tile="(\w+)" data-value="([^"]*)"', html))


def attr(html: str, name: str) -> int:
    """An integer ``data-<name>`` attribute from a view's HTML."""
    match = re.search(rf'data-{name}="(\d+)"', html)
    assert match is not None, f"data-{name} missing from {html[:200]}"
    return int(match.group(1))


def summed(snapshot: taskq.Snapshot, name: str) -> list[int]:
    lists = [getattr(q, name) for q in snapshot.queues.values()]
    return [sum(values) for values in zip(*lists)]


def figure_mismatches(dash: Dashboard, frame: Frame) -> list[str]:
    """Every figure the widgets show that differs from the frame's own snapshot."""
    snap = frame.snapshot
    shown = dash.charts.shown()
    out = []
    for kind, name in (("e", "enqueued"), ("s", "succeeded"), ("r", "retried"), ("d", "dead")):
        if shown[f"throughput:{name}"] != snap.rate_series(kind)[:-1]:
            out.append(f"throughput {name}")
    for priority in PRIORITIES:
        depth = sum(q.ready_by_priority[priority] for q in snap.queues.values())
        if shown[f"depth:{priority}"][-1:] != [depth]:
            out.append(f"depth p{priority}: {shown[f'depth:{priority}'][-1:]} != {depth}")
    if shown["wait_hist"] != summed(snap, "wait_hist"):
        out.append("wait histogram")
    if shown["run_hist"] != summed(snap, "run_hist"):
        out.append("run histogram")
    tiles = tiles_shown(dash.tiles.widget.value)
    expected = {"enqueued": snap.total("enqueued"), "ready": snap.ready,
                "scheduled": snap.scheduled, "active": snap.active,
                "succeeded": snap.total("succeeded"), "retrying": snap.retrying,
                "dead": snap.dead}
    out += [f"tile {k}: {tiles.get(k)} != {v}" for k, v in expected.items()
            if tiles.get(k) != str(v)]
    state = dash.pipeline.widget.state
    if state["active"] != snap.active or sum(state["ready"]) != snap.ready:
        out.append(f"pipeline {state['active']}/{sum(state['ready'])}")
    workers_html = dash.workers.widget.value
    if attr(workers_html, "inflight") != snap.active:
        out.append("worker detail in-flight count")
    return out


def invariant_breaks(dash: Dashboard, frame: Frame) -> list[str]:
    """Overview counts that disagree with the detail lists in one frame."""
    out = []
    on_cards = sum(len(card.tasks) for card in frame.workers) + len(frame.unowned)
    if not frame.tiles["active"] == len(frame.in_flight) == on_cards:
        out.append(f"seq {frame.seq}: active {frame.tiles['active']}, in flight "
                   f"{len(frame.in_flight)}, on cards {on_cards}")
    busy_cards = sum(1 for card in frame.workers if card.state == "busy")
    live_holders = {row.worker for row in frame.in_flight
                    if row.worker_state not in ("offline", "unknown")}
    if not frame.busy_workers == busy_cards == len(live_holders):
        out.append(f"seq {frame.seq}: busy {frame.busy_workers}, busy cards {busy_cards}, "
                   f"live holders {len(live_holders)}")
    if attr(dash.workers.widget.value, "busy") != frame.busy_workers:
        out.append(f"seq {frame.seq}: worker view busy count")
    return out


def held_by(dash: Dashboard, worker_id: str) -> int:
    """Refresh, then count the tasks on ``worker_id``'s card."""
    frame = dash.model.refresh()
    assert frame is not None
    return sum(len(c.tasks) for c in frame.workers if c.id == worker_id)


def register_mixed_tasks(app: taskq.App) -> dict[str, Any]:
    @app.task(name="quick")
    def quick(seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    @app.task(name="broken", max_retries=1, backoff_min_s=0.05, backoff_max_s=0.05)
    def broken(kind: str) -> None:
        raise (ValueError if kind == "value" else KeyError)(f"bad input {kind} 1234")

    return {"quick": quick, "broken": broken}


def test_figures_equal_refresh_snapshot(app: taskq.App) -> None:
    """Every chart series, tile and count equals the snapshot read by the same refresh."""
    register_mixed_tasks(app)
    calls = [taskq.Call("quick", (0.05,), priority=p) for p in (1, 5, 9) for _ in range(8)]
    calls += [taskq.Call("quick", (0.01,), delay_s=0.3) for _ in range(5)]
    calls += [taskq.Call("broken", ("value",)) for _ in range(3)]
    app.enqueue_many(calls)
    dash = Dashboard(app)
    mismatches: list[str] = []
    with worker_running(app, concurrency=3):
        for _ in range(6):
            frame = dash.model.refresh()
            assert frame is not None
            mismatches += figure_mismatches(dash, frame)
            time.sleep(0.15)  # let work move between refreshes; each check is exact anyway
    assert mismatches == []


def test_tiles_match_redis_at_rest(app: taskq.App) -> None:
    """At rest the tiles equal direct reads of the queue's Redis structures."""
    register_mixed_tasks(app)
    app.enqueue_many([taskq.Call("quick", (0.0,), priority=p) for p in (2, 7)]
                     + [taskq.Call("quick", (0.0,), delay_s=60)])
    dash = Dashboard(app)
    frame = dash.model.refresh()
    assert frame is not None
    tiles = tiles_shown(dash.tiles.widget.value)
    direct = depths(app)
    assert (tiles["ready"], tiles["scheduled"], tiles["active"]) == (
        str(direct["ready"]), str(direct["scheduled"]), str(direct["active"]))
    assert tiles["enqueued"] == str(counters(app)["enqueued"])


@pytest.mark.slow
def test_killed_worker_shows_recovery(app: taskq.App) -> None:
    """After a hard kill the dashboard shows the worker offline and its tasks run elsewhere."""
    s = app.settings

    @app.task(name="long", max_retries=3)
    def long_task(seconds: float) -> str:
        time.sleep(seconds)
        return taskq.current_task().worker_id

    dash = Dashboard(app)
    assert dash.reaper is not None
    dash.reaper.start()
    worker_a = taskq.Worker(app, ["default"], 2, worker_id="A")
    worker_b = taskq.Worker(app, ["default"], 2, worker_id="B")
    try:
        worker_a.start()
        ids = [long_task.enqueue(2.5).id for _ in range(2)]
        wait_until(lambda: held_by(dash, "A") == 2, message="worker A holding both tasks")
        worker_b.start()
        worker_a.kill()
        killed_at = time.monotonic()

        samples: list[tuple[float, Frame]] = []
        breaks: list[str] = []
        deadline = killed_at + 12
        while time.monotonic() < deadline:
            frame = dash.model.refresh()
            assert frame is not None
            samples.append((time.monotonic() - killed_at, frame))
            breaks += invariant_breaks(dash, frame)
            if all(app.get(i).state is taskq.State.SUCCEEDED for i in ids) and \
                    frame.tiles["active"] == 0:
                break
            time.sleep(SAMPLE_S)
    finally:
        worker_a.stop(grace_s=0)  # returns at once after the kill; stops A if a step failed
        worker_b.stop(grace_s=0)
        dash.close()

    def card(frame: Frame, worker_id: str) -> Any:
        return next(c for c in frame.workers if c.id == worker_id)

    # Dead-worker threshold + one reaper interval + one refresh, plus 1 s for a busy machine.
    budget_s = s.worker_dead_after_s + s.reaper_interval_s + SAMPLE_S + 1.0
    offline_at = next(t for t, f in samples if card(f, "A").state == "offline")
    released_at = next(t for t, f in samples if not card(f, "A").tasks)
    final = samples[-1][1]
    assert breaks == []
    assert offline_at <= budget_s
    assert released_at <= s.lease_s + s.reaper_interval_s + SAMPLE_S + 1.0
    assert all("recovered" in [e.kind for e in taskq.task_timeline(app, i, "default")]
               for i in ids)
    assert [app.get(i).result for i in ids] == ["B", "B"]
    assert (final.busy_workers, final.tiles["active"], card(final, "A").state) == (
        0, 0, "offline")


def test_banner_while_redis_down(redis_server: RedisServer) -> None:  # noqa: F811
    """The header shows a banner while Redis is down and clears it once Redis is back."""
    app, label = open_app(redis_server.url, FAST_SETTINGS)
    model = DashboardModel(app, backend_label=label)
    header = HeaderView(model, demo=False)
    assert model.refresh() is not None
    redis_server.kill()
    down = model.refresh()
    down_html = header.widget.value
    redis_server.start()
    wait_until(model.refresh, timeout_s=10, message="a refresh after the restart")
    assert down is None
    assert 'data-banner="down"' in down_html
    assert 'data-health="ok"' in header.widget.value
    assert "data-banner" not in header.widget.value


def test_event_reads_stay_bounded(app: taskq.App) -> None:
    """A refresh reads at most its quota of events however many arrived, then only new ones."""
    register_mixed_tasks(app)
    app.enqueue_many([taskq.Call("quick", (0.0,)) for _ in range(1200)])
    model = DashboardModel(app, events_per_refresh=50)
    first = model.refresh()
    newest = [h.id for h in app.enqueue_many([taskq.Call("quick", (0.0,)) for _ in range(3)])]
    second = model.refresh()
    assert first is not None
    assert second is not None
    assert len(first.events) == 50
    assert first.events_skipped
    assert [e.task_id for e in second.events[:3]] == newest[::-1]


def test_activity_filter_and_task_panel(app: taskq.App) -> None:
    """The log filters by kind and queue; the task panel shows timeline and explanation."""
    tasks = register_mixed_tasks(app)
    handle = tasks["quick"].enqueue(0.0)
    app.enqueue("quick", (0.0,), queue="other")
    with worker_running(app):
        handle.result(timeout_s=10)
    model = DashboardModel(app)
    frame = model.refresh()
    assert frame is not None
    started = filter_events(frame.events, "default", "started", "")
    panel = TaskPanel(app)
    panel.open(handle.id)
    assert [e.task_id for e in started] == [handle.id]
    assert filter_events(frame.events, "other", ALL, "")[0].kind == "enqueued"
    assert 'data-explain="succeeded"' in panel.output.value
    assert attr(panel.output.value, "timeline") >= 3


def test_dead_group_purge_needs_confirmation(app: taskq.App) -> None:
    """Purging a dead-letter group waits for confirmation; requeue acts at once."""
    register_mixed_tasks(app)
    app.enqueue_many([taskq.Call("broken", ("value",)) for _ in range(3)]
                     + [taskq.Call("broken", ("key",)) for _ in range(2)])
    with worker_running(app, concurrency=2):
        wait_until(lambda: depths(app)["dead"] == 5, message="five dead tasks")
    model = DashboardModel(app)
    view = DeadLettersView(app, model)
    model.refresh()
    view.reload()
    counts = [attr(box.children[0].children[0].value, "count") for box in view.groups.children]
    purge_group = view.groups.children[0].children[0].children[3]
    purge_group.click()
    before_confirm = depths(app)["dead"]
    view.confirm_yes.click()
    after_purge = depths(app)["dead"]
    requeue_group = view.groups.children[0].children[0].children[2]
    requeue_group.click()
    assert counts == [3, 2]
    assert before_confirm == 5
    assert after_purge == 2
    assert depths(app)["dead"] == 0


def test_dashboard_binds_loopback_without_token() -> None:
    """Loopback needs no token; any other address gets one, and the URL carries it."""
    token = choose_token("0.0.0.0", None)
    assert [is_loopback(h) for h in ("127.0.0.1", "::1", "localhost", "0.0.0.0")] == [
        True, True, True, False]
    assert choose_token("127.0.0.1", None) is None
    assert len(token or "") >= 24
    assert dashboard_url("0.0.0.0", 8866, token).endswith(f"?token={token}")


def test_burst_rejects_bad_count() -> None:
    """A burst with an impossible count fails before anything is enqueued, naming the value."""
    with pytest.raises(taskq.ConfigurationError, match="count=0"):
        Burst(count=0).validate()


def test_load_plan_follows_seed() -> None:
    """Two generators with the same seed plan the same tasks."""
    first = LoadGenerator(taskq.App(), seed=11).plan(20)
    second = LoadGenerator(taskq.App(), seed=11).plan(20)
    assert first == second


def test_pool_resize_and_kill(app: taskq.App) -> None:
    """The demo pool grows, shrinks and loses a killed worker from its list."""
    register_work_task(app)
    pool = WorkerPool(app, concurrency=1)
    try:
        grown = pool.resize(3)
        pool.kill(grown[0])
        after_kill = pool.ids()
        shrunk = pool.resize(1)
    finally:
        pool.stop(grace_s=0)
    assert len(grown) == 3
    assert after_kill == grown[1:]
    assert shrunk == grown[1:2]


def test_silent_page_suspends_dashboard() -> None:
    """A page whose heartbeat stops suspends the dashboard, and its return resumes it."""
    calls: list[str] = []
    watch = SessionWatch(PageSession(), on_silence=lambda: calls.append("silence"),
                         on_return=lambda: calls.append("return"), silence_s=0.3, check_s=0.05)
    watch.start()
    try:
        watch._on_msg(None, {"alive": 1}, None)
        wait_until(lambda: calls, timeout_s=5, message="the silence callback")
        watch._on_msg(None, {"alive": 2}, None)
    finally:
        watch.stop()
    assert calls == ["silence", "return"]
