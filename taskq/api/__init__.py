"""The HTTP API of the engine: a FastAPI application served by uvicorn (``taskq api``).

``create_app(engine)`` builds the ASGI application around one ``taskq.App``, whose registered
tasks are the only ones the API can enqueue. ``serve`` runs it. The server binds 127.0.0.1 by
default; on any other address it refuses to start without a bearer token.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from typing import Any

from fastapi import Depends, FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

import taskq
from taskq.api import queues, status, stream, tasks
from taskq.api.deps import require_token
from taskq.api.errors import error_response, install_error_handlers
from taskq.app import App
from taskq.errors import ConfigurationError

log = logging.getLogger("taskq.api")

TOKEN_ENV_VAR = "TASKQ_API_TOKEN"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
# A bulk enqueue of 10,000 tasks with arguments of a few hundred bytes stays well below this.
MAX_BODY_BYTES = 64 * 1024 * 1024

DESCRIPTION = """\
Enqueue tasks, read their state and timeline, list queues and workers, manage dead letters,
pause queues, resize worker pools, and follow every state change as Server-Sent Events.

Errors are JSON objects `{"error": code, "message": text, "details": [...]}`. When the server
runs with a token, every endpoint but `/health` needs `Authorization: Bearer <token>`.
"""


class BodyLimit:
    """Reject with 413 a request whose declared Content-Length is over ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            length = dict(scope["headers"]).get(b"content-length", b"0")
            if length.isdigit() and int(length) > self.max_bytes:
                response = error_response(
                    413, "payload_too_large", f"the request body is {int(length)} bytes, over "
                    f"the limit of {self.max_bytes} bytes: send fewer tasks per request")
                await response(scope, receive, send)
                return
            # TODO: a chunked body without Content-Length is not counted against the limit.
        await self.app(scope, receive, send)


def create_app(engine: App, token: str | None = None,
               max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    """Build the ASGI application for ``engine``; with ``token``, requests need it as bearer."""
    api = FastAPI(title="taskq API", version=taskq.__version__, description=DESCRIPTION)
    api.state.taskq = engine
    api.state.token = token or None
    install_error_handlers(api)
    api.include_router(status.health_router)
    for router in (tasks.router, queues.router, status.router, stream.router):
        api.include_router(router, dependencies=[Depends(require_token)])
    api.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    return api


def openapi_document() -> dict[str, Any]:
    """Build the OpenAPI document, which does not depend on the engine or its tasks."""
    return create_app(App()).openapi()


def openapi_json() -> str:
    """Return the OpenAPI document as committed in docs/openapi.json."""
    return json.dumps(openapi_document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def is_loopback(host: str) -> bool:
    """True for localhost and addresses in 127.0.0.0/8 or ::1."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Raise ConfigurationError when ``host`` is reachable from elsewhere and there is no token."""
    if not token and not is_loopback(host):
        raise ConfigurationError(
            f"refusing to serve on {host!r} without a token: anyone who reaches that address "
            f"could enqueue and purge tasks. Set {TOKEN_ENV_VAR} or pass --token, or bind "
            f"{DEFAULT_HOST}")


def serve(engine: App, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          token: str | None = None, log_level: str = "info") -> None:
    """Run the API with uvicorn until SIGINT or SIGTERM."""
    import uvicorn

    check_bind(host, token)
    log.info("api starting host=%s port=%d backend=%s tasks=%d token=%s", host, port,
             engine.backend, len(engine.registered()), "set" if token else "none")
    uvicorn.run(create_app(engine, token), host=host, port=port, log_level=log_level.lower(),
                timeout_graceful_shutdown=3)
    log.info("api stopped host=%s port=%d", host, port)
