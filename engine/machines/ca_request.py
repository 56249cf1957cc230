"""A certificate request at the built-in CA: which operator or SCEP command may move it, and
where each recorded fact leads.

Rule: the CA's decisions (engine/ca/decide.py) fire their trigger through this machine and are
refused if it does not take it; the CA's folds (engine/ca/state.py) take a request's new status
from `REQUESTS.destination`, the trigger read off the event (`EVENT_TRIGGERS`).

    (RequestReceived) ──▶ pending ──approve──▶ approved ──issue──▶ issued
                           ▲  │ ▲                 │                  │
                           │  │ └─────approve─────┼── rejected ◀─────┼──┐
                           │  └──────reject───────┼──▶    ▲          │  │renew_anew
                           │                      └─reject/cannot_issue │
                           └────────────renew_anew──────────────────────┘

A request is born pending (the machine's initial state). `approve` is guarded by `issuable`:
the CA approves nothing it cannot sign, and an operator's approval takes back an operator's
rejection only (one the CA made because it cannot sign the request stays). `cannot_issue` is
the CA's own rejection of an approved request it found it cannot sign. `renew_anew`: a renewal
that reuses a finished transaction's ID (clients that derive the ID from the key) starts a new
request under that ID.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

from engine.machines.table import Edge, Model, Table
from events.ca import CertificateIssued, RequestApproved, RequestReceived, RequestRejected


class RequestStatus(enum.Enum):
    PENDING = "pending"
    APPROVED = "approved"  # approved, certificate not yet issued
    REJECTED = "rejected"
    ISSUED = "issued"


P, AP, RJ, IS = (RequestStatus.PENDING, RequestStatus.APPROVED, RequestStatus.REJECTED,
                 RequestStatus.ISSUED)

TABLE: list[Edge[RequestStatus]] = [
    Edge("approve", (P, RJ), AP, conditions=("issuable",),
         note="auto or the operator; a rejection is taken back only if an operator made it"),
    Edge("reject", (P, AP), RJ, note="the operator (an approved request not yet issued too)"),
    Edge("cannot_issue", (AP,), RJ, note="the CA found it cannot sign the request"),
    Edge("issue", (AP,), IS),
    Edge("renew_anew", (IS, RJ), P, note="a renewal reusing a finished transaction's ID"),
]


class RequestModel(Model):
    """A request as the machine sees it when a decision asks: its status, and whether a
    certificate can be issued for it (`subject`: "" if it can, else why not)."""

    def __init__(self) -> None:
        self.state: enum.Enum = P
        self.subject: str | None = None

    def issuable(self) -> bool:
        return not self.subject


REQUESTS = Table("ca_request", list(RequestStatus), P, TABLE, RequestModel())


def fire(status: RequestStatus, trigger: str, problem: str = "") -> RequestStatus | None:
    """Decide's question: where `trigger` takes a request in `status` (`problem`: why no
    certificate can be issued for it, "" if one can); None if it is not legal there."""
    taken = REQUESTS.fire(status, problem, trigger)
    return None if taken is None else taken[1]


EVENT_TRIGGERS: dict[type, Callable[[Any], str]] = {
    RequestReceived: lambda ev: "renew_anew",  # for a known transaction ID; else born pending
    RequestApproved: lambda ev: "approve",
    RequestRejected: lambda ev: "reject",
    CertificateIssued: lambda ev: "issue",
}
"""Which trigger an event is for the request it names."""
