"""Open the engine's Redis client from a URL, the environment, or the embedded default.

Resolution order: the ``redis_url`` argument, then ``TASKQ_REDIS_URL``, then the embedded
default, an in-process fakeredis server that runs the real Lua scripts through lupa. All
embedded clients of one process share one server, so producers and in-process workers see the
same data. Passwords are masked in every log line and error message this module writes.
"""

from __future__ import annotations

import logging
import os
import re
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
# Redis Cluster URLs name any one node; the client discovers the others and the slot map.
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
_QUERY_PASSWORD = re.compile(r"(?i)(^|&)(password=)[^&]*")

_embedded_server: Any = None
_embedded_lock = threading.Lock()


@dataclass(frozen=True)
class Backend:
    """Which Redis the engine talks to, safe to print."""

    kind: str          # "embedded", "redis" or "cluster"
    display_url: str   # the URL with any password replaced by "***"

    def __str__(self) -> str:
        return self.display_url if self.kind != EMBEDDED else "embedded (fakeredis with Lua)"


def mask_url(url: str) -> str:
    """Return ``url`` with its password (and a lone username used as password) replaced.

    A ``password=`` query parameter, which redis-py also accepts, is masked too. The host part
    is kept as written, so a URL with a malformed port still masks its password.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    userinfo, at, hostport = parts.netloc.rpartition("@")
    netloc = parts.netloc
    if at:
        user, colon, _password = userinfo.partition(":")
        netloc = f"{user}:***@{hostport}" if colon else f"***@{hostport}"
    query = _QUERY_PASSWORD.sub(r"\1\2***", parts.query)
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


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
    try:
        scheme = urlsplit(url).scheme
    except ValueError as exc:
        raise ConfigurationError(f"invalid Redis URL {shown!r}: {type(exc).__name__}") from None
    if scheme not in SUPPORTED_SCHEMES and scheme not in CLUSTER_SCHEMES:
        raise ConfigurationError(
            f"Redis URL {shown!r} has scheme {scheme!r}; use redis://, rediss:// or unix://, "
            "or redis+cluster:// (rediss+cluster://) for Redis Cluster")
    # TODO: no socket_timeout is set, so a half-open connection (a partition without a reset)
    # can hang a call until TCP keepalive gives up; blocking reads would need a longer timeout.
    options: dict[str, Any] = {
        "health_check_interval": 30,
        "retry_on_timeout": True,
    }
    if scheme != "unix":
        # TCP only: a unix socket connection refuses the keepalive option.
        options["socket_keepalive"] = True
    if max_connections is not None:
        options["max_connections"] = max_connections
    if scheme in CLUSTER_SCHEMES:
        return _open_cluster(CLUSTER_SCHEMES[scheme] + url[len(scheme):], shown, options)
    try:
        client = redis.Redis.from_url(url, **options)
    except ValueError as exc:
        # redis-py quotes the URL in some messages; never echo it.
        raise ConfigurationError(f"invalid Redis URL {shown!r}: {type(exc).__name__}") from None
    backend = Backend("redis", shown)
    log.info("backend selected backend=%s", backend)
    return client, backend


def _open_cluster(url: str, shown: str, options: dict[str, Any]) -> tuple[Any, Backend]:
    """Open a ``RedisCluster`` client; it connects at once to read the slot map."""
    from redis.cluster import RedisCluster
    from redis.exceptions import RedisClusterException

    try:
        client: Any = RedisCluster.from_url(url, **options)
    except ValueError as exc:
        raise ConfigurationError(f"invalid Redis URL {shown!r}: {type(exc).__name__}") from None
    except RedisClusterException as exc:
        # Raised for a database other than 0 and when no node of the cluster can be reached.
        raise ConfigurationError(f"Redis Cluster at {shown!r} cannot be used: {exc}") from None
    backend = Backend("cluster", shown)
    log.info("backend selected backend=%s", backend)
    return client, backend
