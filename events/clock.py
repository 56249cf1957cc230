"""Events of the engine clock (`device` stream): `clock set`.

The engine clock is the system clock plus an offset (engine/ports.py `EngineClock`); the
offset is what `clock set` records, so a replay, a restart and an auditor all see the clock the
device ran on. Event times (`at`) are engine times: after a ClockSet they follow the new time.
"""

from __future__ import annotations

from dataclasses import dataclass

from events.registry import Event, event


@event("ClockSet", version=1)
@dataclass(frozen=True, slots=True)
class ClockSet(Event):
    """`clock set`: from now on, engine time = system time + `offset_us`.

    `set_to_us` is the engine time the operator typed (µs since the epoch, UTC); `offset_us`
    is that minus the system clock's reading at that moment (negative when set back behind
    the system clock). The event's own `at` is the engine time just before the set."""

    set_to_us: int
    offset_us: int
