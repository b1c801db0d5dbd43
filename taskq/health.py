"""Connection health for live views: which Redis, which version, how much memory, how far away.

``check_health`` never raises for a Redis error: an unreachable server comes back as a
``Health`` with ``ok`` false and the error text, so a dashboard can show a banner and keep
polling until the server responds again. The embedded backend (fakeredis) has no INFO command;
its version is the fakeredis package version and its memory is unknown.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any

from taskq.connection import EMBEDDED

if TYPE_CHECKING:
    from taskq.app import App

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Health:
    """One probe of the app's Redis connection.

    ``rtt_ms`` is the wall time of one PING round trip. ``redis_version`` and
    ``used_memory_bytes`` are None when the probe skipped INFO or the server does not support it.
    """

    ok: bool
    backend: str
    embedded: bool
    rtt_ms: float | None
    redis_version: str | None
    used_memory_bytes: int | None
    error: str | None
    checked_at_s: float


def _fakeredis_version() -> str:
    try:
        return f"fakeredis {metadata.version('fakeredis')}"
    except metadata.PackageNotFoundError:
        return "fakeredis"


def _info(client: Any) -> tuple[str | None, int | None]:
    server = client.info("server")
    memory = client.info("memory")
    version = server.get("redis_version")
    used = memory.get("used_memory")
    return (None if version is None else str(version),
            None if used is None else int(used))


def check_health(app: App, with_info: bool = True, backend: str | None = None) -> Health:
    """Time one PING and, with ``with_info``, read the server version and used memory.

    ``backend`` overrides the printable backend name (for an app built around a given client).
    Returns a Health whose ``ok`` is False with the error's type and text when Redis does not
    respond. Never raises for connection or protocol errors.
    """
    embedded = app.backend.kind == EMBEDDED
    shown = backend or str(app.backend)
    started = time.perf_counter()
    try:
        app.client.ping()
        rtt_ms = (time.perf_counter() - started) * 1000
        version: str | None = None
        used: int | None = None
        if embedded:
            version = _fakeredis_version()
        elif with_info:
            version, used = _info(app.client)
    except Exception as exc:  # noqa: BLE001 - any failure here means "unhealthy", not a crash
        log.debug("health probe failed backend=%s error=%s: %s", shown, type(exc).__name__, exc)
        return Health(False, shown, embedded, None, None, None,
                      f"{type(exc).__name__}: {exc}", time.time())
    return Health(True, shown, embedded, rtt_ms, version, used, None, time.time())
