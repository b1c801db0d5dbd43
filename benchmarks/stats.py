"""Small statistics helpers: quantiles and the per-figure run summary."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from typing import Any


def quantile(values: Sequence[float], q: float) -> float:
    """Return the ``q`` quantile (0 to 1) with linear interpolation between order statistics."""
    if not values:
        raise ValueError("quantile of an empty sequence")
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = math.ceil(position)
    if low == high:
        return ordered[low]
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(runs: Iterable[float | None]) -> dict[str, Any]:
    """Return ``{"median": ..., "runs": [...]}``; the median is None when no run has a value."""
    all_runs = list(runs)
    values = [value for value in all_runs if value is not None]
    return {"median": statistics.median(values) if values else None, "runs": all_runs}


def latency_summary_ms(latencies_s: Sequence[float]) -> dict[str, float]:
    """Return p50, p99 and maximum of latencies given in seconds, in milliseconds."""
    return {
        "p50_ms": quantile(latencies_s, 0.50) * 1e3,
        "p99_ms": quantile(latencies_s, 0.99) * 1e3,
        "max_ms": max(latencies_s) * 1e3,
        "n": len(latencies_s),
    }
