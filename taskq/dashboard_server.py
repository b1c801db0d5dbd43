"""Serve ``notebooks/dashboard.ipynb`` with Voilà: the ``taskq dashboard`` command.

The server binds 127.0.0.1:8866 by default and needs no token there. Bound to any other address
it requires a token (generated when none is given), because the page can enqueue, purge and stop
workers. The Redis URL reaches the kernel through ``TASKQ_REDIS_URL``.

A closed tab stops its kernel and the kernel's threads in two ways:
- the page's unload beacon asks Voilà to shut the kernel down. It passes the XSRF check because
  the dashboard's page-session widget sets the ``_xsrf`` cookie that Voilà's page lacks;
- when no beacon arrives (a crashed browser, a lost network), the page's heartbeat stops: the
  dashboard then stops polling and its demo (see ``taskq_widgets.dashboard``), the kernel turns
  idle, and the server culls kernels idle for ``KERNEL_CULL_IDLE_S``.

This module imports no Jupyter code; Voilà runs in a child process.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

from taskq.connection import ENV_VAR, mask_url
from taskq.errors import ConfigurationError

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8866
KERNEL_CULL_IDLE_S = 300
KERNEL_CULL_INTERVAL_S = 60
NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "dashboard.ipynb"


def is_loopback(host: str) -> bool:
    """True for localhost and any loopback address (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def choose_token(host: str, token: str | None) -> str | None:
    """Return the token the page requires: the given one, else none on loopback and a random
    one on any other address."""
    if token:
        return token
    return None if is_loopback(host) else secrets.token_urlsafe(24)


def dashboard_url(host: str, port: int, token: str | None) -> str:
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    url = f"http://{shown}:{port}/"
    return f"{url}?token={quote(token)}" if token else url


def voila_command(notebook: Path, host: str, port: int, token: str | None) -> list[str]:
    """Build the Voilà command line: no browser, no port fallback, idle kernels culled."""
    command = [
        sys.executable, "-m", "voila", str(notebook), f"--port={port}", "--no-browser",
        f"--Voila.ip={host}", "--Voila.port_retries=0", "--theme=light",
        f"--MappingKernelManager.cull_idle_timeout={KERNEL_CULL_IDLE_S}",
        f"--MappingKernelManager.cull_interval={KERNEL_CULL_INTERVAL_S}",
        "--MappingKernelManager.cull_connected=True",
    ]
    if token:
        command.append(f"--token={token}")
    return command


def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, redis_url: str | None = None,
          token: str | None = None, demo: bool | None = None, notebook: Path | None = None,
          ) -> int:
    """Run Voilà in the foreground until it exits or SIGINT/SIGTERM arrives; returns its code.

    Raises ConfigurationError when the notebook is missing or Voilà is not installed.
    """
    notebook = notebook or NOTEBOOK
    if not notebook.is_file():
        raise ConfigurationError(
            f"dashboard notebook {str(notebook)!r} not found: run from a source checkout of "
            "taskq lab, or pass the notebook's path")
    try:
        import importlib.util
        if importlib.util.find_spec("voila") is None:
            raise ImportError("voila")
    except ImportError:
        raise ConfigurationError(
            "the dashboard needs Voilà and the widget packages: pip install 'taskq-lab[lab]'"
        ) from None
    token = choose_token(host, token)

    env = dict(os.environ)
    if redis_url:
        env[ENV_VAR] = redis_url
    if demo is not None:
        env["TASKQ_DASHBOARD_DEMO"] = "1" if demo else "0"
    backend = mask_url(env[ENV_VAR]) if env.get(ENV_VAR) else "embedded (built-in demo)"
    url = dashboard_url(host, port, token)
    print(f"taskq dashboard: {url}", flush=True)
    print(f"  backend: {backend}; press Ctrl+C to stop", flush=True)
    log.info("dashboard server starting host=%s port=%d backend=%s", host, port, backend)

    process = subprocess.Popen(voila_command(notebook, host, port, token), env=env,
                               cwd=notebook.parent)

    def forward(signum: int, _frame: object) -> None:
        process.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = process.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
    log.info("dashboard server stopped code=%s", code)
    return code
