"""The trustpoint lifecycle: the one place that says which trustpoint command is legal when,
and where each recorded fact leads.

Rule: the exec commands (engine/commands/trustpoint.py, paste.py) fire their trigger on a
`TrustpointModel` through this machine and are refused with a `%` error if it does not take
it; the folds (engine/trustpoints.py) ask `trigger_of` which trigger an event is for that
trustpoint and take the new lifecycle from `LIFECYCLE.destination`.

    declared ──authenticate──▶ authenticated ──enroll──▶ enrolling ──issued──▶ enrolled
        ▲                          ▲   ▲                   │  ▲ pending        │   │
        │                          │   └─fail/cancel───────┘  └──(re)enroll────┘   │revoke
        │                          └────────────lose_certificates──────────────────┤
        │                                                            revoked ◀─────┘
        └── remove (`no crypto ca trustpoint`) from any state        └─enroll─▶ enrolling

`lose_certificates` is what zeroizing the trustpoint's key pair does (as on the router). A
re-enrollment (enrolling with a usable certificate installed) that fails, is cancelled or
loses its new key goes back to enrolled: the installed certificate stays (`renewal_*`; the
guard `has_certificates` tells the two apart). Zeroizing the installed certificate's key while
a re-enrollment with another key pair is in flight leaves a first enrollment (`lose_installed`).
`import` is the cut-and-paste command: legal while a terminal request waits for its
certificate; the certificate it brings in is `received` (more to come) or `issued`.

`revoke` is `RouterCertificateRevoked`: a CRL the trustpoint's CA issued, fetched and verified,
lists one of its router certificates (engine/revocation/, the one place fetched CRLs become
events); a second certificate of the trustpoint (usage keys) found on a CRL later keeps it
revoked. The revoked certificate stays installed, marked (`Status :Revoked`), but it is not
usable: the guards count only certificates no CRL lists, so an enrollment from `revoked` is a
first enrollment (its failure leads to authenticated, not back to enrolled), and zeroizing
the revoked certificate's key is `lose_certificates`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine.machines.table import Edge, Model, Table

if TYPE_CHECKING:
    from engine.trustpoints import TrustpointStatus
    from events.device import ConfigurationCommitted
    from events.keys import KeyPairZeroized
    from events.trustpoint import (
        CertificateReceived,
        EnrollmentFailed,
    )


class Lifecycle(enum.Enum):
    DECLARED = "declared"
    AUTHENTICATED = "authenticated"
    ENROLLING = "enrolling"
    ENROLLED = "enrolled"
    REVOKED = "revoked"


D, A, EG, ED, R = (Lifecycle.DECLARED, Lifecycle.AUTHENTICATED, Lifecycle.ENROLLING,
                   Lifecycle.ENROLLED, Lifecycle.REVOKED)
ANY = tuple(Lifecycle)
RENEWING = ("has_certificates",)  # guard: a re-enrollment (a usable certificate is installed)

TABLE: list[Edge[Lifecycle]] = [
    Edge("authenticate", (D,), A),
    Edge("enroll", (A, ED, R), EG, note="first enrollment, re-enrollment, after revocation"),
    Edge("pending", (EG,), None, note="the CA holds the request; poll again later"),
    Edge("import", (EG,), None, conditions=("awaits_paste",),
         note="crypto ca import: a terminal request waits for its certificate"),
    Edge("received", (EG,), None, note="a certificate in, another key pair still waiting"),
    Edge("issued", (EG,), ED, note="every key pair has its certificate"),
    Edge("fail", (EG,), A, unless=RENEWING, note="FAILURE, retries exhausted, broken exchange"),
    Edge("cancel", (EG,), A, unless=RENEWING, note="crypto ca cancel-enroll"),
    Edge("renewal_failed", (EG,), ED, conditions=RENEWING),
    Edge("renewal_cancelled", (EG,), ED, conditions=RENEWING),
    Edge("renewal_key_lost", (EG,), ED, conditions=RENEWING,
         note="the re-enrollment's key pair was zeroized"),
    Edge("revoke", (ED, R), R, note="our certificate is on the CA's CRL (another one, too)"),
    Edge("lose_certificates", (EG, ED, R), A, note="the key pair was zeroized"),
    Edge("lose_installed", (EG,), None, conditions=RENEWING,
         note="the installed certificate's key was zeroized; the re-enrollment goes on"),
    Edge("lose_some_certificates", (EG, ED, R), None,
         note="one key pair's certificates went, others stay"),
    Edge("remove", ANY, D, note="no crypto ca trustpoint: the status goes with it"),
]

class TrustpointModel(Model):
    """A trustpoint as the machine sees it when a command asks: its lifecycle, and the guards
    the table names, read from its status (`subject`)."""

    def __init__(self) -> None:
        self.state: enum.Enum = D
        self.subject: TrustpointStatus | None = None

    def has_certificates(self) -> bool:
        return self.subject is not None and bool(_usable(self.subject))

    def awaits_paste(self) -> bool:
        e = self.subject.enrollment if self.subject is not None else None
        return e is not None and e.method == "terminal"


LIFECYCLE = Table("trustpoint", list(Lifecycle), D, TABLE, TrustpointModel())


def fire(status: TrustpointStatus, *triggers: str) -> tuple[str, Lifecycle] | None:
    """Decide's question: the first of `triggers` legal for this trustpoint, and where it
    leads; None if none is."""
    return LIFECYCLE.fire(status.lifecycle, status, *triggers)


# -- events -> triggers ---------------------------------------------------------------------------


def _received(ev: CertificateReceived, st: TrustpointStatus) -> str:
    e = st.enrollment
    if e is None or set((*e.received, ev.key_id)) >= set(e.key_ids):
        return "issued"
    return "received"


def _usable(st: TrustpointStatus) -> list[Any]:
    """The router certificates no CRL lists (a revoked one is installed, not usable)."""
    return [c for c in st.certificates if c.revoked_at is None]


def _failed(ev: EnrollmentFailed, st: TrustpointStatus) -> str:
    cancelled = ev.reason == "cancelled"
    if _usable(st):
        return "renewal_cancelled" if cancelled else "renewal_failed"
    return "cancel" if cancelled else "fail"


def _zeroized(ev: KeyPairZeroized, st: TrustpointStatus) -> str | None:
    gone = set(ev.key_ids)
    in_flight = st.enrollment is not None and bool(gone & set(st.enrollment.key_ids))
    kept = [c for c in st.certificates if c.key_id not in gone]
    if len(kept) == len(st.certificates) and not in_flight:
        return None  # not this trustpoint's key pair
    usable = [c for c in kept if c.revoked_at is None]
    if usable and in_flight:
        return "renewal_key_lost"
    if st.enrollment is not None and not in_flight and not usable:
        # the enrollment goes on; it was a re-enrollment only if a usable certificate went
        return "lose_installed" if _usable(st) else "lose_some_certificates"
    if not usable and st.lifecycle is not A:
        return "lose_certificates"
    return "lose_some_certificates"


def _removed(ev: ConfigurationCommitted, st: TrustpointStatus) -> str | None:
    key = f"crypto ca trustpoint {st.name}"
    return "remove" if any(p == (key,) and new is None for p, _old, new in ev.changes) else None


TriggerOf = Callable[[Any, "TrustpointStatus"], str | None]

EVENT_TRIGGERS: dict[str, TriggerOf] = {
    "CACertificateAccepted": lambda ev, st: "authenticate",
    "EnrollmentRequested": lambda ev, st: "enroll",
    "EnrollmentPending": lambda ev, st: "pending" if st.enrollment is not None else None,
    "CertificateReceived": _received,
    "EnrollmentFailed": _failed,
    "KeyPairZeroized": _zeroized,
    "TrustpointCertificatesRemoved": lambda ev, st: "remove",
    "RouterCertificateRevoked": lambda ev, st: (
        "revoke" if any(c.key_id == ev.key_id for c in st.certificates) else None),
    "ConfigurationCommitted": _removed,
}
"""Which trigger an event is for one trustpoint (None: it does not change its lifecycle),
by its stored type name (as the fold tables dispatch): the event modules load when used."""


def trigger_of(ev: Any, st: TrustpointStatus) -> str | None:
    return EVENT_TRIGGERS[ev.type_name](ev, st)
