"""Validation and JSON encoding of everything a producer sends. Nothing is written on failure.

Arguments travel as JSON only; nothing is ever pickled. Every error names the offending value
and says how to fix it.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from taskq.errors import InvalidTaskError, PayloadTooLargeError
from taskq.settings import MAX_PRIORITY, MIN_PRIORITY, Settings

# A delay longer than this is almost certainly a unit mistake (ms passed as s).
MAX_DELAY_S = 10 * 365 * 24 * 3600.0
# Redis's cjson writes numbers with 14 significant digits, so a due time in ms stays exact on
# the task record only below 10**14 (5138-11-16 UTC).
MAX_ETA_MS = 10**14


def _short(value: Any, limit: int = 80) -> str:
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a hostile __repr__ must not hide the real error
        text = f"<{type(value).__name__} object>"
    return text if len(text) <= limit else text[:limit] + "..."


def _has_control_chars(text: str) -> bool:
    return any(ord(ch) < 32 or ord(ch) == 127 for ch in text)


def validate_priority(priority: Any) -> int:
    """Return ``priority`` if it is an integer in the allowed range, else raise."""
    if isinstance(priority, bool) or not isinstance(priority, numbers.Integral):
        raise InvalidTaskError(
            f"priority {_short(priority)} is invalid: use an integer from {MIN_PRIORITY} "
            f"(lowest) to {MAX_PRIORITY} (highest)")
    value = int(priority)
    if not MIN_PRIORITY <= value <= MAX_PRIORITY:
        raise InvalidTaskError(
            f"priority {_short(value)} is out of range: use an integer from {MIN_PRIORITY} "
            f"(lowest) to {MAX_PRIORITY} (highest)")
    return value


def validate_name(kind: str, value: Any, max_chars: int) -> str:
    """Return a queue name or task id after checking its type, length and characters."""
    if not isinstance(value, str):
        raise InvalidTaskError(f"{kind} {_short(value)} is invalid: use a string")
    if not value:
        raise InvalidTaskError(f"{kind} is empty: use 1 to {max_chars} characters")
    if len(value) > max_chars:
        raise InvalidTaskError(
            f"{kind} {_short(value)} has {len(value)} characters: use at most {max_chars}")
    if _has_control_chars(value):
        raise InvalidTaskError(
            f"{kind} {_short(value)} contains control characters: remove them")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidTaskError(
            f"{kind} {_short(value)} is not valid Unicode text (lone surrogate)") from None
    return value


def validate_delay(delay_s: Any) -> float:
    """Return a delay in seconds if it is a finite, non-negative number of sane size."""
    if isinstance(delay_s, bool) or not isinstance(delay_s, numbers.Real):
        raise InvalidTaskError(f"delay_s {_short(delay_s)} is invalid: use seconds as a number")
    try:
        value = float(delay_s)
    except OverflowError:  # an int past the float range
        # str() of an int past 4300 digits raises ValueError, so compare instead of parsing.
        value = math.inf if delay_s > 0 else -math.inf  # type: ignore[operator]
    if math.isnan(value) or math.isinf(value):
        raise InvalidTaskError(f"delay_s {value} is invalid: use a finite number of seconds")
    if value < 0:
        raise InvalidTaskError(f"delay_s {value} is negative: use 0 or more seconds")
    if value > MAX_DELAY_S:
        raise InvalidTaskError(
            f"delay_s {value} is more than ten years: pass seconds, not milliseconds")
    return value


def eta_to_ms(eta: Any) -> int:
    """Convert an ``eta`` datetime to Unix milliseconds.

    An aware datetime is converted exactly, with ``fold`` choosing between the two readings of
    an ambiguous local time. A naive datetime is read as local time of this process (the ``TZ``
    the C library uses), with daylight saving applied for that date. A naive time that does not
    exist (skipped by a spring-forward change) raises InvalidTaskError.
    """
    if not isinstance(eta, datetime):
        raise InvalidTaskError(
            f"eta {_short(eta)} is invalid: use a datetime, preferably timezone-aware")
    aware = eta.tzinfo is not None and eta.utcoffset() is not None
    try:
        stamp = eta.timestamp()
        round_trip = None if aware else datetime.fromtimestamp(stamp)
    except (OverflowError, OSError, ValueError) as exc:
        # Near datetime.min or datetime.max the UTC instant falls outside years 1..9999.
        raise InvalidTaskError(f"eta {eta.isoformat()} cannot be converted to a Unix time "
                               f"({exc}): pass a time between the years 2 and 5138") from None
    if round_trip is not None and (round_trip.replace(tzinfo=None, fold=0)
                                   != eta.replace(fold=0)):
        raise InvalidTaskError(
            f"eta {eta.isoformat()} does not exist in the local time zone (a daylight saving "
            "change skips it): pass a timezone-aware datetime")
    eta_ms = round(stamp * 1000)
    if eta_ms >= MAX_ETA_MS:
        raise InvalidTaskError(
            f"eta {eta.isoformat()} is not before {utc_iso(MAX_ETA_MS)}, the latest due time a "
            "task record stores exactly: pass a nearer time")
    return eta_ms


def encode_result(value: Any) -> str:
    """Encode a task's return value as JSON; raises InvalidTaskError naming the type."""
    try:
        return json.dumps(value, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise InvalidTaskError(
            f"task result {_short(value)} cannot be encoded as JSON ({exc}): return JSON "
            "types (dict, list, str, int, float, bool, None)") from None


def _encode_value(where: str, value: Any) -> str:
    try:
        return json.dumps(value, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidTaskError(
            f"argument {where}={_short(value)} cannot be encoded as JSON ({type(exc).__name__}:"
            f" {exc}): pass JSON types (dict, list, str, int, float, bool, None)") from None
    except Exception as exc:  # noqa: BLE001 - a custom __iter__ or __float__ may raise anything
        raise InvalidTaskError(
            f"argument {where} raised {type(exc).__name__} while being encoded as JSON: pass "
            "JSON types (dict, list, str, int, float, bool, None)") from None


def encode_arguments(args: Sequence[Any], kwargs: Mapping[str, Any], settings: Settings) -> str:
    """Encode positional and keyword arguments as one JSON document within the size limit."""
    if isinstance(args, (str, bytes)) or not isinstance(args, Sequence):
        raise InvalidTaskError(f"args {_short(args)} is invalid: use a list or tuple")
    if not isinstance(kwargs, Mapping):
        raise InvalidTaskError(f"kwargs {_short(kwargs)} is invalid: use a dict")
    for key in kwargs:
        if not isinstance(key, str):
            raise InvalidTaskError(f"keyword argument name {_short(key)} is not a string")

    parts = [_encode_value(f"args[{i}]", value) for i, value in enumerate(args)]
    named = [f"{json.dumps(key, ensure_ascii=False)}: {_encode_value(key, value)}"
             for key, value in kwargs.items()]
    document = '{"args": [' + ", ".join(parts) + '], "kwargs": {' + ", ".join(named) + "}}"
    try:
        size = len(document.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidTaskError(
            "arguments contain a lone surrogate that is not valid Unicode text: "
            "encode binary data as base64") from None
    if size > settings.max_payload_bytes:
        raise PayloadTooLargeError(
            f"arguments are {size} bytes as JSON, over the limit of {settings.max_payload_bytes} "
            "bytes (Settings.max_payload_bytes): store large data elsewhere and pass a reference")
    return document


def decode_arguments(raw: str | None) -> tuple[list[Any], dict[str, Any]]:
    """Decode stored arguments; raises ValueError when they are missing or malformed."""
    if raw is None:
        raise ValueError("the task's arguments are missing from Redis")
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("stored arguments are not a JSON object")
    args, kwargs = data.get("args", []), data.get("kwargs", {})
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise ValueError("stored arguments must hold a list 'args' and an object 'kwargs'")
    return args, kwargs


def utc_iso(ms: int | None) -> str:
    """Format Unix milliseconds as an ISO 8601 UTC time, or '-' for None."""
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds")
