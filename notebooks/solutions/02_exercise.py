def claim_lrem(ctx):
    """Read the oldest id, then remove that id; only the worker whose LREM removed it owns it."""
    task_id = ctx.client.lindex(ctx.ready, -1)
    ctx.round_trip()
    if task_id is None:
        return None
    ctx.gap()
    removed = ctx.client.lrem(ctx.ready, 1, task_id)
    ctx.round_trip()
    if removed == 1:
        return task_id.decode()
    # Another worker removed it first: try again with the new tail.
    return L.RETRY
