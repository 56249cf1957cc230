"""The CA's commands over events: given the events a CA holds, when a command runs, then these
events, and these effects asked of the runtime. No keys, no sockets, no log: each effect gets a
canned answer (`Script`), so what a command decides is visible event by event."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from engine.ca import profile
from engine.ca.commands import (
    Approve,
    Decided,
    DrawSerial,
    Enrollment,
    IssueApproved,
    MintChallenge,
    RefreshCRL,
    Reject,
    Revoke,
    SignCertificate,
    SignCRL,
    Signed,
    SignRequest,
    decide,
    fold,
)
from engine.ca.decide import Approval, Policy
from engine.ca.errors import CAError, FailInfo, ScepRefusal
from engine.ca.offline import request_of
from engine.ca.state import CAState
from engine.effects import DrawRandom, Effect, Now
from engine.ports import to_micros
from events.ca import (
    CAInitialized,
    CertificateIssued,
    CertificateRevoked,
    ChallengeMinted,
    CRLIssued,
    RequestApproved,
    RequestReceived,
    RequestRejected,
)
from events.registry import Event
from tests.ca.ca_support import T0, enroll_cmd, make_csr, rsa_key

NOW = to_micros(T0)
DAY = 86400 * 1_000_000
CRL_URL = "http://127.0.0.1:8080/crl/ca.crl"
STATIC = Policy(Approval.AUTO, hashlib.sha256(b"pw").digest())
MANUAL = Policy(Approval.MANUAL)
SERIAL = (1 << 100) + 5


def given(*events: Event) -> CAState:
    return fold(CAState(), events, NOW - DAY)


CA = (CAInitialized("CN=Test CA", "rsa:2048", b"ca-der", None, None, 365, 7 * 86400),
      CRLIssued(1, b"crl-1", NOW - DAY, NOW + 6 * DAY))


@dataclass
class Script:
    """Canned answers to a handler's effects; records every effect asked."""

    now: int = NOW
    serials: list[int] = field(default_factory=lambda: [SERIAL])
    refuse_signing: str = ""
    asked: list[Effect] = field(default_factory=list)

    def answer(self, eff: Effect) -> Any:
        self.asked.append(eff)
        if isinstance(eff, Now):
            return self.now
        if isinstance(eff, DrawRandom):
            return bytes(range(eff.size))
        if isinstance(eff, DrawSerial):
            return self.serials.pop(0)
        if isinstance(eff, SignCertificate):
            if self.refuse_signing:
                raise ScepRefusal(FailInfo.BAD_REQUEST, self.refuse_signing)
            return Signed(b"cert-%x" % eff.serial, to_micros(eff.not_before),
                          to_micros(eff.not_after))
        if isinstance(eff, SignCRL):
            return b"crl-%d" % eff.number
        raise AssertionError(f"unexpected effect {eff}")


def when(state: CAState, command: object, script: Script | None = None) -> Decided:
    """Drive the command's handler as the runtime does (errors thrown in at the yield)."""
    script = script or Script()
    gen = decide(state, command)
    reply: Any = None
    error: Exception | None = None
    while True:
        try:
            eff = gen.send(reply) if error is None else gen.throw(error)
        except StopIteration as stop:
            decided: Decided = stop.value
            # The state the service makes current is the one its events fold to (replay).
            assert decided.state == fold(state, decided.events, decided.at)
            return decided
        try:
            reply, error = script.answer(eff), None
        except ScepRefusal as e:
            error = e


def test_an_approved_enrollment_is_issued_in_the_same_batch() -> None:
    state = given(*CA)
    cmd = enroll_cmd(rsa_key(1), "r1", challenge="pw")
    script = Script()
    decided = when(state, Enrollment(cmd, STATIC, CRL_URL), script)
    txid = cmd.transaction_id
    assert [type(e) for e in decided.events] == [RequestReceived, RequestApproved,
                                                 CertificateIssued]
    assert decided.events[1] == RequestApproved(txid, "auto")
    not_before = T0 - profile.CLOCK_SKEW
    not_after = T0 + timedelta(days=365)
    assert decided.events[2] == CertificateIssued(
        txid, profile.serial_hex(SERIAL), b"cert-%x" % SERIAL, "CN=r1,O=Example",
        to_micros(not_before), to_micros(not_after))
    assert script.asked[0] == Now() and script.asked[1] == DrawSerial()
    sign = script.asked[2]
    assert isinstance(sign, SignCertificate)
    assert (sign.serial, sign.not_before, sign.not_after, sign.crl_url) == (
        SERIAL, not_before, not_after, CRL_URL)
    assert (decided.at, decided.correlation) == (NOW, txid)


def test_without_a_cdp_url_an_approved_enrollment_waits_for_a_server() -> None:
    cmd = enroll_cmd(rsa_key(1), "r1", challenge="pw")
    script = Script()
    decided = when(given(*CA), Enrollment(cmd, STATIC, None), script)
    assert [type(e) for e in decided.events] == [RequestReceived, RequestApproved]
    assert script.asked == [Now()]  # nothing signed


def test_a_serial_already_issued_is_drawn_again() -> None:
    first = enroll_cmd(rsa_key(1), "r1", challenge="pw")
    state = when(given(*CA), Enrollment(first, STATIC, CRL_URL)).state
    script = Script(serials=[SERIAL, SERIAL + 2])
    second = enroll_cmd(rsa_key(2), "r2", challenge="pw")
    decided = when(state, Enrollment(second, STATIC, CRL_URL), script)
    issued = decided.events[-1]
    assert isinstance(issued, CertificateIssued) and issued.serial == profile.serial_hex(
        SERIAL + 2)
    assert script.asked.count(DrawSerial()) == 2


def test_approving_a_pending_request_issues_it() -> None:
    cmd = enroll_cmd(rsa_key(1), "r1")
    state = when(given(*CA), Enrollment(cmd, MANUAL, CRL_URL)).state
    decided = when(state, Approve(cmd.transaction_id, CRL_URL))
    assert [type(e) for e in decided.events] == [RequestApproved, CertificateIssued]
    assert decided.events[0] == RequestApproved(cmd.transaction_id, "operator")


def test_an_approved_request_the_profile_refuses_is_recorded_as_rejected() -> None:
    cmd = enroll_cmd(rsa_key(1), "r1", challenge="pw")
    state = when(given(*CA), Enrollment(cmd, STATIC, None)).state
    decided = when(state, IssueApproved(cmd.transaction_id, CRL_URL),
                   Script(refuse_signing="cannot issue: no"))
    assert decided.events == [RequestRejected(cmd.transaction_id, "cannot issue: no")]


def test_a_rejection_is_one_event() -> None:
    cmd = enroll_cmd(rsa_key(1), "r1")
    state = when(given(*CA), Enrollment(cmd, MANUAL, None)).state
    decided = when(state, Reject(cmd.transaction_id, "no"))
    assert decided.events == [RequestRejected(cmd.transaction_id, "no")]


def test_a_revocation_issues_the_next_crl_in_the_same_batch() -> None:
    cmd = enroll_cmd(rsa_key(1), "r1", challenge="pw")
    state = when(given(*CA), Enrollment(cmd, STATIC, CRL_URL)).state
    script = Script()
    decided = when(state, Revoke(profile.serial_hex(SERIAL), "keyCompromise"), script)
    this_update = T0.replace(microsecond=0)
    assert decided.events == [
        CertificateRevoked(profile.serial_hex(SERIAL), "keyCompromise", NOW),
        CRLIssued(2, b"crl-2", to_micros(this_update), to_micros(this_update) + 7 * DAY)]
    sign = script.asked[-1]
    assert isinstance(sign, SignCRL)
    assert [e.serial for e in sign.entries] == [SERIAL]


def test_a_crl_is_refreshed_only_when_due_or_forced() -> None:
    state = given(*CA)  # CRL 1 runs until NOW + 6 days: not due
    script = Script()
    assert when(state, RefreshCRL(force=False), script).events == []
    assert script.asked == [Now()]
    assert [e.crl_number for e in when(state, RefreshCRL(force=True)).events
            if isinstance(e, CRLIssued)] == [2]
    late = Script(now=NOW + 4 * DAY)  # less than half the lifetime left
    assert [type(e) for e in when(state, RefreshCRL(force=False), late).events] == [CRLIssued]


def test_a_challenge_records_only_the_digest_of_the_drawn_password() -> None:
    decided = when(given(*CA), MintChallenge(timedelta(hours=1)))
    password = bytes(range(15)).hex()
    assert decided.value == password
    assert decided.events == [ChallengeMinted(hashlib.sha256(password.encode()).digest(),
                                              NOW + 3600 * 1_000_000)]


def test_an_offline_request_gets_a_drawn_transaction_id_and_its_certificate() -> None:
    csr = make_csr(rsa_key(1), "r9")
    request = request_of(csr, csr.public_bytes(serialization.Encoding.DER))
    decided = when(given(*CA), SignRequest(request, 30, None))
    txid = "OFFLINE-" + bytes(range(8)).hex().upper()
    assert [type(e) for e in decided.events] == [RequestReceived, RequestApproved,
                                                 CertificateIssued]
    issued = decided.events[-1]
    assert isinstance(issued, CertificateIssued) and issued.transaction_id == txid
    assert issued.not_after == to_micros(T0 + timedelta(days=30))


def test_a_refused_command_yields_no_events() -> None:
    with pytest.raises(CAError):
        when(given(*CA), Reject("no-such-transaction", ""))
