"""Fixtures of the chaos tests (private Redis servers, worker processes) and the figures
summary printed at the end of the run."""

from typing import Any

from tests.cases.figures import write_summary
from tests.cases.support import worker_processes
from tests.redis_servers import aof_redis_server, redis_server, redis_servers

__all__ = ["aof_redis_server", "redis_server", "redis_servers", "worker_processes"]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    write_summary(terminalreporter)
