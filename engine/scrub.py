"""The scheduled scrub: every segment of the log, checked on the engine clock.

Opening reads only the tail of the log (events/filelog.py, "Opening"), so damage to older
frames would otherwise wait for the next `log verify` or full replay. The interactive
shell's scheduler asks `ScrubSchedule.due` every tick: when the last clean scrub recorded in
the log directory (`SCRUBBED`, the time it ran) is `EVERY` old, or `FIRST` after
the engine opened if none is recorded, it scrubs (`events.filelog.scrub`, beside the writer:
written frames never change) and returns the message to print if it found damage. A clean
scrub is recorded; a damaged log is scrubbed again `EVERY` later and keeps saying so.

The scrub runs on the system clock (the engine clock's base), not the engine clock: it checks
bytes on a disk, which age in real time, and `clock set` walking a device through two years
must neither trigger scrubs nor put the next one years away. `trustledger log scrub` records
the same clock.
"""

from __future__ import annotations

from pathlib import Path

from engine.ports import Clock
from events.filelog import ScrubReport, last_scrub, record_scrub, scrub

HOUR = 3600 * 1_000_000  # µs
EVERY = 24 * HOUR  # between scrubs
FIRST = HOUR  # after opening, when no scrub is recorded (not at once: the operator just came)


def damage_message(report: ScrubReport) -> str:
    return (f"%LOG-1-SCRUB_DAMAGED: the scrub of the event log found damage: "
            f"{report.damage}. Run 'trustledger log verify' and restore the log from a backup.")


class ScrubSchedule:
    def __init__(self, log_dir: Path, clock: Clock) -> None:
        self.log_dir = log_dir
        self.clock = clock
        last = last_scrub(log_dir)
        self.next_at = clock.now_us() + FIRST if last is None else last + EVERY

    def due(self) -> str | None:
        """Scrub if it is time; the damage message, or None (clean, or not yet due)."""
        now = self.clock.now_us()
        if now < self.next_at:
            return None
        self.next_at = now + EVERY
        report = scrub(self.log_dir)
        if report.damage is not None:
            return damage_message(report)
        record_scrub(self.log_dir, now, report)
        return None
