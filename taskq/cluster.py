"""Redis Cluster: the engine's multi-queue reads, made one hash slot at a time.

All keys of one queue share the hash tag ``{<queue>}`` and so one slot. Two queues usually sit
in different slots, often on different nodes, and a cluster rejects any command or script whose
keys span slots (redis-py raises before sending). On a cluster (``App.cluster``), the few
engine calls that span queues go through this module instead: blocking pops and stream reads
here, claims in ``Worker._claim``, the snapshot in ``take_snapshot``.

A blocking call cannot wait on several slots at once, so these helpers first check every key
without blocking, then block on one key for at most ``SLICE_S`` and move on to the next. A push
to any key is therefore seen within about ``SLICE_S``; the cost is one command per key and
slice while idle.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taskq.app import App

# Maximum time, in seconds, that one blocking command waits on one key before the next key's
# turn.
SLICE_S = 0.05
# Redis reads a BLPOP timeout of 0 as "forever" and XREAD BLOCK 0 likewise.
MIN_BLOCK_S = 0.001


def blpop_any(app: App, keys: Sequence[str], timeout_s: float) -> Any:
    """BLPOP on ``keys`` for up to ``timeout_s`` seconds; returns (key, value) or None.

    On a single server this is one BLPOP. On a cluster the keys are polled as described in the
    module docstring, so the wait ends within about ``SLICE_S`` of a push to any of them.
    """
    client = app.client
    if not app.cluster or len(keys) <= 1:
        return client.blpop(list(keys), timeout=max(timeout_s, MIN_BLOCK_S))
    deadline = time.monotonic() + timeout_s
    turn = 0
    while True:
        for key in keys:
            value = client.lpop(key)
            if value is not None:
                return key, value
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        key = keys[turn % len(keys)]
        turn += 1
        popped = client.blpop([key], timeout=max(min(SLICE_S, remaining), MIN_BLOCK_S))
        if popped is not None:
            return popped


def xread_each(app: App, offsets: dict[str, str], count: int, block_ms: int | None
               ) -> list[Any]:
    """XREAD the streams in ``offsets`` one at a time; returns [stream, entries] pairs.

    Without ``block_ms`` every stream is read once. With it, the reads repeat, blocking on one
    stream per ``SLICE_S``, until some stream has entries or ``block_ms`` has passed.
    """
    client = app.client
    streams = list(offsets)
    deadline = None if block_ms is None else time.monotonic() + block_ms / 1000
    turn = 0
    while True:
        reply: list[Any] = []
        for stream in streams:
            reply.extend(client.xread({stream: offsets[stream]}, count=count) or [])
        if reply or deadline is None or not streams:
            return reply
        remaining_s = deadline - time.monotonic()
        if remaining_s <= 0:
            return []
        stream = streams[turn % len(streams)]
        turn += 1
        block = max(round(min(SLICE_S, remaining_s) * 1000), 1)
        blocked = client.xread({stream: offsets[stream]}, count=count, block=block)
        if blocked:
            return list(blocked)
