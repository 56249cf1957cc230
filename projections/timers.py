"""`show crypto ca timers`: the pending timers in the layout of IOS XE's `show crypto pki
timers`: one group per trustpoint (or other scope, e.g. the trustpool), earliest group
first; a group's first line is the time left until its earliest timer, then one line per
timer, `|<time left>  (<ISO-8601 UTC>) <TIMER> <trustpoint>`. The TIMER label is the first
word of the job's name (engine/schedule.py), upper-cased: POLL, RENEW, SHADOW, ALERT,
TRUSTPOOL, CRL.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

WIDTH = 16  # the time-left column, right-aligned


def left(us: int) -> str:
    """Time left as IOS prints a timer: `7:59.104`, `9:34:20.484`, `1d 3:00:00.000`."""
    ms = max(0, us) // 1000
    days, ms = divmod(ms, 86_400_000)
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    seconds, ms = divmod(ms, 1000)
    if days:
        return f"{days}d {hours}:{minutes:02d}:{seconds:02d}.{ms:03d}"
    if hours:
        return f"{hours}:{minutes:02d}:{seconds:02d}.{ms:03d}"
    return f"{minutes}:{seconds:02d}.{ms:03d}"


def _iso(us: int) -> str:
    return f"{datetime.fromtimestamp(us // 1_000_000, UTC):%Y-%m-%dT%H:%M:%SZ}"


def render_timers(timers: Sequence[tuple[str, int]], now: int) -> str:
    groups: dict[str, list[tuple[int, str]]] = {}
    for name, due in timers:
        kind, _, scope = name.partition(" ")
        groups.setdefault(scope, []).append((due, kind.upper()))
    out = ["PKI Timers"]
    for scope, entries in sorted(groups.items(), key=lambda g: (min(g[1])[0], g[0])):
        entries.sort()
        out.append(f"|{left(entries[0][0] - now):>{WIDTH}}")
        out += [f"|{left(due - now):>{WIDTH}}  ({_iso(due)}) {label} {scope}".rstrip()
                for due, label in entries]
    return "\n".join(out) + "\n"
