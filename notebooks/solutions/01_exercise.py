def min_low_weight(low_rate, speed, w_high, w_normal):
    """Smallest low weight whose share w / (w + w_high + w_normal) * speed covers low_rate."""
    if low_rate >= speed:
        return None
    # Solve w / (w + others) * speed >= low_rate for w.
    others = w_high + w_normal
    return low_rate * others / (speed - low_rate)
