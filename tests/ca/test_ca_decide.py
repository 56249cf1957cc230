"""The CA's pure rules: decide_* over states folded with evolve (no keys, no clock, no I/O)."""

from __future__ import annotations

import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from engine.ca.decide import (
    RENEWAL_REQ,
    Approval,
    Policy,
    ReplyStatus,
    decide_approve,
    decide_crl,
    decide_enrollment,
    decide_issue,
    decide_mint_challenge,
    decide_reject,
    decide_revoke,
    reply_status,
)
from engine.ca.errors import CAError, ScepRefusal
from engine.ca.state import CAState, RequestStatus, evolve
from engine.errors import Reason
from engine.ports import to_micros
from engine.scep.types import FailInfo
from events.ca import (
    CAInitialized,
    ChallengeConsumed,
    CRLIssued,
    RequestApproved,
    RequestReceived,
)
from events.registry import Event, event_from
from tests.ca.ca_support import T0, enroll_cmd, rsa_key, self_signed

NOW = to_micros(T0)
HOUR = 3600 * 1_000_000
STATIC = Policy(Approval.AUTO, hashlib.sha256(b"static-pw").digest())
MANUAL = Policy(Approval.MANUAL, hashlib.sha256(b"static-pw").digest())


def fold(state: CAState, events: list[Event], at: int = NOW) -> CAState:
    for ev in events:
        state = evolve(state, ev, at)
    return state


@pytest.fixture
def ca() -> CAState:
    return fold(CAState(), [
        CAInitialized("CN=Test CA", "rsa:2048", b"ca-der", None, None, 365, 7 * 86400),
        CRLIssued(1, b"crl-1", NOW, NOW + 7 * 86400 * 1_000_000),
    ])


def test_evolve_leaves_the_old_state_unchanged(ca: CAState) -> None:
    cmd = enroll_cmd(rsa_key(1), "r1", challenge="static-pw")
    after = fold(ca, decide_enrollment(ca, cmd, STATIC, NOW))
    assert cmd.transaction_id in after.requests
    assert cmd.transaction_id not in ca.requests
    assert len(ca.requests) == 0 and len(after.requests) == 1


def test_static_challenge_auto_approves(ca: CAState) -> None:
    cmd = enroll_cmd(rsa_key(1), "r1", challenge="static-pw")
    events = decide_enrollment(ca, cmd, STATIC, NOW)
    assert [type(e) for e in events] == [RequestReceived, RequestApproved]
    received = events[0]
    assert isinstance(received, RequestReceived)
    assert received.authorization == "challenge:static"
    assert received.subject_text == "CN=r1,O=Example"
    assert fold(ca, events).requests[cmd.transaction_id].status is RequestStatus.APPROVED


@pytest.mark.parametrize("challenge", ["wrong", None])
def test_wrong_or_missing_challenge_is_bad_request(ca: CAState, challenge: str | None) -> None:
    cmd = enroll_cmd(rsa_key(1), "r1", challenge=challenge)
    with pytest.raises(ScepRefusal) as e:
        decide_enrollment(ca, cmd, STATIC, NOW)
    assert e.value.fail_info is FailInfo.BAD_REQUEST


def test_manual_mode_without_challenge_is_pending(ca: CAState) -> None:
    cmd = enroll_cmd(rsa_key(1), "r1")
    state = fold(ca, decide_enrollment(ca, cmd, MANUAL, NOW))
    assert state.requests[cmd.transaction_id].status is RequestStatus.PENDING
    assert state.requests[cmd.transaction_id].authorization == "none"
    assert reply_status(state, cmd.transaction_id) is ReplyStatus.PENDING


def test_manual_mode_still_refuses_a_wrong_challenge(ca: CAState) -> None:
    with pytest.raises(ScepRefusal):
        decide_enrollment(ca, enroll_cmd(rsa_key(1), "r1", challenge="nope"), MANUAL, NOW)


def test_one_time_challenge_is_consumed_once(ca: CAState) -> None:
    digest = hashlib.sha256(b"otp-1").digest()
    state = fold(ca, decide_mint_challenge(ca, digest, NOW + HOUR))
    first = enroll_cmd(rsa_key(1), "r1", challenge="otp-1")
    events = decide_enrollment(state, first, Policy(), NOW)
    assert ChallengeConsumed(digest, first.transaction_id) in events
    state = fold(state, events)
    assert state.challenges[digest.hex()].consumed_by == first.transaction_id
    second = enroll_cmd(rsa_key(2), "r2", challenge="otp-1")
    with pytest.raises(ScepRefusal, match="used before") as e:
        decide_enrollment(state, second, Policy(), NOW)
    assert e.value.fail_info is FailInfo.BAD_REQUEST


def test_expired_one_time_challenge_is_refused(ca: CAState) -> None:
    digest = hashlib.sha256(b"otp-2").digest()
    state = fold(ca, decide_mint_challenge(ca, digest, NOW + HOUR))
    with pytest.raises(ScepRefusal, match="expired"):
        decide_enrollment(state, enroll_cmd(rsa_key(1), "r1", challenge="otp-2"), Policy(),
                          NOW + HOUR + 1)


def test_resent_request_same_key_yields_nothing_and_keeps_status(ca: CAState) -> None:
    cmd = enroll_cmd(rsa_key(1), "r1")
    state = fold(ca, decide_enrollment(ca, cmd, MANUAL, NOW))
    assert decide_enrollment(state, cmd, MANUAL, NOW + 1) == []
    assert reply_status(state, cmd.transaction_id) is ReplyStatus.PENDING


def test_replayed_transaction_id_with_another_key_is_refused(ca: CAState) -> None:
    cmd = enroll_cmd(rsa_key(1), "r1", txid="TX1")
    state = fold(ca, decide_enrollment(ca, cmd, MANUAL, NOW))
    with pytest.raises(ScepRefusal, match="different key") as e:
        decide_enrollment(state, enroll_cmd(rsa_key(2), "r1", txid="TX1"), MANUAL, NOW)
    assert e.value.fail_info is FailInfo.BAD_REQUEST


def _issued_state(ca: CAState) -> tuple[CAState, bytes, str]:
    """A state where request TX1 got a certificate (its DER returned)."""
    key = rsa_key(1)
    name = x509.Name.from_rfc4514_string("CN=r1,O=Example")  # what enroll_cmd(.., "r1") asks
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(0xABCDEF0123456789AB)
            .not_valid_before(T0).not_valid_after(T0.replace(year=2027))
            .sign(key, hashes.SHA256()))
    der = cert.public_bytes(serialization.Encoding.DER)
    cmd = enroll_cmd(key, "r1", txid="TX1", challenge="static-pw")
    state = fold(ca, decide_enrollment(ca, cmd, STATIC, NOW))
    serial = format(cert.serial_number, "x")
    state = fold(state, decide_issue(state, "TX1", serial, der, NOW, to_micros(
        T0.replace(year=2027))))
    return state, der, serial


def test_issue_requires_approval_and_a_fresh_serial(ca: CAState) -> None:
    state, der, serial = _issued_state(ca)
    assert reply_status(state, "TX1") is ReplyStatus.SUCCESS
    assert state.certificates[serial].certificate == der
    with pytest.raises(CAError, match="not approved"):
        decide_issue(state, "TX1", "1234", der, NOW, NOW)
    pending = fold(state, decide_enrollment(state, enroll_cmd(rsa_key(2), "r2", txid="TX2"),
                                            MANUAL, NOW))
    with pytest.raises(CAError, match="not approved"):
        decide_issue(pending, "TX2", "99", der, NOW, NOW)
    approved = fold(pending, decide_approve(pending, "TX2"))
    with pytest.raises(CAError, match="issued before"):
        decide_issue(approved, "TX2", serial, der, NOW, NOW)


def test_renewal_signed_by_our_certificate_needs_no_challenge(ca: CAState) -> None:
    state, der, serial = _issued_state(ca)
    for mt in (RENEWAL_REQ, 19):  # RenewalReq, and PKCSReq signed by the current certificate
        cmd = enroll_cmd(rsa_key(3), "r1", txid=f"RENEW{mt}", signer=der, message_type=mt)
        events = decide_enrollment(state, cmd, Policy(), NOW)
        received = events[0]
        assert isinstance(received, RequestReceived)
        assert (received.authorization, received.renewal_of) == ("renewal", serial)
        assert isinstance(events[-1], RequestApproved)


def test_renewal_with_revoked_or_foreign_certificate_is_refused(ca: CAState) -> None:
    state, der, serial = _issued_state(ca)
    foreign = enroll_cmd(rsa_key(3), "r1", txid="R1", message_type=RENEWAL_REQ)
    with pytest.raises(ScepRefusal, match="current certificate of this CA"):
        decide_enrollment(state, foreign, Policy(), NOW)
    revoked = fold(state, decide_revoke(state, serial, "keyCompromise", NOW))
    cmd = enroll_cmd(rsa_key(3), "r1", txid="R2", signer=der, message_type=RENEWAL_REQ)
    with pytest.raises(ScepRefusal, match="revoked"):
        decide_enrollment(revoked, cmd, Policy(), NOW)


def test_approve_pending_or_rejected_and_reject_only_pending_requests(ca: CAState) -> None:
    cmd = enroll_cmd(rsa_key(1), "r1", txid="TXP")
    state = fold(ca, decide_enrollment(ca, cmd, MANUAL, NOW))
    with pytest.raises(CAError) as missing:
        decide_approve(state, "nope")
    assert missing.value.reason is Reason.NOT_FOUND
    rejected = fold(state, decide_reject(state, "TXP", ""))
    assert rejected.requests["TXP"].status is RequestStatus.REJECTED
    assert reply_status(rejected, "TXP") is ReplyStatus.FAILURE
    # The operator may change their mind about a rejection (issue 14 item 11) ...
    reversed_ = fold(rejected, decide_approve(rejected, "TXP"))
    assert reversed_.requests["TXP"].status is RequestStatus.APPROVED
    # ... but not approve twice.
    with pytest.raises(CAError) as again:
        decide_approve(reversed_, "TXP")
    assert again.value.reason is Reason.NOT_ALLOWED


def test_revoke_once_with_a_known_reason(ca: CAState) -> None:
    state, _, serial = _issued_state(ca)
    with pytest.raises(CAError):
        decide_revoke(state, "feed", "unspecified", NOW)
    with pytest.raises(CAError):
        decide_revoke(state, serial, "bored", NOW)
    # serials are matched in any case and with leading zeros / colons
    events = decide_revoke(state, "00:" + serial.upper(), "superseded", NOW)
    state = fold(state, events)
    assert state.revoked == (serial,)
    assert state.certificates[serial].revocation_reason == "superseded"
    with pytest.raises(CAError, match="already revoked"):
        decide_revoke(state, serial, "superseded", NOW)


def test_crl_numbers_increase_by_one(ca: CAState) -> None:
    with pytest.raises(CAError):
        decide_crl(ca, 3, b"crl", NOW, NOW + 1)
    state = fold(ca, decide_crl(ca, 2, b"crl-2", NOW, NOW + 1))
    assert state.crl is not None and (state.crl.number, state.crl.der) == (2, b"crl-2")


def test_nothing_but_init_on_an_uninitialized_ca() -> None:
    with pytest.raises(CAError, match="not initialized"):
        decide_enrollment(CAState(), enroll_cmd(rsa_key(1), "r1"), Policy(), NOW)



def test_renewal_reusing_a_finished_transaction_id_is_a_new_transaction(ca: CAState) -> None:
    # micromdm derives the transactionID from the key and renews with the same key.
    state, der, serial = _issued_state(ca)
    renewal = enroll_cmd(rsa_key(1), "r1", txid="TX1", signer=der, message_type=RENEWAL_REQ)
    events = decide_enrollment(state, renewal, Policy(), NOW)
    assert [type(e) for e in events] == [RequestReceived, RequestApproved]
    state = fold(state, events)
    assert state.requests["TX1"].renewal_of == serial
    assert state.requests["TX1"].status is RequestStatus.APPROVED
    # the same renewal sent again (same signer) is a re-send, not a third transaction
    assert decide_enrollment(state, renewal, Policy(), NOW) == []


def _spki_sha256(der: bytes) -> bytes:
    key = x509.load_der_x509_certificate(der).public_key()
    return hashlib.sha256(key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).digest()


def test_first_request_signed_by_another_key_is_accepted_and_recorded(ca: CAState) -> None:
    # RFC 8894 §2.3: the same key is a SHOULD; a throwaway identity key is accepted
    identity = self_signed(rsa_key(2), "throwaway")
    cmd = enroll_cmd(rsa_key(1), "r1", challenge="static-pw", signer=identity)
    events = decide_enrollment(ca, cmd, STATIC, NOW)
    assert [type(e) for e in events] == [RequestReceived, RequestApproved]
    received = events[0]
    assert isinstance(received, RequestReceived)
    assert received.signer_key_sha256 == _spki_sha256(identity)
    assert received.signer_key_sha256 != hashlib.sha256(cmd.public_key).digest()
    assert received.authorization == "challenge:static"


def test_first_request_signed_by_its_own_key_records_that_key(ca: CAState) -> None:
    cmd = enroll_cmd(rsa_key(1), "r1", challenge="static-pw")
    received = decide_enrollment(ca, cmd, STATIC, NOW)[0]
    assert isinstance(received, RequestReceived)
    assert received.signer_key_sha256 == hashlib.sha256(cmd.public_key).digest()


def test_first_request_signed_by_another_key_still_needs_authorization(ca: CAState) -> None:
    cmd = enroll_cmd(rsa_key(1), "r1", challenge="wrong",
                     signer=self_signed(rsa_key(2), "r1"))
    with pytest.raises(ScepRefusal, match="wrong challenge password"):
        decide_enrollment(ca, cmd, STATIC, NOW)
    # without a challenge, manual approval is the check: PENDING, nothing approved
    cmd = enroll_cmd(rsa_key(1), "r1", signer=self_signed(rsa_key(2), "r1"))
    assert [type(e) for e in decide_enrollment(ca, cmd, MANUAL, NOW)] == [RequestReceived]


def test_strict_policy_refuses_a_first_request_signed_by_another_key(ca: CAState) -> None:
    strict = Policy(Approval.AUTO, hashlib.sha256(b"static-pw").digest(), same_key_only=True)
    cmd = enroll_cmd(rsa_key(1), "r1", challenge="static-pw",
                     signer=self_signed(rsa_key(2), "r1"))
    with pytest.raises(ScepRefusal, match="signed with another key") as e:
        decide_enrollment(ca, cmd, strict, NOW)
    assert e.value.fail_info is FailInfo.BAD_REQUEST
    # its own key is fine under the same policy
    assert decide_enrollment(ca, enroll_cmd(rsa_key(1), "r1", challenge="static-pw"),
                             strict, NOW)


def test_strict_policy_keeps_renewals_signed_by_our_certificate(ca: CAState) -> None:
    state, der, _ = _issued_state(ca)
    strict = Policy(Approval.AUTO, None, same_key_only=True)
    renewal = enroll_cmd(rsa_key(7), "r1", txid="TX7", signer=der, message_type=RENEWAL_REQ)
    events = decide_enrollment(state, renewal, strict, NOW)
    assert [type(e) for e in events] == [RequestReceived, RequestApproved]
    received = events[0]
    assert isinstance(received, RequestReceived) and received.authorization == "renewal"
    assert received.signer_key_sha256 == _spki_sha256(der)


# -- renewal re-certifies one identity, once ---------------------------------------------------


@pytest.mark.parametrize(("cn", "dns"), [("core-router-1", ()), ("r1", ("vpn.example.com",))],
                         ids=["other-subject", "other-san"])
def test_renewal_req_for_another_identity_is_refused(ca: CAState, cn: str,
                                                     dns: tuple[str, ...]) -> None:
    state, der, serial = _issued_state(ca)
    cmd = enroll_cmd(rsa_key(3), cn, txid="EVIL", signer=der, message_type=RENEWAL_REQ,
                     dns=dns)
    with pytest.raises(ScepRefusal, match=f"not a renewal of certificate {serial}") as e:
        decide_enrollment(state, cmd, STATIC, NOW)
    assert e.value.fail_info is FailInfo.BAD_REQUEST


def test_pkcs_req_for_another_identity_is_an_enrollment(ca: CAState) -> None:
    """Signed by a current certificate but naming another subject: no renewal, so the
    challenge password decides (refused without one, enrolled like any request with one)."""
    state, der, _serial = _issued_state(ca)
    same_key = rsa_key(1)  # the key of the signing certificate
    without = enroll_cmd(same_key, "core-router-1", txid="OTHER", signer=der)
    with pytest.raises(ScepRefusal, match=r"not a renewal .* challenge password is required"):
        decide_enrollment(state, without, STATIC, NOW)
    other_key = enroll_cmd(rsa_key(3), "core-router-1", txid="OTHER", signer=der,
                           challenge="static-pw")
    # another key under our certificate: an enrollment by challenge (strict: refused)
    received = decide_enrollment(state, other_key, STATIC, NOW)[0]
    assert isinstance(received, RequestReceived)
    assert received.authorization == "challenge:static"
    strict = Policy(Approval.AUTO, STATIC.static_challenge_sha256, same_key_only=True)
    with pytest.raises(ScepRefusal, match=r"not a renewal .* signed with another key"):
        decide_enrollment(state, other_key, strict, NOW)
    with_pw = enroll_cmd(same_key, "core-router-1", txid="OTHER", signer=der,
                         challenge="static-pw")
    received = decide_enrollment(state, with_pw, STATIC, NOW)[0]
    assert isinstance(received, RequestReceived)
    assert (received.authorization, received.renewal_of) == ("challenge:static", None)


def test_a_renewed_certificate_cannot_renew_again(ca: CAState) -> None:
    state, der, serial = _issued_state(ca)
    first = enroll_cmd(rsa_key(3), "r1", txid="RENEW1", signer=der, message_type=RENEWAL_REQ)
    state = fold(state, decide_enrollment(state, first, Policy(), NOW))
    state = fold(state, decide_issue(state, "RENEW1", "beef", b"new-cert", NOW, NOW + HOUR))
    assert state.certificates[serial].renewed_by == "beef"
    # the same renewal re-sent is answered from its record, not refused ...
    assert decide_enrollment(state, first, Policy(), NOW) == []
    assert reply_status(state, "RENEW1") is ReplyStatus.SUCCESS
    # ... but no other renewal on the strength of the old certificate, by either message type
    for mt in (RENEWAL_REQ, 19):
        again = enroll_cmd(rsa_key(4), "r1", txid=f"RENEW2-{mt}", signer=der, message_type=mt)
        with pytest.raises(ScepRefusal, match=f"{serial} was renewed before") as e:
            decide_enrollment(state, again, Policy(), NOW)
        assert e.value.fail_info is FailInfo.BAD_REQUEST


def test_two_pending_renewals_of_one_certificate_issue_once(ca: CAState) -> None:
    state, der, _serial = _issued_state(ca)
    for txid in ("P1", "P2"):
        cmd = enroll_cmd(rsa_key(3), "r1", txid=txid, signer=der, message_type=RENEWAL_REQ)
        state = fold(state, decide_enrollment(state, cmd, MANUAL, NOW))
    both = fold(state, decide_approve(state, "P1") + decide_approve(state, "P2"))
    state = fold(state, decide_approve(state, "P1"))
    state = fold(state, decide_issue(state, "P1", "beef", b"new-cert", NOW, NOW + HOUR))
    with pytest.raises(CAError, match="renewed since") as e:
        decide_approve(state, "P2")
    assert e.value.reason is Reason.NOT_ALLOWED
    both = fold(both, decide_issue(both, "P1", "beef", b"new-cert", NOW, NOW + HOUR))
    with pytest.raises(CAError, match="renewed since"):
        decide_issue(both, "P2", "cafe", b"other-cert", NOW, NOW + HOUR)


# -- RequestReceived v1 (before signer_key_sha256) still replays --------------------------------


@pytest.mark.parametrize(("authorization", "own_key"),
                         [("challenge:static", True), ("none", True), ("renewal", False),
                          ("offline", False)])
def test_request_received_v1_is_upcast_with_the_signer_key_v1_implied(
        authorization: str, own_key: bool) -> None:
    v1 = {"transaction_id": "T", "message_type": 19, "subject": b"\x30\x00",
          "subject_text": "", "public_key": b"spki-bytes", "requested_extensions": b"",
          "signer_certificate": b"cert", "authorization": authorization, "renewal_of": None}
    ev = event_from("RequestReceived", 1, v1)
    assert isinstance(ev, RequestReceived)
    # v1 refused first requests signed by another key, so theirs was the request's own key
    assert ev.signer_key_sha256 == (hashlib.sha256(b"spki-bytes").digest() if own_key else b"")
    assert ev.authorization == authorization and ev.public_key == b"spki-bytes"


def test_a_renewal_of_a_certificate_revoked_since_is_neither_approved_nor_issued(
        ca: CAState) -> None:
    # A renewal's only authorization is the certificate that signed it: once that one is
    # revoked (its key compromised, say), approving the held or rejected renewal would
    # certify a new key on the strength of a revoked certificate.
    state, der, serial = _issued_state(ca)
    renewal = enroll_cmd(rsa_key(3), "r1", txid="R1", signer=der, message_type=RENEWAL_REQ)
    held = fold(state, decide_enrollment(state, renewal, MANUAL, NOW))
    approved = fold(held, decide_approve(held, "R1"))
    for before in (held, fold(held, decide_reject(held, "R1", "")), approved):
        revoked = fold(before, decide_revoke(before, serial, "keyCompromise", NOW))
        if before is approved:
            with pytest.raises(CAError, match="revoked") as e:
                decide_issue(revoked, "R1", "beef", b"new-cert", NOW, NOW + HOUR)
        else:
            with pytest.raises(CAError, match="revoked") as e:
                decide_approve(revoked, "R1")
        assert e.value.reason is Reason.NOT_ALLOWED
