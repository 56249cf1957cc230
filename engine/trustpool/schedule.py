"""When the automatic update runs: the reference's schedule, as pure functions of the folded
pool (so a restarted engine resumes where the log says, and a replay shows every attempt).

The timer watches `target`, the earliest expiry among the pool's active certificates when it
was armed. Its attempts fall at fixed points before that expiry: 20, 15, 10, 5, 4, 3, 2 and 1
days, then every hour until one succeeds (the hourly attempts go on past the expiry itself:
"then once every hour"). The next attempt is the first point after `since`, the time the
timer was armed or last tried. So a timer armed inside the window (a bundle whose earliest
certificate expires in 7 days) first tries at the 5-day point, never at once; and after a
success that leaves the same certificate earliest (the bundle did not renew it), the next try
is the next point, not a loop.

Without a `cabundle url` no attempt can run; the warning is due one day after the timer was
armed, then daily.
"""

from __future__ import annotations

from engine.machines.trustpool import RUNNING
from engine.trustpool.pool import TrustpoolState

HOUR = 3600 * 1_000_000
DAY = 24 * HOUR
RETRY_DAYS = (20, 15, 10, 5, 4, 3, 2, 1)


def attempt_after(target: int, since: int) -> int:
    """The first point of the schedule for `target` later than `since` (µs)."""
    for days in RETRY_DAYS:
        point = target - days * DAY
        if point > since:
            return point
    return since + HOUR


def next_attempt(pool: TrustpoolState) -> int | None:
    """When the timer tries next (µs), or None when it is not running."""
    if pool.timer not in RUNNING or not pool.target:
        return None
    return attempt_after(pool.target, pool.since)


def next_warning(pool: TrustpoolState) -> int | None:
    """When the missing-url warning is due (µs), or None when the timer is not running."""
    if pool.timer not in RUNNING or not pool.target:
        return None
    return (pool.warned_at or pool.armed_at) + DAY
