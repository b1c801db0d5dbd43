"""Histogram buckets and the arithmetic that turns Redis counters into dashboard figures.

The Lua scripts count queue waits and run times into fixed buckets; the upper bounds below, in
microseconds, are substituted into the scripts when they load, so both sides read one list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

# Upper bounds in microseconds: ten log-spaced buckets per decade (each bound about 1.26 times
# the one before) from 0.1 ms to 1,000 s, so an interpolated percentile is within about 13 % of
# the true value. A duration above the last bound falls into one overflow bucket with index
# len(HISTOGRAM_BOUNDS_US).
_BUCKETS_PER_DECADE = 10
HISTOGRAM_BOUNDS_US: tuple[int, ...] = tuple(
    round(100 * 10 ** (i / _BUCKETS_PER_DECADE)) for i in range(7 * _BUCKETS_PER_DECADE + 1)
)

RATE_KINDS = ("e", "s", "f", "r", "d")
"""Per-second counters: enqueued, succeeded, failed, retried, dead."""


def histogram_counts(raw: Mapping[str, int]) -> list[int]:
    """Turn a histogram hash (bucket index -> count) into a dense list with one overflow bucket."""
    counts = [0] * (len(HISTOGRAM_BOUNDS_US) + 1)
    for index, count in raw.items():
        position = int(index)
        if 0 <= position < len(counts):
            counts[position] += int(count)
    return counts


def percentile_ms(counts: Sequence[int], fraction: float) -> float | None:
    """Estimate a percentile in ms from bucket counts, interpolating inside the bucket.

    Returns None when the histogram is empty. A value in the overflow bucket is reported as the
    last bound, so the estimate is a lower bound there.
    """
    total = sum(counts)
    if total == 0:
        return None
    rank = fraction * total
    seen = 0
    for index, count in enumerate(counts):
        if count == 0:
            continue
        if seen + count >= rank:
            if index >= len(HISTOGRAM_BOUNDS_US):
                return HISTOGRAM_BOUNDS_US[-1] / 1000
            lower = HISTOGRAM_BOUNDS_US[index - 1] if index > 0 else 0
            upper = HISTOGRAM_BOUNDS_US[index]
            inside = (rank - seen) / count
            return (lower + (upper - lower) * inside) / 1000
        seen += count
    return HISTOGRAM_BOUNDS_US[-1] / 1000
