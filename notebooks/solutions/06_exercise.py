def throughput_per_s(rate, kind, now_s, seconds):
    """Mean count per second of `kind` over the `seconds` complete seconds before `now_s`."""
    per_second = rate.get(kind, {})
    window = range(now_s - seconds, now_s)
    return sum(per_second.get(second, 0) for second in window) / seconds
