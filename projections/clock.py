"""`show clock` and `clock set`'s echo: the engine clock in IOS XR's layout,
`14:30:05.123 UTC Tue Dec 01 2026` (engine.messages.clock_time; sources in
engine/commands/clock.py)."""

from __future__ import annotations

from engine.messages import clock_time


def render_clock(us: int) -> str:
    return clock_time(us) + "\n"
