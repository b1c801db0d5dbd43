def book_once(client, key_prefix, order_id):
    """Book the order only if this call is the first to set its paid marker."""
    if client.set(f"{key_prefix}:paid:{order_id}", 1, nx=True):
        client.incr(f"{key_prefix}:balance")
        return True
    return False

# The task id is worse: a producer that enqueues the same order twice under two task ids
# (for example after a timeout) would book it twice, while the order id names the effect.
