"""Open the engine's Redis client from a URL, the environment, or the embedded default.

Resolution order: the ``redis_url`` argument, then ``TASKQ_REDIS_URL``, then the embedded
default, an in-process fakeredis server that runs the real Lua scripts through lupa. All
embedded clients of one process share one server, so producers and in-process workers see the
same data. Passwords are masked in every log line and error message this module writes.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis

from taskq.errors import ConfigurationError

log = logging.getLogger(__name__)

ENV_VAR = "TASKQ_REDIS_URL"
EMBEDDED = "embedded"
SUPPORTED_SCHEMES = ("redis", "rediss", "unix")

_embedded_server: Any = None
_embedded_lock = threading.Lock()


@dataclass(frozen=True)
class Backend:
    """Which Redis the engine talks to, safe to print."""

    kind: str          # "embedded" or "redis"
    display_url: str   # the URL with any password replaced by "***"

    def __str__(self) -> str:
        return self.display_url if self.kind != EMBEDDED else "embedded (fakeredis with Lua)"


def mask_url(url: str) -> str:
    """Return ``url`` with its password (and a lone username used as password) replaced."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None and not parts.username:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"{user}:***@{host}" if parts.password is not None else f"***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def resolve_url(redis_url: str | None) -> str | None:
    """Return the URL to use, or None for the embedded default."""
    if redis_url:
        return redis_url
    from_env = os.environ.get(ENV_VAR, "").strip()
    return from_env or None


def _embedded_client() -> Any:
    global _embedded_server
    try:
        import fakeredis
    except ImportError as exc:  # pragma: no cover - fakeredis is a core dependency
        raise ConfigurationError(
            "the embedded backend needs fakeredis with Lua: pip install 'fakeredis[lua]'"
        ) from exc
    with _embedded_lock:
        if _embedded_server is None:
            _embedded_server = fakeredis.FakeServer()
    return fakeredis.FakeRedis(server=_embedded_server, decode_responses=False)


def reset_embedded() -> None:
    """Forget the process's embedded server, so the next embedded client starts empty."""
    global _embedded_server
    with _embedded_lock:
        _embedded_server = None


def open_redis(redis_url: str | None = None, *, max_connections: int | None = None
               ) -> tuple[Any, Backend]:
    """Open a Redis client; returns it with a printable description of the backend.

    Raises ConfigurationError for an unsupported scheme or a malformed URL; the message shows
    the URL with its password masked.
    """
    url = resolve_url(redis_url)
    if url is None:
        backend = Backend(EMBEDDED, EMBEDDED)
        log.info("backend selected backend=%s", backend)
        return _embedded_client(), backend

    shown = mask_url(url)
    scheme = urlsplit(url).scheme
    if scheme not in SUPPORTED_SCHEMES:
        raise ConfigurationError(
            f"Redis URL {shown!r} has scheme {scheme!r}; use redis://, rediss:// or unix://")
    options: dict[str, Any] = {
        "socket_keepalive": True,
        "health_check_interval": 30,
        "retry_on_timeout": True,
    }
    if max_connections is not None:
        options["max_connections"] = max_connections
    try:
        client = redis.Redis.from_url(url, **options)
    except ValueError as exc:
        # redis-py quotes the URL in some messages; never echo it.
        raise ConfigurationError(f"invalid Redis URL {shown!r}: {type(exc).__name__}") from None
    backend = Backend("redis", shown)
    log.info("backend selected backend=%s", backend)
    return client, backend
