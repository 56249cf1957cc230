"""Work the engine does on its own clock: polling a pending enrollment, trustpool updates.

A feature registers a `due(state, now) -> list[Job]` function. `Engine.run_due()` asks every
such function what is due at the engine clock's now and runs each job exactly like a command:
pure handler, effects through the ports, one atomic append, actor `scheduler`. Because what is
due is derived from the folded state (e.g. an `EnrollmentPending` event's `next_poll_at`), a
restarted engine resumes exactly where the log says it was.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.state import DeviceState


@dataclass(frozen=True)
class Job:
    name: str  # what it is, for logs and transcripts ("poll myca")
    run: Callable[[DeviceState, int], Any]  # (state, now) -> Outcome | generator of effects


Due = Callable[[DeviceState, int], list[Job]]
SCHEDULES: list[Due] = []


def scheduled(fn: Due) -> Due:
    SCHEDULES.append(fn)
    return fn


def due_jobs(state: DeviceState, now: int) -> list[Job]:
    return [job for due in SCHEDULES for job in due(state, now)]
