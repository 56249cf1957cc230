"""The trustpoint lifecycle: the one place that says which trustpoint command is legal when.

Rule: decide asks this table whether a trigger is legal from the trustpoint's current state
and where it leads; evolve applies the recorded facts. Replay never fires triggers (a
`transitions` trigger per event would cost more than the whole fold), but a test walks every
event type through both and checks they agree.

    declared ──authenticate──▶ authenticated ──enroll──▶ enrolling ──issued──▶ enrolled
        ▲                          ▲   ▲                   │  ▲ pending        │   │
        │                          │   └─fail/cancel/timeout┘  └──(re)enroll───┘   │revoke
        │                          └────────────lose_certificates──────────────────┤
        │                                                            revoked ◀─────┘
        └── `no crypto ca trustpoint` removes the trustpoint from any state    └─enroll─▶ enrolling

`lose_certificates` is what zeroizing the trustpoint's key pair does (as on the router). A
re-enrollment (enrolled -> enrolling) that fails or is cancelled goes back to enrolled: the
certificate already installed stays (`renewal_failed`, `renewal_cancelled`).
"""

from __future__ import annotations

import enum

from transitions import Machine


class Lifecycle(enum.Enum):
    DECLARED = "declared"
    AUTHENTICATED = "authenticated"
    ENROLLING = "enrolling"
    ENROLLED = "enrolled"
    REVOKED = "revoked"


D, A, EG, ED, R = (Lifecycle.DECLARED, Lifecycle.AUTHENTICATED, Lifecycle.ENROLLING,
                   Lifecycle.ENROLLED, Lifecycle.REVOKED)

# trigger, sources, destination
TABLE: list[tuple[str, list[Lifecycle], Lifecycle]] = [
    ("authenticate", [D], A),
    ("enroll", [A, ED, R], EG),  # first enrollment, re-enrollment, after revocation
    ("pending", [EG], EG),  # the CA holds the request; poll again later
    ("issued", [EG], ED),  # every key pair has its certificate
    ("fail", [EG], A),  # FAILURE, retries exhausted, or a broken exchange
    ("cancel", [EG], A),  # crypto ca cancel-enroll
    ("renewal_failed", [EG], ED),  # a re-enrollment failed: the installed certificate stays
    ("renewal_cancelled", [EG], ED),  # a re-enrollment was cancelled: likewise
    ("revoke", [ED], R),  # our certificate is on the CA's CRL
    ("lose_certificates", [EG, ED, R], A),  # the key pair was zeroized
]

MACHINE = Machine(
    model=None,
    states=list(Lifecycle),
    transitions=[{"trigger": t, "source": [s.name for s in src], "dest": dst.name}
                 for t, src, dst in TABLE],
    initial=Lifecycle.DECLARED,
    auto_transitions=False,
    ignore_invalid_triggers=False,
)
"""One machine for every trustpoint (it holds no models): the table above, validated."""


def next_state(current: Lifecycle, trigger: str) -> Lifecycle | None:
    """Where `trigger` leads from `current`, or None if it is not legal there."""
    for t in MACHINE.get_transitions(trigger=trigger, source=current.name):
        return Lifecycle[str(t.dest)]
    return None


def triggers_from(current: Lifecycle) -> list[str]:
    return sorted(MACHINE.get_triggers(current.name))
