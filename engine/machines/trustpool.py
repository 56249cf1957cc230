"""The trustpool's automatic update timer: the one place that says when an update may run and
where each recorded fact leads.

    idle ──arm──▶ scheduled ──fetch [has_url]──▶ fetching ──succeeded──▶ scheduled
      ▲             │ ▲ warn [!has_url]             │
      └──disarm─────┘ └─arm──── retrying ◀──failed──┘ ◀─fetch [has_url]─ retrying

A timer watches the earliest expiry among the pool's active certificates (engine.trustpool.
schedule says when its attempts fall: 20, 15, 10, 5, 4, 3, 2, 1 days before that expiry, then
hourly). `arm` (re)starts it whenever the pool changes by hand or by an upgrade (a built-in
bundle recorded, an import, a clean) and the pool has a certificate to watch; `disarm` stops
it when there is none. An attempt is `fetch` (only with a `cabundle url`: the guard
`has_url`), then `succeeded` (the pool is replaced and the timer watches the new pool) or
`failed` (the next attempt is the schedule's next point). Without a url the timer cannot
fetch: `warn` logs the daily `%PKI-4-TRUSTPOOL_AUTO_UPDATE_DISABLED` instead.

`fetching` lasts one scheduled job (the download happens inside it); the log records only its
end, so the folds take two steps through the table for one event: `fetch`, then `succeeded` or
`failed`.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from engine.machines.table import Edge, Model, Table

if TYPE_CHECKING:
    from engine.state import DeviceState


class UpdateTimer(enum.Enum):
    IDLE = "idle"
    SCHEDULED = "scheduled"
    FETCHING = "fetching"
    RETRYING = "retrying"


IDLE, SCHEDULED, FETCHING, RETRYING = (UpdateTimer.IDLE, UpdateTimer.SCHEDULED,
                                        UpdateTimer.FETCHING, UpdateTimer.RETRYING)
RUNNING = (SCHEDULED, RETRYING)
HAS_URL = ("has_url",)  # guard: the trustpool policy has a `cabundle url`

TABLE: list[Edge[UpdateTimer]] = [
    Edge("arm", (IDLE, *RUNNING), SCHEDULED, note="the pool changed and has an expiry to watch"),
    Edge("disarm", (IDLE, *RUNNING), IDLE, note="nothing in the pool expires"),
    Edge("fetch", RUNNING, FETCHING, conditions=HAS_URL, note="an attempt is due"),
    Edge("warn", RUNNING, None, unless=HAS_URL, note="daily, while no url is configured"),
    Edge("succeeded", (FETCHING,), SCHEDULED, note="the downloaded part is replaced"),
    Edge("failed", (FETCHING,), RETRYING, note="the next point of the retry schedule"),
]


class TimerModel(Model):
    """The timer as the machine sees it when the scheduler asks: its state and the device."""

    def __init__(self) -> None:
        self.state: enum.Enum = IDLE
        self.subject: DeviceState | None = None

    def has_url(self) -> bool:
        from engine.trustpool.policy import policy_of

        return self.subject is not None and policy_of(self.subject).cabundle_url is not None


TIMER = Table("trustpool", list(UpdateTimer), IDLE, TABLE, TimerModel())


def fire(state: DeviceState, trigger: str) -> UpdateTimer | None:
    """Decide's question: where `trigger` takes the device's timer, guards checked; None if
    the machine does not take it now."""
    taken = TIMER.fire(state.trustpool.timer, state, trigger)
    return None if taken is None else taken[1]


def after(timer: UpdateTimer, *triggers: str) -> UpdateTimer:
    """The fold's lookup: where `triggers`, taken in turn, lead from `timer`."""
    for trigger in triggers:
        timer = TIMER.destination(timer, trigger)
    return timer

