def expected_polling_lag_ms(interval_s):
    """A due time falls anywhere in the interval with equal probability: the mean wait is half."""
    return interval_s * 1000 / 2
