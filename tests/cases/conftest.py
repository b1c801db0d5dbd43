"""Fixtures of the field-case tests: private Redis servers and worker processes."""

from tests.cases.support import worker_processes
from tests.redis_servers import aof_redis_server, redis_server, redis_servers

__all__ = ["aof_redis_server", "redis_server", "redis_servers", "worker_processes"]
