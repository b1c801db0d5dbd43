"""One JSON shape for every error of the HTTP API, and the mapping from engine errors.

Bad input gets 400 (malformed request), 404 (unknown task, queue or worker), 409
(the request conflicts with the current state), 413 (too large) or 422 (a value is invalid).
Redis being unreachable is 503 (redis-py's cluster errors do not derive from RedisError, so
both are handled). Only a bug in this server produces 500.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import RedisClusterException
from starlette.exceptions import HTTPException as StarletteHTTPException

from taskq.connection import mask_url
from taskq.errors import (
    ConfigurationError,
    InvalidTaskError,
    PayloadTooLargeError,
    TaskNotFoundError,
    UnknownTaskError,
)

log = logging.getLogger("taskq.api")

STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                405: "method_not_allowed", 409: "conflict", 413: "payload_too_large",
                415: "unsupported_media_type", 422: "invalid_value", 503: "unavailable"}


class ApiError(Exception):
    """An error the API returns with ``status`` and a body naming the value and the fix."""

    def __init__(self, status: int, code: str, message: str,
                 details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []


def error_response(status: int, code: str, message: str,
                   details: list[dict[str, Any]] | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": code, "message": message, "details": details or []},
                        status_code=status, headers=headers)


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _location(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in loc)


def describe_validation(errors: list[Any]) -> tuple[int, str, str, list[dict[str, Any]]]:
    """Turn pydantic's error list into (status, code, message, details)."""
    details = []
    for error in errors:
        item = {"location": _location(error.get("loc", ())), "message": str(error.get("msg")),
                "type": str(error.get("type"))}
        if error.get("type") != "missing" and "input" in error:
            item["input"] = _short(error["input"])
        details.append(item)
    if any(d["type"] == "json_invalid" for d in details):
        first = next(d for d in details if d["type"] == "json_invalid")
        return 400, "invalid_json", (f"the request body is not valid JSON ({first['message']} at "
                                     f"{first['location']}): send a JSON object"), details
    parts = []
    for d in details[:3]:
        got = f" (got {d['input']})" if "input" in d else ""
        parts.append(f"{d['location']}: {d['message']}{got}")
    more = f"; and {len(details) - 3} more" if len(details) > 3 else ""
    return 422, "invalid_request", "invalid request: " + "; ".join(parts) + more, details


def install_error_handlers(api: FastAPI) -> None:
    """Register the handlers that give every error the shape of ``ErrorBody``."""

    @api.exception_handler(ApiError)
    async def on_api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.details)

    @api.exception_handler(RequestValidationError)
    async def on_validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        status, code, message, details = describe_validation(list(exc.errors()))
        return error_response(status, code, message, details)

    @api.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = STATUS_CODES.get(exc.status_code, "error")
        message = str(exc.detail)
        if exc.status_code == 404:
            message = f"no endpoint at {request.url.path!r}: see /docs for the API"
        elif exc.status_code == 405:
            message = (f"method {request.method} is not allowed on {request.url.path!r}: see "
                       "/docs for the methods of each endpoint")
        return error_response(exc.status_code, code, message,
                              headers=getattr(exc, "headers", None))

    @api.exception_handler(UnknownTaskError)
    async def on_unknown_task(_request: Request, exc: UnknownTaskError) -> JSONResponse:
        return error_response(422, "unknown_task", str(exc))

    @api.exception_handler(PayloadTooLargeError)
    async def on_too_large(_request: Request, exc: PayloadTooLargeError) -> JSONResponse:
        return error_response(413, "payload_too_large", str(exc))

    @api.exception_handler(InvalidTaskError)
    async def on_invalid(_request: Request, exc: InvalidTaskError) -> JSONResponse:
        return error_response(422, "invalid_value", str(exc))

    @api.exception_handler(TaskNotFoundError)
    async def on_not_found(_request: Request, exc: TaskNotFoundError) -> JSONResponse:
        return error_response(404, "task_not_found", str(exc))

    @api.exception_handler(ConfigurationError)
    async def on_configuration(request: Request, exc: ConfigurationError) -> JSONResponse:
        log.error("configuration error path=%s: %s", request.url.path, exc)
        return error_response(503, "misconfigured", str(exc))

    @api.exception_handler(redis.RedisError)
    @api.exception_handler(RedisClusterException)
    async def on_redis(request: Request, exc: Exception) -> JSONResponse:
        engine = request.app.state.taskq
        backend = mask_url(str(engine.backend))
        log.warning("redis error path=%s backend=%s error=%s: %s", request.url.path, backend,
                    type(exc).__name__, exc)
        return error_response(503, "redis_unavailable",
                              f"Redis at {backend} failed ({type(exc).__name__}): check that it "
                              "is running and reachable, then retry")
