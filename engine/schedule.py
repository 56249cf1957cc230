"""Work the engine does on its own clock: polling a pending enrollment, trustpool updates.

Every timer is a due function `due(state, now) -> list[Job]`, listed in ONE table,
`engine/device_timers.py` (like the fold table: nothing registers itself on import). A due
function is pure over the folded state: it returns a `Job` for each piece of work due at or
before `now`, with the time it became due. `Engine.run_due()` runs each job exactly like a
command: pure handler, effects through the ports, one atomic append, actor `scheduler`.
Because what is due is derived from the folded state (e.g. an `EnrollmentPending` event's
`next_poll_at`), a restarted engine resumes exactly where the log says it was.

Rules of operation:
- Time is the engine clock (engine/ports.py `EngineClock`: the system clock plus the offset
  `clock set` recorded). A job's events must move its own due time past the `now` it ran at
  (or clear it); otherwise it is due again at the next tick.
- Ticks (the shell's scheduler thread every second, a batch before each line, a restart) run
  every due job once, at the current engine time.
- `clock set` forward walks (`walk`): the earliest due job runs first, at its own due time (never
  before the previous step), then the due functions are asked again, so a job that schedules
  its next attempt before the new time runs again in the same walk, at that time. Each
  (name, due time) runs at most once per walk, and a walk runs at most `WALK_LIMIT` jobs.
- A notice (`Job.notice`: a warning that repeats, e.g. the trustpool's daily no-url warning)
  is not work to catch up on: a walk runs it once, after the work, at the walk's end time, if it
  is still due then (the work may have made it moot). A two-year jump prints one warning that
  reads the time it is now, not 700 dated ones, and notices never crowd work out of the limit.
- `clock set` back runs nothing, and nothing runs twice: a job that ran moved its due time past
  the time it ran at, which is still ahead of the clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from engine.state import DeviceState

WALK_LIMIT = 1000
"""Jobs one `clock set` runs at most (hourly retries over a year would be 8,760): past it, the
walk stops and says so; the ticks run what is still due, at the current time."""


@dataclass(frozen=True)
class Job:
    """A timer's work, due at `due_at` (engine time, µs)."""

    name: str  # what it is, for logs and transcripts ("poll myca"); its first word names
    #            the `%PKI-3-<WORD>` message of a job that fails
    due_at: int  # µs, engine time: when it became due (a walk runs jobs in this order)
    run: Callable[[DeviceState, int], Any]  # (state, now) -> Outcome | generator of effects
    notice: bool = False  # a repeating warning: a walk runs it once, at its end (see above)


Due = Callable[[DeviceState, int], list[Job]]
"""(state, now) -> the jobs due at or before `now` (engine time, µs)."""

_TABLE: list[tuple[Due, ...]] = []  # the device's timers, once loaded


def device_timers() -> tuple[Due, ...]:
    """The device's due functions (`engine/device_timers.py`), loaded on first use: they live
    in the feature modules, which import this one."""
    if not _TABLE:
        from engine.device_timers import DEVICE_TIMERS

        _TABLE.append(DEVICE_TIMERS)
    return _TABLE[0]


def due_jobs(state: DeviceState, now: int, timers: Sequence[Due] | None = None) -> list[Job]:
    """Every job due at or before `now`, earliest first (then in table order)."""
    found = [job for due in (device_timers() if timers is None else timers)
             for job in due(state, now)]
    return sorted(found, key=lambda job: job.due_at)


class Step(NamedTuple):
    """One job of a walk and the engine time it runs at. (A NamedTuple: every open defines
    it, and a frozen dataclass costs ~0.3 ms to define; issue 12.)"""

    job: Job
    now: int


def walk(state_of: Callable[[], DeviceState], start: int, until: int,
         timers: Sequence[Due] | None = None) -> Iterator[Step]:
    """The steps of a `clock set` from `start` forward to `until`: the earliest job due at or
    before `until` that has not run in this walk, at max(its due time, the previous step's
    time, `start`). The caller runs each step (appending its events) before asking for the
    next one; `state_of` then gives the state after it."""
    ran: set[tuple[str, int]] = set()
    noticed: set[str] = set()
    at = start
    for _ in range(WALK_LIMIT):
        due = [j for j in due_jobs(state_of(), until, timers) if (j.name, j.due_at) not in ran]
        job = next((j for j in due if not j.notice), None)
        if job is None:  # the work is done: each notice still due, once, at the end
            job = next((j for j in due if j.name not in noticed), None)
            if job is None:
                return
            noticed.add(job.name)
            at = until
        ran.add((job.name, job.due_at))
        at = max(at, job.due_at)
        yield Step(job, at)


def walk_cut_short(state: DeviceState, until: int, ran: int) -> bool:
    """Whether a walk that ran `ran` jobs stopped at WALK_LIMIT with work still due."""
    return ran >= WALK_LIMIT and bool(due_jobs(state, until))


__all__ = ["WALK_LIMIT", "Due", "Job", "Step", "device_timers", "due_jobs", "walk",
           "walk_cut_short"]
