"""The trustpoint lifecycle machine (engine/machines/trustpoint.py), given events / when an
event or a command / then the state the machine says. Every event type is walked from every
state the events can reach, through the machine (its trigger fired, guards checked) and through
the fold; they agree. Illegal commands are refused with the `%` line operators know and write
nothing; illegal facts are refused by the fold (IllegalTransition), never folded silently."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from engine import Engine
from engine.config import Change
from engine.machines.table import IllegalTransition
from engine.machines.trustpoint import LIFECYCLE, TABLE, Lifecycle, fire, trigger_of
from engine.state import DeviceState, evolve
from engine.trustpoints import TrustpointStatus, status_of
from events.device import ConfigurationCommitted
from events.keys import KeyPairZeroized
from events.registry import Event
from events.trustpoint import (
    CACertificateAccepted,
    CertificateReceived,
    EnrollmentFailed,
    EnrollmentPending,
    EnrollmentRequested,
    RouterCertificateRevoked,
    TrustpointCertificatesRemoved,
)

TP = "tp"
D, A, EG, ED, R = (Lifecycle.DECLARED, Lifecycle.AUTHENTICATED, Lifecycle.ENROLLING,
                   Lifecycle.ENROLLED, Lifecycle.REVOKED)


def declared() -> ConfigurationCommitted:
    key = f"crypto ca trustpoint {TP}"
    return ConfigurationCommitted(1000000001, "admin", "", "", (
        Change((key,), None, key).to_wire(),
        Change((key, "enrollment"), None, "enrollment url http://127.0.0.1:9").to_wire()))


def accepted() -> CACertificateAccepted:
    return CACertificateAccepted(TP, b"ca", (), (), "scep")


def requested(*keys: str, method: str = "scep") -> EnrollmentRequested:
    return EnrollmentRequested(TP, keys, tuple("general" for _ in keys),
                               tuple(f"T-{k}" for k in keys), "CN=r1", ("fp",) * len(keys),
                               method, 1, 10)


def received(key: str) -> CertificateReceived:
    return CertificateReceived(TP, key, "general", b"cert-" + key.encode(), f"T-{key}")


def failed(reason: str = "failure") -> EnrollmentFailed:
    return EnrollmentFailed(TP, "T", reason, "", "")


def revoked(key: str) -> RouterCertificateRevoked:
    return RouterCertificateRevoked(TP, key, "0A1B", 10**9 - 1, "keyCompromise", "ab" * 32)


def zeroized(*keys: str) -> KeyPairZeroized:
    return KeyPairZeroized("label", "rsa", keys, "zeroize")


HISTORIES: dict[str, list[Event]] = {
    "declared": [declared()],
    "authenticated": [declared(), accepted()],
    "enrolling": [declared(), accepted(), requested("k1")],
    "enrolling-pasted": [declared(), accepted(), requested("k1", "k2", method="terminal")],
    "enrolling-half-in": [declared(), accepted(), requested("k1", "k2"), received("k1")],
    "enrolled": [declared(), accepted(), requested("k1"), received("k1")],
    "renewing": [declared(), accepted(), requested("k1"), received("k1"), requested("k2")],
    "revoked": [declared(), accepted(), requested("k1"), received("k1"), revoked("k1")],
    "enrolling-after-revocation": [declared(), accepted(), requested("k1"), received("k1"),
                                   revoked("k1"), requested("k2")],
}
"""Every lifecycle state the events reach, with the guard cases."""

FACTS: list[Event] = [
    accepted(), requested("k9"), EnrollmentPending(TP, "T-k1", 1, 60), received("k1"),
    received("k2"), failed(), failed("cancelled"), zeroized("k1"), zeroized("k2"),
    zeroized("k7"), TrustpointCertificatesRemoved(TP, "commit", 1000000002, (), (), ()),
    revoked("k1"), revoked("k7"),
]


def given(events: list[Event]) -> DeviceState:
    state = DeviceState()
    for seq, ev in enumerate(events, 1):
        state = evolve(state, ev, seq * 1000, seq)
    return state


def lifecycle(state: DeviceState) -> Lifecycle:
    return status_of(state, TP).lifecycle


CASES = [(h, ev) for h in HISTORIES for ev in FACTS]


@pytest.mark.parametrize(("history", "fact"), CASES,
                         ids=[f"{h}-{type(ev).__name__}-{i}" for i, (h, ev) in enumerate(CASES)])
def test_machine_and_fold_agree_on_every_fact(history: str, fact: Event) -> None:
    before = given(HISTORIES[history])
    st = status_of(before, TP)
    trigger = trigger_of(fact, st)
    if trigger is None:  # a fact about another key pair, or nothing in flight to poll
        assert lifecycle(evolve(before, fact, 10**9, 99)) is st.lifecycle
        return
    taken = fire(st, trigger)
    if taken is None:  # the machine refuses it: so does the fold, loudly
        with pytest.raises(IllegalTransition, match=trigger):
            evolve(before, fact, 10**9, 99)
        return
    assert taken[0] == trigger
    assert lifecycle(evolve(before, fact, 10**9, 99)) is taken[1]
    assert LIFECYCLE.destination(st.lifecycle, trigger) is taken[1]


def test_every_event_type_the_table_maps_is_walked() -> None:
    from engine.machines.trustpoint import EVENT_TRIGGERS

    walked = {ev.type_name for ev in FACTS} | {ConfigurationCommitted.type_name}
    assert set(EVENT_TRIGGERS) == walked


@pytest.mark.parametrize(("history", "fact", "then"), [
    ("authenticated", requested("k9"), EG),
    ("enrolling", received("k1"), ED),
    ("enrolling-half-in", received("k2"), ED),
    ("enrolling-pasted", received("k1"), EG),  # k2 still waits
    ("enrolling", failed(), A),
    ("enrolling", failed("cancelled"), A),
    ("renewing", failed(), ED),  # the installed certificate stays
    ("renewing", failed("cancelled"), ED),
    ("renewing", zeroized("k2"), ED),  # the re-enrollment lost its key
    ("renewing", zeroized("k1"), EG),  # the installed key went; the new request goes on
    ("enrolled", zeroized("k1"), A),
    ("enrolling", zeroized("k1"), A),
    ("enrolled", TrustpointCertificatesRemoved(TP, "commit", 1000000002, (), (), ()), D),
    ("enrolled", revoked("k1"), R),
    ("enrolled", revoked("k7"), ED),  # another key pair's certificate: not ours
    ("revoked", requested("k2"), EG),
    ("revoked", zeroized("k1"), A),
    ("enrolling-after-revocation", received("k2"), ED),
    # the revoked certificate is no fallback: a failed enrollment from revoked is a first one
    ("enrolling-after-revocation", failed(), A),
    ("enrolling-after-revocation", failed("cancelled"), A),
    ("enrolling-after-revocation", zeroized("k2"), A),
    ("enrolling-after-revocation", zeroized("k1"), EG),  # the new request goes on
])
def test_given_when_then(history: str, fact: Event, then: Lifecycle) -> None:
    assert lifecycle(evolve(given(HISTORIES[history]), fact, 10**9, 99)) is then


def test_zeroizing_the_installed_key_during_a_reenrollment_keeps_it_cancellable() -> None:
    """The re-enrollment (new key pair k2) goes on after k1, the installed certificate's key,
    is zeroized: still enrolling, still polled, and `cancel` (now a first enrollment's, with no
    certificate to fall back on) leads to authenticated. Before the table said so, the fold
    made it `authenticated` with a request in flight that cancel-enroll could not stop."""
    state = evolve(given(HISTORIES["renewing"]), zeroized("k1"), 10**9, 99)
    st = status_of(state, TP)
    assert st.lifecycle is EG and st.certificates == () and st.enrollment is not None
    assert fire(st, "cancel", "renewal_cancelled") == ("cancel", A)


# -- the machine's guards ---------------------------------------------------------------------


def status(history: str) -> TrustpointStatus:
    return status_of(given(HISTORIES[history]), TP)


@pytest.mark.parametrize("history", list(HISTORIES))
def test_every_trigger_from_every_state(history: str) -> None:
    """From each state, exactly the table's triggers whose guards hold are taken."""
    st = status(history)
    for edge in TABLE:
        guards_hold = all(getattr(_Guards(st), g)() for g in edge.conditions) and not any(
            getattr(_Guards(st), g)() for g in edge.unless)
        legal = st.lifecycle in edge.sources and guards_hold
        taken = fire(st, edge.trigger)
        assert (taken is not None) == legal, (history, edge.trigger)
        if taken is not None:
            assert taken == (edge.trigger, edge.dest or st.lifecycle)


class _Guards:
    """The guards, computed here from the status independently of the machine's model."""

    def __init__(self, st: TrustpointStatus) -> None:
        self.st = st

    def has_certificates(self) -> bool:
        return any(c.revoked_at is None for c in self.st.certificates)

    def awaits_paste(self) -> bool:
        return self.st.enrollment is not None and self.st.enrollment.method == "terminal"


def test_a_revocation_marks_the_certificate_and_a_new_one_replaces_it() -> None:
    st = status("revoked")
    assert st.lifecycle is R
    (cert,) = st.certificates
    assert (cert.key_id, cert.revoked_at, cert.revocation_reason) == ("k1", 10**9 - 1,
                                                                      "keyCompromise")
    assert fire(st, "enroll") == ("enroll", EG)
    assert fire(st, "authenticate") is None
    again = status_of(evolve(given(HISTORIES["enrolling-after-revocation"]), received("k2"),
                             10**9, 99), TP)
    (new,) = again.certificates
    assert (new.key_id, new.revoked_at) == ("k2", None)


# -- commands: refused with the `%` line operators know, nothing written ----------------------


REFUSALS: dict[str, tuple[str, Callable[[str], bool]]] = {
    "authenticate": ("crypto ca authenticate tp", lambda h: h != "declared"),
    "enroll": ("crypto ca enroll tp", lambda h: h.startswith(("declared", "enrolling",
                                                               "renewing"))),
    "cancel-enroll": ("crypto ca cancel-enroll tp",
                      lambda h: not h.startswith(("enrolling", "renewing"))),
    "import": ("crypto ca import tp certificate", lambda h: h != "enrolling-pasted"),
}

MESSAGES = {
    ("authenticate", "*"): "% Trustpoint tp already has an authenticated CA certificate. "
                           "Remove the trustpoint (no crypto ca trustpoint) to authenticate "
                           "another CA.",
    ("enroll", "declared"): "% The CA of trustpoint tp is not authenticated. Use "
                            "'crypto ca authenticate tp' first.",
    ("enroll", "*"): "% An enrollment for trustpoint tp is already in progress. "
                     "Use 'crypto ca cancel-enroll tp' to stop it.",
    ("cancel-enroll", "*"): "% Trustpoint tp has no enrollment in progress.",
    ("import", "*"): "% Trustpoint tp has no cut-and-paste request waiting for a "
                     "certificate. Use 'crypto ca enroll tp' first.",
}

COMMAND_CASES = [(c, h) for c in REFUSALS for h in HISTORIES]


@pytest.mark.parametrize(("command", "history"), COMMAND_CASES,
                         ids=[f"{c}-{h}" for c, h in COMMAND_CASES])
def test_commands_from_every_state(command: str, history: str) -> None:
    line, refused = REFUSALS[command]
    e = Engine.frozen(given(HISTORIES[history]), at=10**9)
    r = e.execute(line, answers=["x", "x", "x"])
    message = MESSAGES.get((command, history)) or MESSAGES[command, "*"]
    assert r.events == []
    if refused(history):
        assert r.output == message + "\n"
    else:  # past the machine: refused later, by the frozen engine or a missing key
        assert r.output != message + "\n"
        assert message not in r.output
