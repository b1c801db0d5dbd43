"""The page's link to its kernel: an XSRF cookie for Voilà's unload beacon, and a heartbeat.

Voilà shuts a kernel down when the page unloads, by a beacon that carries the page's ``_xsrf``
cookie. Its page sets no such cookie, so the server would reject the beacon and the kernel (with
the poller, the demo workers and the load generator) would live on. This invisible widget sets a
random ``_xsrf`` cookie when the page has none: the beacon then submits the same value as form
field and cookie, which is what the server's double-submit check compares.

The heartbeat covers the pages that never send a beacon (a crashed browser, a lost network): the
kernel side calls ``on_silence`` once no heartbeat has arrived for ``silence_s`` seconds, and
``on_return`` when one arrives again. Browsers slow the timers of hidden tabs to about one per
minute, so ``silence_s`` must be well above 60 s.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import anywidget
import traitlets

log = logging.getLogger("taskq.dashboard")

_ESM = r"""
function render({ model, el }) {
  if (!/(^|;\s*)_xsrf=/.test(document.cookie)) {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    const token = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    document.cookie = `_xsrf=${token}; path=/; SameSite=Strict`;
  }
  el.dataset.session = "on";
  const beat = () => model.send({ alive: Date.now() });
  beat();
  const timer = setInterval(beat, model.get("interval_ms"));
  return () => clearInterval(timer);
}
export default { render };
"""


class PageSession(anywidget.AnyWidget):  # type: ignore[misc]
    """Sets the XSRF cookie and sends ``{"alive": ms}`` every ``interval_ms``."""

    _esm = _ESM
    interval_ms = traitlets.Int(10_000).tag(sync=True)


class SessionWatch:
    """Calls ``on_silence`` when the page has been silent for ``silence_s`` seconds (after at
    least one heartbeat), and ``on_return`` when it speaks again. Runs a daemon thread."""

    def __init__(self, session: PageSession, on_silence: Callable[[], None],
                 on_return: Callable[[], None], silence_s: float = 150.0,
                 check_s: float = 5.0) -> None:
        self.session = session
        self.on_silence = on_silence
        self.on_return = on_return
        self.silence_s = silence_s
        self.check_s = check_s
        self.last_seen: float | None = None
        self.silent = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        session.on_msg(self._on_msg)

    def _on_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if not isinstance(content, dict) or "alive" not in content:
            return
        self.last_seen = time.monotonic()
        if self.silent:
            self.silent = False
            log.info("dashboard page is back: resuming")
            self.on_return()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="taskq-dashboard-session",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.check_s):
            seen = self.last_seen
            if seen is None or self.silent or time.monotonic() - seen < self.silence_s:
                continue
            self.silent = True
            log.warning("dashboard page silent for %.0f s: stopping the poller and the demo",
                        time.monotonic() - seen)
            try:
                self.on_silence()
            except Exception as exc:  # noqa: BLE001 - log, never print, from this thread
                log.warning("stopping after silence failed error=%s: %s", type(exc).__name__,
                            exc)
