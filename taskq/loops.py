"""The shape every background loop shares: start, stop, and a ``tick`` that tests call directly.

A loop runs ``tick`` in a daemon thread; ``tick`` returns how long to wait before the next one.
Errors inside a tick are logged with the loop's ids and retried with a capped backoff, so a
Redis outage slows a loop down but never ends it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

log = logging.getLogger(__name__)

ERROR_BACKOFF_MIN_S = 0.1
ERROR_BACKOFF_MAX_S = 5.0


class Loop:
    """A background activity; subclasses implement ``tick`` and set ``name``."""

    name = "loop"

    def __init__(self, owner_id: str) -> None:
        self.owner_id = owner_id
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures = 0
        # The longest pause between two failed ticks, in seconds; a loop whose work must not
        # lapse for long (the heartbeat) lowers it.
        self.error_backoff_max_s = ERROR_BACKOFF_MAX_S
        # Log under the subclass's module (taskq.promoter, taskq.reaper, ...).
        self.log = logging.getLogger(type(self).__module__)

    def tick(self) -> float:
        """Do one round of work; return the seconds to wait before the next round."""
        raise NotImplementedError

    def wait(self, seconds: float) -> None:
        """Wait between ticks; subclasses that block in Redis override this."""
        self._stop.wait(seconds)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"taskq-{self.name}",
                                        daemon=True)
        self._thread.start()
        self.log.info("%s started owner=%s", self.name, self.owner_id)

    def request_stop(self) -> None:
        """Ask the loop to end after its current tick or wait; returns at once."""
        self._stop.set()

    def stop(self, join_s: float = 5.0) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(join_s)
        self._thread = None
        self.log.info("%s stopped owner=%s", self.name, self.owner_id)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                pause = self.tick()
                if self._failures:
                    self.log.info("%s recovered owner=%s after=%d failures", self.name,
                                  self.owner_id, self._failures)
                self._failures = 0
            except Exception as exc:  # noqa: BLE001 - a loop must survive any Redis error
                self._failures += 1
                pause = min(ERROR_BACKOFF_MIN_S * 2 ** (self._failures - 1),
                            self.error_backoff_max_s)
                log_error(self.log, f"{self.name} tick failed", exc, owner=self.owner_id,
                          failures=self._failures, retry_in_s=round(pause, 3))
            if pause > 0:
                try:
                    self.wait(pause)
                except Exception as exc:  # noqa: BLE001 - a wait that blocks in Redis fails too
                    log_error(self.log, f"{self.name} wait failed", exc, owner=self.owner_id)
                    self._stop.wait(pause)


def log_error(logger: logging.Logger, what: str, exc: BaseException, **ids: Any) -> None:
    """Log a caught error once per call with its ids; repeated failures log at DEBUG traceback."""
    details = " ".join(f"{k}={v}" for k, v in ids.items())
    # TODO: repeats are not rate-limited: a long outage logs one warning per retry.
    logger.warning("%s %s error=%s: %s", what, details, type(exc).__name__, exc)
    logger.debug("%s traceback", what, exc_info=exc)
