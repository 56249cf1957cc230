"""The CA's decisions: pure functions from (state, command) to the events that record them.

No function here performs I/O, reads a clock or draws randomness; `now` and every signed artifact
(certificate, CRL) come in as arguments, made by the service around them. A refused command raises
a `CAError` (a `ScepRefusal` with its failInfo when a SCEP peer caused it) and yields no events.

Approval: in `Approval.AUTO` a request with a valid challenge password (or a renewal signed by a
current certificate of this CA) is approved at once; in `Approval.MANUAL` every request stays
PENDING until the operator approves or rejects it. A request without a challenge password is
accepted as PENDING in manual mode (the operator is the check) and refused in auto mode.

Renewal: a request signed by a current certificate of this CA renews it without a challenge
only if it asks for the same identity, the same subject and the same set of subjectAltNames
(the key may change: Cisco devices re-key that way), and only once: a certificate a newer one
was issued on the strength of (`IssuedCertificate.renewed_by`) cannot renew again. During a
rollover it may renew once more enveloped to the next CA certificate (a device's shadow
enrollment, `IssuedCertificate.rolled_over_by`; engine/ca/generations.py). A RenewalReq
for another identity is refused; a PKCSReq for another identity is an enrollment like any other
(challenge password, or the operator in manual mode).

Signing key of a first request: RFC 8894 §2.3 says a client without a certificate uses a
self-signed one, which "SHOULD use the same subject name and key as in the PKCS #10 request"
(a SHOULD, not a MUST). Clients that sign with a throwaway identity key (always so when an EC
request travels under an RSA identity, since the CertRep is enveloped to the signer) are
accepted when the request is otherwise authorized: the pkiMessage signature was verified with
the certificate it carries and the PKCS#10 with its own key (proof of possession) by the
caller. `RequestReceived.signer_key_sha256` records which key signed. `Policy.same_key_only`
(`ca serve --strict`) refuses them with badRequest ("transaction not permitted or supported",
RFC 8894 §3.2.1.4): the message checks out, so badMessageCheck ("integrity check ... failed")
would be untrue; the transaction is what the policy does not permit. Renewals are unaffected.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from engine.ca.errors import CAError, FailInfo, ScepRefusal
from engine.ca.generations import CAGeneration, generation_at, next_generation
from engine.ca.profile import (
    REASONS,
    EndEntityRequest,
    certified_identity,
    check_issuable,
    general_names,
    issued_subject,
    requested_san,
    serial_hex,
)
from engine.ca.state import CAState, Request, RequestStatus
from engine.errors import Reason
from engine.machines import ca_request
from events.ca import (
    CAInitialized,
    CARolledOver,
    CertificateIssued,
    CertificateRevoked,
    ChallengeConsumed,
    ChallengeMinted,
    CRLIssued,
    RequestApproved,
    RequestReceived,
    RequestRejected,
)
from events.registry import Event

PKCS_REQ = 19
RENEWAL_REQ = 17
OFFLINE = 0
"""`RequestReceived.message_type` of a request signed offline (`ca sign`): no SCEP message."""


class Approval(enum.Enum):
    AUTO = "auto"
    MANUAL = "manual"


@dataclass(frozen=True, slots=True)
class Policy:
    approval: Approval = Approval.AUTO
    static_challenge_sha256: bytes | None = None  # digest of `ca serve --challenge`
    same_key_only: bool = False  # refuse a first request signed by another key (--strict)


@dataclass(frozen=True, slots=True)
class Enroll:
    """A verified, decrypted PKCSReq or RenewalReq (the pkiMessage signature and the PKCS#10
    signature were checked by the caller)."""

    transaction_id: str
    message_type: int
    subject: bytes
    subject_text: str
    public_key: bytes
    requested_extensions: bytes
    signer_certificate: bytes
    challenge_sha256: bytes | None  # digest of the challengePassword, None if absent
    ca_generation: int = 1  # the CA certificate it was enveloped to (engine/ca/generations)


def _require_initialized(state: CAState) -> None:
    if not state.initialized:
        raise CAError(Reason.NOT_ALLOWED, "the CA is not initialized (run `ca init` first)")


def decide_init(state: CAState, ev: CAInitialized, first_crl: CRLIssued) -> list[Event]:
    if state.initialized:
        raise CAError(Reason.NOT_ALLOWED, "the CA is already initialized")
    if first_crl.crl_number != 1:
        raise ValueError("the first CRL has number 1")
    return [ev, first_crl]


def check_rollover(state: CAState, now: int) -> CAGeneration:
    """The current CA certificate, if `ca rollover` may make the next one at `now`. Refused in
    RA mode (the RA certificates, issued by the current key, would have to roll over with
    it), while a next certificate waits to take over (one rollover at a time) and once the
    CA certificate has expired (nothing can vouch for a next one)."""
    _require_initialized(state)
    if state.ra_mode:
        raise CAError(Reason.NOT_ALLOWED, "a CA with RA certificates (--ra) cannot roll over: "
                                          "its RA certificates are issued by the current key")
    waiting = next_generation(state.generations, now)
    if waiting is not None:
        raise CAError(Reason.NOT_ALLOWED, f"CA certificate {waiting.number} is already next "
                                          "(it takes over when the current one expires)")
    current = state.generations[generation_at(state.generations, now) - 1]
    if current.not_after <= now:
        raise CAError(Reason.NOT_ALLOWED, "the CA certificate has expired: nothing can vouch "
                                          "for a next one (run `ca init` in a new directory)")
    return current


def decide_rollover(state: CAState, ev: CARolledOver, now: int) -> list[Event]:
    """`ca rollover`: record the next CA certificate (engine/ca/generations.py)."""
    current = check_rollover(state, now)
    if ev.generation != len(state.generations) + 1:
        raise ValueError("a rollover adds the next generation")
    if not ev.not_before <= current.not_after < ev.not_after:
        raise ValueError("the next CA certificate must be valid when the current one expires")
    return [ev]


def decide_mint_challenge(state: CAState, digest: bytes, expires_at: int) -> list[Event]:
    _require_initialized(state)
    if len(digest) != 32:
        raise ValueError("a challenge digest is 32 bytes (SHA-256)")
    if digest.hex() in state.challenges:
        raise CAError(Reason.NOT_ALLOWED, "this challenge was minted before; mint another")
    return [ChallengeMinted(digest, expires_at)]


def _our_current_certificate(state: CAState, der: bytes, now: int) -> str | None:
    """The serial of `der` if it is a certificate this CA issued, unrevoked and within its
    validity at `now`; None if it is not one of ours. Raises if it is ours but not usable."""
    try:
        serial = serial_hex(x509.load_der_x509_certificate(der).serial_number)
    except ValueError:
        return None
    issued = state.certificates.get(serial)
    if issued is None or issued.certificate != der:
        return None
    if issued.revoked_at is not None:
        raise ScepRefusal(FailInfo.BAD_REQUEST,
                          f"renewal signed by revoked certificate {serial}")
    if not issued.not_before <= now <= issued.not_after:
        raise ScepRefusal(FailInfo.BAD_REQUEST,
                          f"renewal signed by certificate {serial} outside its validity")
    return serial


def _identity_mismatch(state: CAState, serial: str, cmd: Enroll) -> str:
    """Why `cmd` does not ask for the identity certificate `serial` certifies ("" if it does):
    a renewal re-certifies the same subject and subjectAltNames, it cannot name another."""
    issued = state.certificates[serial]
    try:
        subject, names = certified_identity(issued.certificate)
        same_subject = issued_subject(cmd.subject) == subject
        same_names = general_names(requested_san(cmd.requested_extensions)) == names
    except ValueError as e:
        return f"the requested identity cannot be read ({e})"
    if not same_subject:
        return (f"it requests subject {cmd.subject_text!r}, the certificate has "
                f"{issued.subject_text!r}")
    if not same_names:
        return "it requests other subjectAltNames than the certificate has"
    return ""


def _spki_of(der: bytes) -> bytes | None:
    try:
        return x509.load_der_x509_certificate(der).public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    except ValueError:
        return None


def _authorize_challenge(state: CAState, cmd: Enroll, policy: Policy,
                         now: int) -> tuple[str, list[Event]]:
    presented = cmd.challenge_sha256
    if presented is None:
        if policy.approval is Approval.MANUAL:
            return "none", []
        raise ScepRefusal(FailInfo.BAD_REQUEST, "a challenge password is required")
    static = policy.static_challenge_sha256
    if static is not None and hmac.compare_digest(presented, static):
        return "challenge:static", []
    minted = state.challenges.get(presented.hex())
    if minted is None:
        raise ScepRefusal(FailInfo.BAD_REQUEST, "wrong challenge password")
    if minted.consumed_by is not None:
        raise ScepRefusal(FailInfo.BAD_REQUEST, "the one-time challenge password was used before")
    if now > minted.expires_at:
        raise ScepRefusal(FailInfo.BAD_REQUEST, "the one-time challenge password has expired")
    return "challenge:one-time", [ChallengeConsumed(presented, cmd.transaction_id)]


def decide_enrollment(state: CAState, cmd: Enroll, policy: Policy, now: int) -> list[Event]:
    """Events for a PKCSReq/RenewalReq. A re-sent request (same transactionID, same key) yields
    no events: its answer follows from the request's recorded status (see `reply_status`).
    A renewal reusing a finished transaction's ID (see `_renews_anew`) replaces that entry in
    the state's request table; the log keeps both."""
    _require_initialized(state)
    if cmd.message_type not in (PKCS_REQ, RENEWAL_REQ):
        raise ScepRefusal(FailInfo.BAD_REQUEST, f"messageType {cmd.message_type} is not a "
                                                "certificate request")
    if not 1 <= cmd.ca_generation <= len(state.generations):
        raise ScepRefusal(FailInfo.BAD_REQUEST, f"no CA certificate {cmd.ca_generation}")
    known = state.requests.get(cmd.transaction_id)
    signer_spki = _spki_of(cmd.signer_certificate) or b""
    renewal_of = _our_current_certificate(state, cmd.signer_certificate, now)
    not_renewal = ""
    if renewal_of is not None:
        mismatch = _identity_mismatch(state, renewal_of, cmd)
        if mismatch:
            not_renewal = f"not a renewal of certificate {renewal_of}: {mismatch}"
            if cmd.message_type == RENEWAL_REQ:
                raise ScepRefusal(FailInfo.BAD_REQUEST, not_renewal)
            renewal_of = None  # a PKCSReq for another identity: enrolls like any other
    if known is not None:
        if known.public_key != cmd.public_key:
            raise ScepRefusal(FailInfo.BAD_REQUEST, f"transactionID {cmd.transaction_id} was "
                                                    "used before with a different key")
        if not _renews_anew(known, renewal_of, cmd.ca_generation):
            return []  # a re-send (or a poll by PKCSReq): answered from the recorded status
    problem = _unissuable(cmd.subject, cmd.public_key, cmd.requested_extensions)
    if problem:  # refused now, not approved and then found impossible to issue
        raise ScepRefusal(FailInfo.BAD_REQUEST, problem)
    events: list[Event] = []
    if renewal_of is not None:
        _check_not_renewed(state, renewal_of, cmd.ca_generation)
        authorization = "renewal"
    elif cmd.message_type == RENEWAL_REQ:
        raise ScepRefusal(FailInfo.BAD_REQUEST,
                          "a RenewalReq must be signed by a current certificate of this CA")
    else:
        try:
            # RFC 8894 §2.3: the self-signed certificate "SHOULD use the same subject name and
            # key as in the PKCS #10 request": another key is a policy choice (docstring).
            if policy.same_key_only and signer_spki != cmd.public_key:
                raise ScepRefusal(FailInfo.BAD_REQUEST, "the pkiMessage is signed with another "
                                                        "key than the one the request is for "
                                                        "(refused in strict mode)")
            authorization, events = _authorize_challenge(state, cmd, policy, now)
        except ScepRefusal as e:
            if not not_renewal:
                raise
            raise ScepRefusal(e.fail_info, f"{not_renewal}; as an enrollment: "
                                           f"{e.text}") from None
    received = RequestReceived(cmd.transaction_id, cmd.message_type, cmd.subject,
                               cmd.subject_text, cmd.public_key, cmd.requested_extensions,
                               cmd.signer_certificate, authorization, renewal_of,
                               hashlib.sha256(signer_spki).digest() if signer_spki else b"",
                               cmd.ca_generation)
    events.insert(0, received)
    if policy.approval is Approval.AUTO:
        events.append(RequestApproved(cmd.transaction_id, "auto"))
    return events


@dataclass(frozen=True, slots=True)
class SignOffline:
    """A PKCS#10 request the operator carried to the CA (`ca sign`), signature checked by the
    caller. The operator is the authorization, so no challenge password is involved."""

    transaction_id: str
    subject: bytes
    subject_text: str
    public_key: bytes
    requested_extensions: bytes


def decide_offline(state: CAState, cmd: SignOffline) -> list[Event]:
    """Record an offline request as received and approved by the operator; the service issues
    its certificate in the same batch (`decide_issue`)."""
    _require_initialized(state)
    if cmd.transaction_id in state.requests:
        raise CAError(Reason.NOT_ALLOWED, f"transaction ID {cmd.transaction_id} is taken")
    problem = _unissuable(cmd.subject, cmd.public_key, cmd.requested_extensions)
    if problem:
        raise CAError(Reason.BAD_DATA, problem)
    return [RequestReceived(cmd.transaction_id, OFFLINE, cmd.subject, cmd.subject_text,
                            cmd.public_key, cmd.requested_extensions, b"", "offline", None,
                            b""),
            RequestApproved(cmd.transaction_id, "operator")]


def _unissuable(subject: bytes, public_key: bytes, requested_extensions: bytes) -> str:
    """Why no certificate can be issued for these request contents ("" if one can)."""
    try:
        check_issuable(EndEntityRequest(subject, public_key, requested_extensions))
    except ValueError as e:
        return f"cannot issue a certificate for this request: {e}"
    return ""


def _check_not_renewed(state: CAState, serial: str, generation: int) -> None:
    """Refuse a second renewal on the strength of certificate `serial` by a request enveloped
    to CA certificate `generation`: once a newer certificate was issued for it, only that one
    may renew. Enveloped to a later CA certificate than the one that issued it (a device's
    shadow enrollment during a rollover) it may renew once more: that certifies it under the
    next CA, which is not renewing it twice."""
    cert = state.certificates[serial]
    renewed_by = cert.rolled_over_by if generation > cert.ca_generation else cert.renewed_by
    if renewed_by is not None:
        raise ScepRefusal(FailInfo.BAD_REQUEST,
                          f"certificate {serial} was renewed before (certificate {renewed_by} "
                          "was issued on its strength); renew with the newer certificate")


def _check_renewal_still_open(state: CAState, req: Request) -> None:
    """Refuse to approve or issue a renewal whose certificate was renewed or revoked since it
    arrived: that certificate is the renewal's only authorization."""
    renewed = state.certificates.get(req.renewal_of) if req.renewal_of is not None else None
    if renewed is not None and renewed.revoked_at is not None:
        raise CAError(Reason.NOT_ALLOWED,
                      f"request {req.transaction_id} renews certificate {renewed.serial}, which "
                      "was revoked since; reject it")
    if renewed is None:
        return
    since = (renewed.rolled_over_by if req.ca_generation > renewed.ca_generation
             else renewed.renewed_by)
    if since is not None:
        raise CAError(Reason.NOT_ALLOWED,
                      f"request {req.transaction_id} renews certificate {renewed.serial}, which "
                      f"was renewed since (certificate {since}); reject it")


def _renews_anew(known: Request, renewal_of: str | None, generation: int) -> bool:
    """A request for a known transactionID and key starts a new transaction only when it is a
    renewal signed by one of our certificates other than the one the recorded request renewed,
    or enveloped to another CA certificate (a shadow enrollment during a rollover): clients
    that derive the transactionID from the key (micromdm) reuse it when they renew with the
    same key. Anything else with that ID and key is the same request sent again."""
    if renewal_of is None or (renewal_of == known.renewal_of
                              and generation == known.ca_generation):
        return False
    return ca_request.fire(known.status, "renew_anew") is not None


def decide_approve(state: CAState, txid: str) -> list[Event]:
    """Approve a pending request, or one an operator rejected before (they changed their mind:
    the device is told a new key pair or the CA's approval is needed, and its next request or
    poll for that transaction then gets the certificate). Not one that cannot be issued: the
    CA rejected those itself (`decide_unissuable`), and would only reject them again."""
    _require_initialized(state)
    req = state.requests.get(txid)
    if req is None:
        raise CAError(Reason.NOT_FOUND, f"no request with transaction ID {txid}")
    if not ca_request.REQUESTS.allows(req.status, "approve"):
        raise CAError(Reason.NOT_ALLOWED,
                      f"request {txid} is {req.status.value}, not pending or rejected")
    problem = _unissuable(req.subject, req.public_key, req.requested_extensions)
    if ca_request.fire(req.status, "approve", problem) is None:  # the guard: issuable
        if req.status is RequestStatus.REJECTED:
            raise CAError(Reason.NOT_ALLOWED, f"request {txid} was rejected by the CA, not by "
                                              f"an operator: {problem}; it cannot be approved")
        # pending since before requests were checked on arrival
        raise CAError(Reason.NOT_ALLOWED, f"request {txid} cannot be approved: {problem}; "
                                          "reject it")
    _check_renewal_still_open(state, req)
    return [RequestApproved(txid, "operator")]


def decide_reject(state: CAState, txid: str, reason: str) -> list[Event]:
    """Reject a pending request, or an approved one still without its certificate (approved
    while no server ran: it is issued only when one starts)."""
    _require_initialized(state)
    req = state.requests.get(txid)
    if req is None:
        raise CAError(Reason.NOT_FOUND, f"no request with transaction ID {txid}")
    if ca_request.fire(req.status, "reject") is None:
        raise CAError(Reason.NOT_ALLOWED, f"request {txid} is {req.status.value}, not pending")
    return [RequestRejected(txid, reason or "rejected by the operator")]


def decide_unissuable(state: CAState, txid: str, problem: str) -> list[Event]:
    """Record that approved request `txid` cannot be issued (`problem` says why; the service
    found it signing), so that it is answered FAILURE instead of blocking every start."""
    req = state.requests.get(txid)
    if req is None or ca_request.fire(req.status, "cannot_issue") is None:
        raise CAError(Reason.NOT_ALLOWED, f"request {txid} is not approved")
    return [RequestRejected(txid, problem)]


def decide_issue(state: CAState, txid: str, serial: str, certificate: bytes,
                 not_before: int, not_after: int) -> list[Event]:
    req = state.requests.get(txid)
    if req is None or ca_request.fire(req.status, "issue") is None:
        raise CAError(Reason.NOT_ALLOWED, f"request {txid} is not approved")
    if serial in state.certificates:
        raise CAError(Reason.NOT_ALLOWED, f"serial {serial} was issued before")
    _check_renewal_still_open(state, req)  # two renewals of one certificate were pending
    return [CertificateIssued(txid, serial, certificate, req.subject_text, not_before, not_after)]


def decide_revoke(state: CAState, serial: str, reason: str, at: int) -> list[Event]:
    _require_initialized(state)
    serial = serial.lower().removeprefix("0x").replace(":", "").lstrip("0") or "0"
    cert = state.certificates.get(serial)
    if cert is None:
        raise CAError(Reason.NOT_FOUND, f"no certificate with serial {serial}")
    if cert.revoked_at is not None:
        raise CAError(Reason.NOT_ALLOWED, f"certificate {serial} is already revoked")
    if reason not in REASONS:
        raise CAError(Reason.INVALID_VALUE, f"unknown revocation reason {reason}")
    return [CertificateRevoked(serial, reason, at)]


def decide_crl(state: CAState, number: int, der: bytes, this_update: int,
               next_update: int) -> list[Event]:
    _require_initialized(state)
    expected = state.crl.number + 1 if state.crl is not None else 1
    if number != expected:
        raise CAError(Reason.NOT_ALLOWED, f"CRL number {number}, expected {expected}")
    if next_update <= this_update:
        raise ValueError("a CRL's nextUpdate must be after its thisUpdate")
    return [CRLIssued(number, der, this_update, next_update)]


class ReplyStatus(enum.Enum):
    SUCCESS = "success"
    PENDING = "pending"
    FAILURE = "failure"


def reply_status(state: CAState, txid: str) -> ReplyStatus:
    """How a PKCSReq/RenewalReq/CertPoll for `txid` is answered, from the recorded status.
    APPROVED-not-yet-issued is PENDING (the service issues in the same batch, so it is only seen
    if an approval recorded while no server ran is waiting for the next one)."""
    req = state.requests.get(txid)
    if req is None:
        raise ScepRefusal(FailInfo.BAD_CERT_ID, f"no request with transaction ID {txid}")
    if req.status is RequestStatus.ISSUED:
        return ReplyStatus.SUCCESS
    if req.status is RequestStatus.REJECTED:
        return ReplyStatus.FAILURE
    return ReplyStatus.PENDING
