"""Property-based requests generated from the committed OpenAPI document: no input may produce a
server error (5xx). Bounded in examples per operation and time per example.

``/events`` is left out because it streams until the client leaves; ``test_api.py`` covers it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings

import taskq
from taskq.api import create_app
from tests.conftest import FAST_SETTINGS, REAL_REDIS_URL, ROOT

pytestmark = pytest.mark.real_redis

OPENAPI_PATH = ROOT / "docs" / "openapi.json"
MAX_EXAMPLES = 20
DEADLINE_MS = 5000

# Each test swaps in a fresh engine (``API.state.taskq``); the first connects on first use, so
# importing this module touches no Redis server.
API = create_app(taskq.App(REAL_REDIS_URL, settings=FAST_SETTINGS))
schema = schemathesis.openapi.from_path(OPENAPI_PATH)
schema.app = API


@pytest.fixture(autouse=True)
def api_app(real_redis_url: str) -> Iterator[None]:
    """A fresh API on the flushed test database, with tasks in two queues to find."""
    engine = taskq.App(real_redis_url, settings=FAST_SETTINGS)

    @engine.task(name="add")
    def add(x: int, y: int) -> int:
        return x + y

    engine.enqueue("add", [1, 2], task_id="known")
    engine.enqueue("add", [1, 2], queue="other", delay_s=60)
    API.state.taskq = engine
    yield


@schema.exclude(path="/events").parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=DEADLINE_MS,
          phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck))
def test_no_server_errors(case: schemathesis.Case) -> None:
    response = case.call()
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text}"
