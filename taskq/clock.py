"""The engine's clock: "now" for scheduling comes from the Redis server.

Every Lua script takes ``now_us`` as its first argument. ``ServerClock`` passes an empty
string, so the script reads ``TIME`` on the server; all producers and workers then agree on due
times whatever their own clocks say. ``FakeClock`` passes an explicit time, so tests can move
time by hand.
"""

from __future__ import annotations

import threading
import time


class Clock:
    """Source of the ``now_us`` argument passed to every script."""

    def script_now(self) -> str:
        """Return the ``now_us`` argument: an empty string means "use the server's TIME"."""
        return ""

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class ServerClock(Clock):
    """The default: scripts read the Redis server's clock."""


class FakeClock(Clock):
    """A clock moved by the test; ``sleep`` advances it instead of waiting."""

    def __init__(self, start_s: float = 1_700_000_000.0) -> None:
        self._now_us = int(start_s * 1_000_000)
        self._lock = threading.Lock()

    def script_now(self) -> str:
        with self._lock:
            return str(self._now_us)

    def now_s(self) -> float:
        with self._lock:
            return self._now_us / 1_000_000

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now_us += int(seconds * 1_000_000)

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)
