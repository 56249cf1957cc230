"""Time as IOS XR prints it."""

from __future__ import annotations

from datetime import UTC, datetime

from engine.messages import log_date


def ios_time(us: int) -> str:
    """`17:33:23 UTC Thu Sep 18 2003` (certificate and key dates), as messages name times."""
    return log_date(us)


def stamp(us: int) -> str:
    """`Thu Sep 18 17:33:23 2003` (commit lists)."""
    return datetime.fromtimestamp(us / 1_000_000, UTC).strftime("%a %b %d %H:%M:%S %Y")
