"""Connection: which Redis the engine uses, the URL forms it accepts, and that a password
never shows in a log line, an error or a repr."""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

import taskq
from taskq.connection import ENV_VAR, open_redis, resolve_url
from tests.conftest import free_port, with_settings
from tests.helpers import worker_running

SECRET = "s3cr3t-Pa55"
REDIS_SERVER = shutil.which("redis-server")


@pytest.fixture
def no_env_url(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv(ENV_VAR, raising=False)
    return monkeypatch


def test_the_argument_wins_over_the_environment(no_env_url: pytest.MonkeyPatch) -> None:
    no_env_url.setenv(ENV_VAR, "redis://env-host:6379/1")
    assert resolve_url("redis://arg-host:6379/2") == "redis://arg-host:6379/2"
    assert resolve_url(None) == "redis://env-host:6379/1"


@pytest.mark.parametrize("value", [None, "", "   "])
def test_without_a_url_the_embedded_server_is_used(no_env_url: pytest.MonkeyPatch,
                                                   value: str | None) -> None:
    """No argument and no (or a blank) TASKQ_REDIS_URL selects the embedded backend."""
    if value is not None:
        no_env_url.setenv(ENV_VAR, value)
    client, backend = open_redis(None)

    assert backend.kind == "embedded" and "embedded" in str(backend)
    assert client.ping()


def test_the_environment_url_reaches_the_app(no_env_url: pytest.MonkeyPatch) -> None:
    """An App without a URL connects where TASKQ_REDIS_URL points, shown masked."""
    port = free_port()
    no_env_url.setenv(ENV_VAR, f"redis://worker:{SECRET}@127.0.0.1:{port}/3")
    app = taskq.App()

    assert str(app.backend) == f"redis://worker:***@127.0.0.1:{port}/3"
    kwargs = app.client.connection_pool.connection_kwargs
    assert (kwargs["username"], kwargs["password"], kwargs["db"]) == ("worker", SECRET, 3)


@pytest.mark.parametrize(("url", "expected"), [
    (f"redis://alice:{SECRET}@10.0.0.5:6380/4",
     {"username": "alice", "password": SECRET, "host": "10.0.0.5", "port": 6380, "db": 4}),
    (f"rediss://alice:{SECRET}@cache.example.org:6390/2",
     {"username": "alice", "password": SECRET, "host": "cache.example.org", "port": 6390,
      "db": 2}),
    (f"unix://alice:{SECRET}@/run/redis/redis.sock?db=5",
     {"username": "alice", "password": SECRET, "path": "/run/redis/redis.sock", "db": 5}),
    (f"redis://:{SECRET}@localhost/0", {"password": SECRET, "host": "localhost", "db": 0}),
])
def test_supported_url_forms_carry_user_password_and_database(url: str, expected: dict[str, object]
                                                              ) -> None:
    """redis://, rediss:// and unix:// URLs pass user, password and database to the client,
    and the printable backend masks the password. Nothing connects yet."""
    client, backend = open_redis(url)

    kwargs = client.connection_pool.connection_kwargs
    assert {k: kwargs.get(k) for k in expected} == expected
    assert SECRET not in str(backend) and SECRET not in repr(backend)
    assert "***" in str(backend)


def test_rediss_urls_use_tls_connections() -> None:
    client, _ = open_redis(f"rediss://alice:{SECRET}@cache.example.org:6390/0")
    assert client.connection_pool.connection_class is redis.SSLConnection


def test_unix_urls_use_socket_connections() -> None:
    client, _ = open_redis(f"unix://:{SECRET}@/tmp/redis.sock")
    assert client.connection_pool.connection_class is redis.UnixDomainSocketConnection


@pytest.mark.parametrize(("url", "masked"), [
    (f"redis://alice:{SECRET}@host:6379/0", "redis://alice:***@host:6379/0"),
    (f"redis://{SECRET}@host", "redis://***@host"),
    (f"redis://host:6379/0?password={SECRET}&db=1", "redis://host:6379/0?password=***&db=1"),
    ("redis://alice:p%40ss%3Aword@host/0", "redis://alice:***@host/0"),
    (f"redis://alice:{SECRET}@host:notaport/0", "redis://alice:***@host:notaport/0"),
    (f"unix://alice:{SECRET}@/tmp/r.sock?db=2", "unix://alice:***@/tmp/r.sock?db=2"),
    ("redis://localhost:6379/0", "redis://localhost:6379/0"),
    (f"redis://alice:{SECRET}@[::1/0", "<unparseable URL>"),
])
def test_mask_url_hides_every_form_of_password(url: str, masked: str) -> None:
    assert taskq.mask_url(url) == masked


@pytest.mark.parametrize(("url", "message"), [
    (f"http://alice:{SECRET}@host:6379/0", "use redis://, rediss:// or unix://"),
    (f"redis://alice:{SECRET}@host:notaport/0", "invalid Redis URL"),
    (f"redis://alice:{SECRET}@[::1/0", "invalid Redis URL"),
])
def test_bad_urls_raise_configuration_errors_without_the_password(url: str, message: str
                                                                  ) -> None:
    """A URL that cannot work raises ConfigurationError saying why, with the password masked."""
    with pytest.raises(taskq.ConfigurationError, match=message) as caught:
        open_redis(url)
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None or caught.value.__suppress_context__


def test_a_server_that_does_not_answer_fails_without_the_password(
        caplog: pytest.LogCaptureFixture) -> None:
    """The connection error a producer sees names the host, never the password."""
    caplog.set_level(logging.DEBUG)
    app = taskq.App(f"redis://alice:{SECRET}@127.0.0.1:{free_port()}/0",
                    settings=with_settings())
    app.task("ok")(lambda: None)

    with pytest.raises(redis.ConnectionError) as caught:
        app.enqueue("ok")

    assert SECRET not in str(caught.value)
    assert SECRET not in caplog.text


# A private server on a unix socket that requires a user and a password.

@pytest.fixture
def socket_server(tmp_path: Path) -> Iterator[Path]:
    """A redis-server listening only on a unix socket, user "alice" with SECRET."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed")
    sock = tmp_path / "redis.sock"
    process = subprocess.Popen(
        [REDIS_SERVER, "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700",
         "--save", "", "--appendonly", "no", "--dir", str(tmp_path),
         "--user", "alice", "on", f">{SECRET}", "~*", "&*", "+@all", "--user", "default", "off"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():
            assert process.poll() is None, "redis-server exited at start"
            assert time.monotonic() < deadline, "redis-server did not open its socket"
            time.sleep(0.02)
        yield sock
    finally:
        process.terminate()
        process.wait(10)


def test_a_unix_socket_server_with_user_and_password_runs_tasks(
        socket_server: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Producer and worker reach a password-protected server over a unix socket, and no log
    line of the whole run shows the password."""
    caplog.set_level(logging.DEBUG)
    url = f"unix://alice:{SECRET}@{socket_server}?db=2"
    app = taskq.App(url, settings=with_settings())
    app.task("add")(lambda x, y: x + y)

    handle = app.enqueue("add", (2, 3))
    with worker_running(app):
        assert handle.result(timeout_s=5) == 5

    assert f"unix://alice:***@{socket_server}?db=2" in caplog.text
    assert SECRET not in caplog.text
    for text in (str(app.backend), repr(app.backend), repr(app.client),
                 repr(app.client.connection_pool), repr(app)):
        assert SECRET not in text


def test_a_wrong_password_is_refused_without_echoing_it(socket_server: Path) -> None:
    wrong = "not-the-" + SECRET
    app = taskq.App(f"unix://alice:{wrong}@{socket_server}", settings=with_settings())

    with pytest.raises(redis.AuthenticationError) as caught:
        app.client.ping()

    assert wrong not in str(caught.value)
