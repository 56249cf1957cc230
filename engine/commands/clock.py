"""The engine clock: `clock set` and `show clock` (exec), as on IOS XR.

What we follow, and where from (the CA interoperability reference says nothing about the
clock; these were read with the search tool, as excerpts):
- syntax `clock set hh:mm:ss day month year`, EXEC mode, the software clock, not stored in the
  configuration: Cisco IOS XR System Management Command Reference, "Clock Commands on Cisco
  IOS XR Software" (OL-15797-02, yr37clck.pdf), and "Cisco IOS in a Nutshell" (clock set).
  IOS XR also takes `month day`: both orders are declared;
- the month by name (`june`), a four-digit year; a name may be abbreviated to any unique
  prefix in any case, as the IOS parser takes keywords (`Dec`, `december`; `Ju` is ambiguous
  and refused at its column);
- the year `<1993-2035>`: the range Cisco's clock models give a year (IOS's calendar);
- `show clock`'s layout `HH:MM:SS.mmm ZONE Day Mon DD YYYY` (Cisco's show clock page:
  `15:29:03.158 PST Mon Mar 3 1999`; IOS XR pads the day: `Tue Dec 01 2026`), always UTC here
  (no `clock timezone`); no authority symbol (`*`, `.`): there is no NTP to be unsynchronized.
- `clock set` echoes the new time in that layout; a date that does not exist (31 February) is
  refused with a `%` error and changes nothing; setting the clock back is allowed without a
  warning, as on IOS, and `%SYS-6-CLOCKUPDATE` (IOS's message for a manual set) records both
  times in `show logging`.

`clock set` records the offset between the engine clock and the system clock (`ClockSet`,
events/clock.py): the engine clock then runs on from the time set, every timer runs on it,
and moving it forward runs the timers it passes, in order, each at its own time
(engine/schedule.py; the Engine does the walk after the event is durable).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from engine.effects import Outcome
from engine.errors import OperatorError, Reason
from engine.grammar import GRAMMAR, ArgKind, ArgSpec, int_range
from engine.messages import MONTHS
from engine.ports import to_micros

if TYPE_CHECKING:
    from engine.context import Ctx

FIRST_YEAR, LAST_YEAR = 1993, 2035

_TIME = re.compile(r"^(\d{1,2}):(\d{1,2}):(\d{1,2})$")


def _time_of_day(s: str) -> tuple[int, int, int]:
    """`hh:mm:ss`, 24-hour: 00:00:00 to 23:59:59 (one or two digits each)."""
    m = _TIME.match(s)
    if m is None:
        raise ValueError(s)
    h, mi, sec = (int(g) for g in m.groups())
    if h > 23 or mi > 59 or sec > 59:
        raise ValueError(s)
    return h, mi, sec


def _month(s: str) -> int:
    """A month by name or unique prefix, any case: 1-12."""
    found = [i for i, name in enumerate(MONTHS, 1) if name.lower().startswith(s.lower())]
    if len(found) != 1:
        raise ValueError(s)
    return found[0]


TIME_OF_DAY = ArgKind("hh:mm:ss", _time_of_day)
MONTH = ArgKind("MONTH", _month,
                may_become=lambda s: any(m.lower().startswith(s.lower()) for m in MONTHS))

_ARGS = {
    "time": ArgSpec(TIME_OF_DAY, "Current Time"),
    "day": ArgSpec(int_range(1, 31), "Day of the month"),
    "month": ArgSpec(MONTH, "Month of the year"),
    "year": ArgSpec(int_range(FIRST_YEAR, LAST_YEAR), "Year"),
}
_WORDS = {"clock": "Manage the system clock", "set": "Set the time and date"}


def _set(ctx: Ctx) -> Outcome:
    """`clock set`: the offset that makes the engine clock read the time typed, now."""
    from engine.views.state import ClockView

    a = ctx.args
    h, mi, sec = a["time"]
    try:
        when = datetime(a["year"], a["month"], a["day"], h, mi, sec, tzinfo=UTC)
    except ValueError:
        raise OperatorError(Reason.INVALID_VALUE,
                            f"Invalid date: {MONTHS[a['month'] - 1]} {a['year']} has no day "
                            f"{a['day']}.") from None
    from events.clock import ClockSet  # event modules load when used (events.registry)

    set_to = to_micros(when)
    system_now = ctx.now - ctx.state.clock_offset_us
    return Outcome(events=[ClockSet(set_to, set_to - system_now)], output=ClockView(set_to))


# Both orders IOS XR takes: `clock set 14:30:00 1 December 2026` and `... December 1 2026`.
GRAMMAR.action("clock set <time> <day> <month> <year>", help="Set the time and date",
               args=_ARGS, words=_WORDS)(_set)
GRAMMAR.action("clock set <time> <month> <day> <year>", help="Set the time and date",
               args=_ARGS, words=_WORDS)(_set)


@GRAMMAR.action("show clock", help="Display the system clock",
                words={"clock": "Display the system clock"})
def show_clock(ctx: Ctx) -> Outcome:
    from engine.views.state import ClockView

    return Outcome(output=ClockView(ctx.now))
