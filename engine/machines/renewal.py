"""A trustpoint's automatic renewal: the one place that says which phase a renewal is in and
where each recorded fact leads. The trustpoint's own lifecycle (machines/trustpoint.py) stays
`enrolled` through all of it: the current certificate is in use until a new one replaces it.

    idle ──request──▶ requested ──pending──▶ pending ──(poll) pending──▶ pending
      ▲  ▲              │  │  └──fail──▶ retrying ◀──fail── pending       │
      │  │              │  └──held──▶ held ──activate──▶ idle            │
      │  └──issued──────┘                        ▲                      │
      │                                          └────────held──────────┤
      └────────────────────────issued────────────────────────────────────┘

`request` is one attempt (a job `renew <trustpoint>` when `auto-enroll` says the lifetime's
share has passed, or the retry time of a failed attempt has come); its answer is in the same
batch: `issued` (the new certificates replace the current ones), `held` (one's validity starts
later: held as the next certificate until then, when `activate` installs it), `pending` (the
CA holds the request: polled every retry period, `poll <trustpoint>`, up to the retry count),
`received` (one key pair's certificate in, another still waiting) or `fail` (refused,
unreachable, or PENDING past the retry count: retried after a wait that backs off, the
retry period, then twice it, ... at most 60 minutes: engine/renewal/schedule.py). `supersede` is
the operator's own `crypto ca enroll` (or a certificate installed by hand): the renewal in
flight is dropped and the new certificate's lifetime starts the schedule again. `cancel` is a
configuration commit that leaves a retrying renewal with nothing to retry it (`no auto-enroll`,
or no enrollment url): it is idle again, and `auto-enroll` given again starts afresh.

The log records only the ends of a phase, so the fold takes the edges in turn: RenewalRequested
is `request`; each answer event its own trigger.
"""

from __future__ import annotations

import enum

from engine.machines.table import Edge, Model, Table


class RenewalPhase(enum.Enum):
    IDLE = "idle"
    REQUESTED = "requested"
    PENDING = "pending"
    RETRYING = "retrying"
    HELD = "held"


IDLE, REQUESTED, PENDING, RETRYING, HELD = (RenewalPhase.IDLE, RenewalPhase.REQUESTED,
                                            RenewalPhase.PENDING, RenewalPhase.RETRYING,
                                            RenewalPhase.HELD)
ANSWERING = (REQUESTED, PENDING)  # phases a CA answer (to a request or a poll) arrives in

TABLE: list[Edge[RenewalPhase]] = [
    Edge("request", (IDLE, RETRYING), REQUESTED,
         note="auto-enroll's share of the lifetime passed, or a retry is due"),
    Edge("pending", ANSWERING, PENDING, note="the CA holds the request; poll again later"),
    Edge("received", ANSWERING, None, note="one key pair's certificate in, another waiting"),
    Edge("issued", ANSWERING, IDLE, note="the new certificates replace the current ones"),
    Edge("held", ANSWERING, HELD, note="a new certificate not valid yet: held until then"),
    Edge("fail", ANSWERING, RETRYING,
         note="refused, unreachable, or PENDING past the retry count"),
    Edge("activate", (HELD,), IDLE, note="the held certificate's validity began"),
    Edge("cancel", (RETRYING,), IDLE,
         note="no auto-enroll (or no enrollment url): nothing will retry"),
    Edge("supersede", tuple(RenewalPhase), IDLE,
         note="crypto ca enroll, or a certificate installed by hand"),
]


class RenewalModel(Model):
    """A renewal as the machine sees it: its phase (no guards)."""

    def __init__(self) -> None:
        self.state: enum.Enum = IDLE
        self.subject: object | None = None


RENEWAL = Table("renewal", list(RenewalPhase), IDLE, TABLE, RenewalModel())


def after(phase: RenewalPhase, trigger: str) -> RenewalPhase:
    """The fold's lookup: where `trigger` leads from `phase`."""
    return RENEWAL.destination(phase, trigger)


def allows(phase: RenewalPhase, trigger: str) -> bool:
    return RENEWAL.allows(phase, trigger)
