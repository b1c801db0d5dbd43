"""Hypothesis drives ``taskq enqueue NAME --args JSON ...`` with hostile option values.

Each run goes through click's CliRunner in this process. It exits 0 having written exactly the
task given, or exits 2 with a one-line error naming the rejected option or value, writing
nothing; it never prints a traceback.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
import redis
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import taskq
from taskq.cli import cli
from tests.cases.figures import report

APP_SPEC = "tests.sample_tasks:app"
FUZZ = settings(max_examples=120, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
OPTIONS = ("--args", "--kwargs", "--queue", "--priority", "--delay", "--eta", "--id")

json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=8)
hostile_text = st.text(max_size=30) | st.sampled_from([
    "", "nan", "inf", "-inf", "1e999", "[", "{", "null", "[NaN]", '{"a": Infinity}', "\x00",
    "9" * 5000, "high!", "2024-03-10T02:30:00", "0001-01-01T00:00:00+05:00", "🚫", "-1", "10",
    "1.5", "True"])
# Valid shapes twice as often as anything else, so that both outcomes get explored.
json_list = st.lists(json_value, max_size=3).map(json.dumps)
json_object = st.dictionaries(st.text(max_size=5), json_value, max_size=3).map(json.dumps)
args_text = st.one_of(json_list, json_list, json_value.map(json.dumps), hostile_text)
kwargs_text = st.one_of(json_object, json_object, hostile_text)
valid_name = st.sampled_from(["add", "record_run"])

TALLY = {"runs": 0, "rejected": 0, "written": 0}


@pytest.fixture(scope="module", autouse=True)
def figures() -> Iterator[None]:
    yield
    report("fuzz cli", runs=TALLY["runs"], rejected=TALLY["rejected"],
           written=TALLY["written"])


@FUZZ
@given(name=st.one_of(valid_name, valid_name, hostile_text), args=args_text,
       kwargs=kwargs_text,
       extra=st.dictionaries(st.sampled_from(OPTIONS[2:]), hostile_text, max_size=2))
def test_cli_enqueue_hostile_options(real_redis_url: str, name: str, args: str, kwargs: str,
                                     extra: dict[str, str]) -> None:
    """Exit 0 with the task written as given, or exit 2 naming the problem, nothing written."""
    client = redis.Redis.from_url(real_redis_url)
    keys_before = client.dbsize()
    command = ["enqueue", name, "--app", APP_SPEC, "--redis-url", real_redis_url,
               "--args", args, "--kwargs", kwargs]
    for option, value in extra.items():
        command += [option, value]

    result = CliRunner().invoke(cli, command)
    TALLY["runs"] += 1

    assert "Traceback" not in result.output
    assert result.exit_code in (0, 2), (result.exit_code, result.output, result.exception)
    if result.exit_code == 2:
        TALLY["rejected"] += 1
        assert "Error" in result.output or "error" in result.output
        assert client.dbsize() == keys_before
        return
    if "already exists" in result.output:  # an --id drawn twice: idempotent, nothing written
        assert client.dbsize() == keys_before
        return
    TALLY["written"] += 1
    found = re.search(r"enqueued (\S+) to queue", result.output)
    assert found, result.output
    app = taskq.App(real_redis_url)
    queue = extra.get("--queue") or "default"
    rec = app.get(found.group(1), queue=queue)
    assert rec.args == json.loads(args)
    assert rec.kwargs == json.loads(kwargs)
    assert rec.name == name


def test_cli_names_rejected_option(real_redis_url: str) -> None:
    """A value of the wrong type is rejected naming its option."""
    cases: dict[str, list[str]] = {
        "--args": ["--args", '{"not": "a list"}'],
        "--kwargs": ["--kwargs", "[1]"],
        "--priority": ["--priority", "high!"],
        "--delay": ["--delay", "soon"],
        "--eta": ["--eta", "tomorrow"],
    }
    for option, extra in cases.items():
        result = CliRunner().invoke(cli, ["enqueue", "add", "--app", APP_SPEC, "--redis-url",
                                          real_redis_url, *extra])
        assert result.exit_code == 2, option
        assert option in result.output, (option, result.output)


def test_cli_names_rejected_value(real_redis_url: str) -> None:
    """A value the engine rejects is shown in the error with the fix."""
    result = CliRunner().invoke(cli, ["enqueue", "add", "--app", APP_SPEC, "--redis-url",
                                      real_redis_url, "--priority", "12"])
    assert result.exit_code == 2
    assert "priority 12 is out of range" in result.output
    assert "from 0 (lowest) to 9 (highest)" in result.output




@settings(FUZZ, max_examples=60)
@given(name=valid_name, args=json_list, kwargs=json_object)
def test_cli_enqueue_round_trips_json(real_redis_url: str, name: str, args: str,
                                      kwargs: str) -> None:
    """Any JSON array and object given as --args and --kwargs are stored exactly."""
    result = CliRunner().invoke(cli, ["enqueue", name, "--app", APP_SPEC, "--redis-url",
                                      real_redis_url, "--args", args, "--kwargs", kwargs])
    TALLY["runs"] += 1
    TALLY["written"] += result.exit_code == 0

    assert result.exit_code == 0, result.output
    found = re.search(r"enqueued (\S+) to queue", result.output)
    assert found, result.output
    rec = taskq.App(real_redis_url).get(found.group(1), queue="default")
    assert rec.args == json.loads(args)
    assert rec.kwargs == json.loads(kwargs)
