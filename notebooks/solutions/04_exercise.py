def full_jitter_delay(retry, rng, min_s=1.0, max_s=60.0, factor=2.0):
    """Draw the whole delay uniformly from zero up to the capped exponential value."""
    ceiling = min(max_s, min_s * factor ** (retry - 1))
    return rng.uniform(0, ceiling)
