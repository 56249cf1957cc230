"""Fleet views (issue 19): projections across every device of a PostgreSQL event store, kept
by a catch-up subscription over the store's global position (engine/fleet/follower.py)."""
