"""The engine's Lua scripts, loaded once, with typed wrappers that build KEYS and ARGV.

Each ``*.lua`` file in this folder is one atomic operation and starts with a header giving its
purpose, invariant, KEYS, ARGV (with units) and return value. ``_lib.lua`` holds helpers that
the loader puts in front of every script. Python code calls a script only through ``Scripts``;
nothing else passes keys to Redis scripts.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

from redis.commands.core import Script

from taskq.keys import GlobalKeys, QueueKeys
from taskq.metrics import HISTOGRAM_BOUNDS_US

SCRIPT_NAMES = (
    "enqueue", "claim", "fail", "promote", "reap", "release", "extend", "trim", "cancel",
    "requeue", "purge", "set_paused", "progress", "heartbeat", "reap_workers", "snapshot",
)


def read_script(name: str) -> str:
    """Return the full source Redis runs for ``name``: the shared helpers, then the script."""
    folder = resources.files(__package__)
    lib = (folder / "_lib.lua").read_text(encoding="utf-8")
    lib = lib.replace("__HIST_BOUNDS_US__", ", ".join(str(b) for b in HISTOGRAM_BOUNDS_US))
    body = (folder / f"{name}.lua").read_text(encoding="utf-8")
    return f"{lib}\n{body}"


def script_path(name: str) -> str:
    """Return the path of a script's source file, for display in notebooks and docs."""
    return str(resources.files(__package__) / f"{name}.lua")


@dataclass(frozen=True)
class ClaimedTask:
    """One task returned by the claim script."""

    queue: str
    task_id: str
    record_json: str
    args_json: str | None


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _split_at_bar(items: list[Any]) -> tuple[list[str], list[str]]:
    words = [_text(item) for item in items]
    bar = words.index("|")
    return words[:bar], words[bar + 1:]


class Scripts:
    """Registered scripts of one Redis client; each method runs one script (one round trip)."""

    def __init__(self, client: Any, events_max_len: int) -> None:
        self._client = client
        self._events_max_len = str(events_max_len)
        self._scripts: dict[str, Script] = {
            name: client.register_script(read_script(name)) for name in SCRIPT_NAMES
        }

    def run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """Run a script by name; redis-py sends EVALSHA and falls back to EVAL after NOSCRIPT."""
        return self._scripts[name](keys=keys, args=args, client=self._client)

    # Producers.

    def enqueue(self, now: str, keys: QueueKeys, items: list[tuple[str, str, str, str, str]]
                ) -> tuple[int, list[int]]:
        """Write new tasks; each item is (id, record JSON, args JSON, delay_ms, eta_ms).

        Returns the server time in ms and, per item, 1 when created or 0 when the id existed.
        """
        argv: list[Any] = [now, self._events_max_len, keys.queue]
        for item in items:
            argv.extend(item)
        out = self.run("enqueue", [
            keys.tasks, keys.args, keys.scheduled, keys.counters, keys.rate, keys.events,
            keys.wake, keys.promoter_wake, keys.config, *keys.ready_all(),
        ], argv)
        return int(out[0]), [int(x) for x in out[1:]]

    # Workers.

    def claim(self, now: str, worker: str, lease_ms: int, want: int,
              queues: list[QueueKeys], settled: list[tuple[str, str, str, str, int]]
              ) -> tuple[list[ClaimedTask], list[str]]:
        """Settle successes and claim up to ``want`` tasks from ``queues`` in order.

        ``settled`` items are (queue, task id, lease token, result JSON, result_ttl_ms); their
        queues must be among ``queues``. Returns the claimed tasks and the fenced ids.
        """
        keys: list[str] = []
        for q in queues:
            keys.extend(q.ready_all())
            keys.extend([q.active, q.tasks, q.args, q.config, q.counters, q.wait_hist,
                         q.events, q.wake, q.results, q.finished, q.rate, q.run_hist, q.dead])
        index = {q.queue: i + 1 for i, q in enumerate(queues)}
        argv: list[Any] = [now, worker, lease_ms, want, self._events_max_len, len(queues)]
        argv.extend(q.queue for q in queues)
        argv.append(len(settled))
        for queue, task_id, token, result_json, ttl_ms in settled:
            argv.extend([index[queue], task_id, token, result_json, ttl_ms])
        claimed_raw, fenced_raw = self.run("claim", keys, argv)
        claimed = []
        for i in range(0, len(claimed_raw), 4):
            block, task_id, record, args = claimed_raw[i:i + 4]
            claimed.append(ClaimedTask(
                queue=queues[int(block) - 1].queue,
                task_id=_text(task_id),
                record_json=_text(record),
                args_json=None if args is None or args is False else _text(args),
            ))
        return claimed, [_text(x) for x in fenced_raw]

    def fail(self, now: str, keys: QueueKeys, worker: str, task_id: str, token: str,
             error_json: str, delay_ms: int) -> str:
        """Record a failed attempt; ``delay_ms`` < 0 sends the task dead, a cancel request ends
        it cancelled. Returns the outcome."""
        return _text(self.run("fail", [
            keys.active, keys.tasks, keys.scheduled, keys.dead, keys.counters, keys.rate,
            keys.run_hist, keys.events, keys.promoter_wake, keys.wake, keys.config,
            *keys.ready_all(), keys.finished,
        ], [now, worker, self._events_max_len, keys.queue, task_id, token, error_json, delay_ms]))

    def release(self, now: str, keys: QueueKeys, worker: str,
                held: list[tuple[str, str]]) -> list[str]:
        """Return held tasks (id, token) to the front of ready; returns the ids released."""
        argv: list[Any] = [now, self._events_max_len, keys.queue, worker]
        for task_id, token in held:
            argv.extend([task_id, token])
        out = self.run("release", [
            keys.active, keys.tasks, keys.events, keys.wake, keys.counters, keys.config,
            *keys.ready_all(),
        ], argv)
        return [_text(x) for x in out]

    def extend(self, now: str, keys: QueueKeys, lease_ms: int,
               held: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
        """Extend leases of held tasks; returns (lost ids, ids with a cancel request)."""
        argv: list[Any] = [now, lease_ms]
        for task_id, token in held:
            argv.extend([task_id, token])
        return _split_at_bar(self.run("extend", [keys.active, keys.tasks], argv))

    def progress(self, now: str, keys: QueueKeys, task_id: str, token: str,
                 fraction: float, message: str) -> bool:
        """Store progress on a held task; False when the lease is no longer this worker's."""
        out = self.run("progress", [keys.tasks, keys.events], [
            now, self._events_max_len, keys.queue, task_id, token, repr(fraction), message])
        return bool(int(out))

    def heartbeat(self, now: str, keys: GlobalKeys, worker: str, info_json: str,
                  event: str = "", detail: str = "") -> str | None:
        """Refresh the worker record; returns a pending control command JSON, if any."""
        out = self.run("heartbeat", [keys.workers, keys.worker_info, keys.worker_control,
                                     keys.events],
                       [now, self._events_max_len, worker, info_json, event, detail])
        return None if out is None else _text(out)

    # Background loops.

    def promote(self, now: str, keys: QueueKeys, batch: int) -> tuple[int, int, int]:
        """Move due tasks to ready; returns (moved, next due ms or -1, server now ms)."""
        out = self.run("promote", [
            keys.scheduled, keys.tasks, keys.events, keys.wake, keys.counters, keys.config,
            keys.dead, *keys.ready_all(),
        ], [now, self._events_max_len, keys.queue, batch])
        return int(out[0]), int(out[1]), int(out[2])

    def reap(self, now: str, keys: QueueKeys, batch: int) -> tuple[list[str], list[str]]:
        """Recover tasks with expired leases; returns (recovered ids, ids sent dead)."""
        return _split_at_bar(self.run("reap", [
            keys.active, keys.tasks, keys.events, keys.wake, keys.counters, keys.config,
            keys.dead, keys.rate, *keys.ready_all(),
        ], [now, self._events_max_len, keys.queue, batch]))

    def reap_workers(self, now: str, keys: GlobalKeys, dead_after_ms: int,
                     retention_ms: int) -> tuple[list[str], list[str]]:
        """Mark silent workers offline and remove old ones; returns (offline, removed) ids."""
        return _split_at_bar(self.run("reap_workers", [
            keys.workers, keys.worker_info, keys.worker_control, keys.events,
        ], [now, self._events_max_len, dead_after_ms, retention_ms]))

    def trim(self, now: str, keys: QueueKeys, dead_retention_ms: int, dead_cap: int,
             rate_window_s: int, batch: int) -> tuple[int, int, int]:
        """Apply retention; returns (finished records expired, dead trimmed, rate fields)."""
        out = self.run("trim", [
            keys.finished, keys.dead, keys.tasks, keys.args, keys.results, keys.counters,
            keys.rate, keys.events,
        ], [now, dead_retention_ms, dead_cap, rate_window_s, batch, self._events_max_len,
            keys.queue])
        return int(out[0]), int(out[1]), int(out[2])

    # Control.

    def cancel(self, now: str, keys: QueueKeys, task_id: str, ttl_ms: int) -> str:
        return _text(self.run("cancel", [
            keys.tasks, keys.scheduled, keys.finished, keys.counters, keys.events,
            *keys.ready_all(),
        ], [now, self._events_max_len, keys.queue, task_id, ttl_ms]))

    def requeue(self, now: str, keys: QueueKeys, task_ids: list[str], delay_ms: int) -> list[str]:
        out = self.run("requeue", [
            keys.dead, keys.tasks, keys.scheduled, keys.events, keys.wake, keys.counters,
            keys.config, keys.promoter_wake, *keys.ready_all(),
        ], [now, self._events_max_len, keys.queue, delay_ms, *task_ids])
        return [_text(x) for x in out]

    def purge(self, now: str, keys: QueueKeys, task_ids: list[str]) -> list[str]:
        out = self.run("purge", [
            keys.dead, keys.tasks, keys.args, keys.results, keys.counters, keys.events,
        ], [now, self._events_max_len, keys.queue, *task_ids])
        return [_text(x) for x in out]

    def set_paused(self, now: str, keys: QueueKeys, paused: bool) -> bool:
        out = self.run("set_paused", [keys.config, keys.events, keys.wake, *keys.ready_all()],
                       [now, self._events_max_len, keys.queue, "1" if paused else "0"])
        return bool(int(out))

    def snapshot(self, now: str, global_keys: GlobalKeys | None, queues: list[QueueKeys],
                 rate_seconds: int, active_limit: int) -> Any:
        """Read workers and queues; ``global_keys=None`` reads the queues only (Redis Cluster)."""
        keys = [] if global_keys is None else [global_keys.workers, global_keys.worker_info]
        for q in queues:
            keys.extend(q.ready_all())
            keys.extend([q.scheduled, q.active, q.dead, q.finished, q.counters, q.rate,
                         q.wait_hist, q.run_hist, q.config, q.events, q.tasks])
        worker_keys = 0 if global_keys is None else 2
        return self.run("snapshot", keys, [now, rate_seconds, active_limit, worker_keys])
