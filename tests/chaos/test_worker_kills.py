"""Kill worker processes at random under load and count every task.

20,000 short tasks run through 4 ``taskq worker`` processes of 4 slots each. A driver sends
SIGKILL to a random worker each time the run passes another sixth of the tasks (at least 5
kills) and starts a replacement at once. Each task appends its id to a run log, so runs that
happened twice are counted exactly. ``FAST_SETTINGS`` apply: a 1 s lease and a 0.1 s reaper,
so a killed worker's tasks are back within about 1.1 s.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

import taskq
from tests.cases.figures import report
from tests.cases.support import WorkerProcess, census, mirror_app, text
from tests.redis_servers import RedisServer
from tests.sample_tasks import app as sample_app

pytestmark = pytest.mark.chaos

TASKS = 20_000
WORKERS = 4
CONCURRENCY = 4
KILL_AT = [k / 6 for k in range(1, 6)] + [0.9]  # fractions of the run log
RUN_LOG = "chaos:runs"
RUN_TIMEOUT_S = 240


@dataclass
class Kill:
    """One SIGKILL: when, which worker, and the tasks it held at that moment."""

    at: float
    worker_id: str
    held: list[str]
    recovered_at: float | None = None


@dataclass
class Driver:
    """Starts workers, kills them at the planned points, restarts them, and tracks recovery."""

    url: str
    start_worker: Callable[..., WorkerProcess]
    rng: random.Random
    workers: dict[int, WorkerProcess] = field(default_factory=dict)
    generations: Counter[int] = field(default_factory=Counter)
    kills: list[Kill] = field(default_factory=list)

    def start(self, slot: int) -> None:
        self.generations[slot] += 1
        self.workers[slot] = self.start_worker(
            self.url, concurrency=CONCURRENCY, worker_id=f"w{slot}-g{self.generations[slot]}")

    def kill_one(self, app: taskq.App) -> None:
        slot = self.rng.randrange(WORKERS)
        victim = self.workers[slot]
        victim.kill()
        held = tasks_held_by(app, victim.id or "")
        self.kills.append(Kill(time.monotonic(), victim.id or "", held))
        self.start(slot)

    def check_recoveries(self, app: taskq.App) -> None:
        """Mark kills whose held tasks are all out of the dead worker's hands."""
        for kill in self.kills:
            if kill.recovered_at is None and not tasks_held_by(app, kill.worker_id, kill.held):
                kill.recovered_at = time.monotonic()


def tasks_held_by(app: taskq.App, worker_id: str, among: list[str] | None = None) -> list[str]:
    """Ids in the active set whose lease belongs to ``worker_id``."""
    keys = app.keys.queue("default")
    ids = among if among is not None else [text(x) for x in app.client.zrange(keys.active, 0, -1)]
    if not ids:
        return []
    active = app.client.zmscore(keys.active, ids)
    records = app.client.hmget(keys.tasks, ids)
    held = []
    for task_id, score, raw in zip(ids, active, records):
        if score is not None and raw is not None and f'"worker":"{worker_id}"' in text(raw):
            held.append(task_id)
    return held


def test_random_kills_lose_nothing(redis_server: RedisServer,
                                   worker_processes: Callable[..., WorkerProcess]) -> None:
    """Every task ends succeeded, in one structure, with duplicates within kills x slots."""
    seed = random.randrange(2**32)
    app = mirror_app(sample_app, redis_server.url)
    ids = [f"k{i:05d}" for i in range(TASKS)]
    for start in range(0, TASKS, 2000):
        app.enqueue_many(taskq.Call("record_run", (RUN_LOG,), task_id=task_id)
                         for task_id in ids[start:start + 2000])
    driver = Driver(redis_server.url, worker_processes, random.Random(seed))
    started = time.monotonic()
    for slot in range(WORKERS):
        driver.start(slot)

    deadline = started + RUN_TIMEOUT_S
    plan = list(KILL_AT)
    finished = 0
    while time.monotonic() < deadline:
        finished = app.client.zcard(app.keys.queue("default").finished)
        if plan and app.client.llen(RUN_LOG) >= plan[0] * TASKS:
            plan.pop(0)
            driver.kill_one(app)
        driver.check_recoveries(app)
        if finished == TASKS and not plan and all(k.recovered_at for k in driver.kills):
            break
        time.sleep(0.05)
    elapsed_s = time.monotonic() - started

    runs = Counter(text(x) for x in app.client.lrange(RUN_LOG, 0, -1))
    after = census(app.client, app.keys.queue("default"))
    duplicates = sum(runs.values()) - len(runs)
    lost = TASKS - after.count("finished")
    recovery_s = [k.recovered_at - k.at for k in driver.kills if k.recovered_at is not None]
    report("worker kills", seed=seed, tasks=TASKS, kills=len(driver.kills),
           restarts=len(driver.kills), lost=lost, duplicates=duplicates,
           held_at_kills=sum(len(k.held) for k in driver.kills),
           recovery_max_s=round(max(recovery_s, default=0.0), 3),
           recovery_mean_s=round(sum(recovery_s) / max(len(recovery_s), 1), 3),
           elapsed_s=round(elapsed_s, 1))

    assert len(driver.kills) >= 5
    assert lost == 0, f"seed={seed}"
    assert after.count("ready") == 0
    assert after.count("active") == 0
    assert after.count("dead") == 0
    assert after.in_several() == {}
    assert set(runs) == set(ids)
    assert duplicates <= len(driver.kills) * CONCURRENCY, f"seed={seed}"
    assert len(recovery_s) == len(driver.kills)
    for task_id in ids[:: TASKS // 50]:
        assert app.get(task_id).state is taskq.State.SUCCEEDED
