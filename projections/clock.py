"""The engine clock as IOS XR shows it: `show clock`, `clock set`'s echo, and the
`%SYS-6-CLOCKUPDATE` message `show logging` keeps of each `clock set`.

Layout: `14:30:05.123 UTC Tue Dec 01 2026` (time with milliseconds, zone, weekday, month,
two-digit day, year), as IOS XR's `show clock` prints it (see engine/commands/clock.py for the
sources; the engine clock is always UTC: no `clock timezone`). Names are spelled here, not by
strftime, so no locale can change them.
"""

from __future__ import annotations

from datetime import UTC, datetime

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")


def clock_time(us: int) -> str:
    """`14:30:05.123 UTC Tue Dec 01 2026` (µs since the epoch, UTC)."""
    t = datetime.fromtimestamp(us // 1_000_000, UTC)
    ms = us % 1_000_000 // 1000
    return (f"{t:%H:%M:%S}.{ms:03d} UTC {DAYS[t.weekday()]} {MONTHS[t.month - 1][:3]} "
            f"{t.day:02d} {t.year}")


def render_clock(us: int) -> str:
    """`show clock`."""
    return clock_time(us) + "\n"


def clock_update(before_us: int, after_us: int) -> str:
    """The message a `clock set` leaves in `show logging` (IOS's SYS-6-CLOCKUPDATE)."""
    return (f"%SYS-6-CLOCKUPDATE: System clock has been updated from {clock_time(before_us)} "
            f"to {clock_time(after_us)}, configured from console.")
