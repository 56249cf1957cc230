"""The CA request machine (engine/machines/ca_request.py), given events / when an event or a
decision / then the status the machine says. Every request event is walked from every status,
through the machine and through the CA's fold; they agree. Decisions the machine refuses raise
the CAError operators know; facts it refuses are refused by the fold."""

from __future__ import annotations

import dataclasses

import pytest

from engine.ca.decide import (
    Approval,
    Policy,
    decide_approve,
    decide_enrollment,
    decide_issue,
    decide_reject,
    decide_unissuable,
)
from engine.ca.errors import CAError
from engine.ca.state import CAState, RequestStatus, evolve
from engine.machines import ca_request
from engine.machines.ca_request import EVENT_TRIGGERS, REQUESTS, TABLE
from engine.machines.table import IllegalTransition
from engine.ports import to_micros
from events.ca import (
    CAInitialized,
    CertificateIssued,
    RequestApproved,
    RequestReceived,
    RequestRejected,
)
from events.registry import Event
from tests.ca.ca_support import T0, enroll_cmd, rsa_key

NOW = to_micros(T0)
P, AP, RJ, IS = (RequestStatus.PENDING, RequestStatus.APPROVED, RequestStatus.REJECTED,
                 RequestStatus.ISSUED)
CMD = enroll_cmd(rsa_key(1), "r1")
TXID = CMD.transaction_id


def fold(state: CAState, events: list[Event]) -> CAState:
    for ev in events:
        state = evolve(state, ev, NOW)
    return state


def received() -> RequestReceived:
    return RequestReceived(TXID, CMD.message_type, CMD.subject, CMD.subject_text,
                           CMD.public_key, CMD.requested_extensions, CMD.signer_certificate,
                           "none", None, b"")


def issued() -> CertificateIssued:
    return CertificateIssued(TXID, "1a", b"cert", CMD.subject_text, NOW, NOW + 1)


BASE: list[Event] = [CAInitialized("CN=Test CA", "rsa:2048", b"ca", None, None, 365, 86400),
                     received()]
HISTORIES: dict[RequestStatus, list[Event]] = {
    P: BASE,
    AP: [*BASE, RequestApproved(TXID, "operator")],
    RJ: [*BASE, RequestRejected(TXID, "no")],
    IS: [*BASE, RequestApproved(TXID, "operator"), issued()],
}
FACTS: list[Event] = [RequestApproved(TXID, "operator"), RequestRejected(TXID, "no"), issued(),
                      received()]
CASES = [(s, f) for s in HISTORIES for f in FACTS]


def given(status: RequestStatus) -> CAState:
    state = fold(CAState(), HISTORIES[status])
    assert state.requests[TXID].status is status
    return state


@pytest.mark.parametrize(("status", "fact"), CASES,
                         ids=[f"{s.value}-{type(f).__name__}" for s, f in CASES])
def test_machine_and_fold_agree_on_every_fact(status: RequestStatus, fact: Event) -> None:
    before = given(status)
    trigger = EVENT_TRIGGERS[type(fact)](fact)
    dest = ca_request.fire(status, trigger)  # the request is issuable: the guard holds
    if dest is None:
        with pytest.raises(IllegalTransition, match=trigger):
            evolve(before, fact, NOW)
        return
    assert evolve(before, fact, NOW).requests[TXID].status is dest


def test_a_new_request_is_born_pending() -> None:
    assert REQUESTS.initial is P
    assert fold(CAState(), BASE).requests[TXID].status is P


def test_every_event_type_of_a_request_is_walked() -> None:
    assert set(EVENT_TRIGGERS) == {type(f) for f in FACTS}


@pytest.mark.parametrize("status", list(RequestStatus))
def test_every_trigger_from_every_status(status: RequestStatus) -> None:
    for edge in TABLE:
        for problem in ("", "cannot issue"):
            legal = status in edge.sources and not (problem and "issuable" in edge.conditions)
            dest = ca_request.fire(status, edge.trigger, problem)
            assert (dest is not None) == legal, (status, edge.trigger, problem)
            if dest is not None:
                assert dest is (edge.dest or status)


# -- decisions: the machine says which are legal; refusals word it as before ------------------


def refused(call: object) -> str:
    assert callable(call)
    with pytest.raises(CAError) as e:
        call()
    return e.value.message


@pytest.mark.parametrize("status", list(RequestStatus))
def test_approve(status: RequestStatus) -> None:
    state = given(status)
    if status in (P, RJ):
        assert decide_approve(state, TXID) == [RequestApproved(TXID, "operator")]
    else:
        assert refused(lambda: decide_approve(state, TXID)) == (
            f"% request {TXID} is {status.value}, not pending or rejected")


@pytest.mark.parametrize("status", list(RequestStatus))
def test_reject(status: RequestStatus) -> None:
    state = given(status)
    if status in (P, AP):
        assert decide_reject(state, TXID, "why") == [RequestRejected(TXID, "why")]
    else:
        assert refused(lambda: decide_reject(state, TXID, "why")) == (
            f"% request {TXID} is {status.value}, not pending")


@pytest.mark.parametrize("status", list(RequestStatus))
def test_issue_and_cannot_issue(status: RequestStatus) -> None:
    state = given(status)
    if status is AP:
        assert [type(e) for e in decide_issue(state, TXID, "2b", b"c", NOW, NOW + 1)] == [
            CertificateIssued]
        assert decide_unissuable(state, TXID, "bad") == [RequestRejected(TXID, "bad")]
    else:
        message = f"% request {TXID} is not approved"
        assert refused(lambda: decide_issue(state, TXID, "2b", b"c", NOW, NOW + 1)) == message
        assert refused(lambda: decide_unissuable(state, TXID, "bad")) == message


@pytest.mark.parametrize("status", [P, RJ])
def test_the_issuable_guard_refuses_approval(status: RequestStatus) -> None:
    """A request no certificate can be issued for: the guard refuses `approve`, worded by
    who rejected it (the CA's own rejection stays)."""
    events = HISTORIES[status]
    broken = dataclasses.replace(events[1], public_key=b"not a key")
    state = fold(CAState(), [events[0], broken, *events[2:]])
    message = refused(lambda: decide_approve(state, TXID))
    if status is RJ:
        assert "was rejected by the CA, not by an operator" in message
    else:
        assert "cannot be approved" in message and message.endswith("; reject it")


def test_a_renewal_under_a_finished_id_starts_anew_only_from_issued_or_rejected() -> None:
    assert REQUESTS.sources("renew_anew") == (RJ, IS)
    state = given(P)
    # A re-sent request for a pending transaction: no events (answered from its status).
    assert decide_enrollment(state, CMD, Policy(Approval.MANUAL), NOW) == []
