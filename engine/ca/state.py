"""The CA's state, folded from its events by a pure `evolve`.

Rule: everything that changes the CA's state happens in the folds below, one per event type,
listed in `CA_FOLDS` at the bottom (engine/folds.py): the CA's event types are that table's
keys. `evolve` trusts the log (it never re-validates what `decide` accepted) and performs no
I/O, so replaying a log gives the same state bit for bit (tests check replay equals live).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from engine.audit.key import AuditKey
from engine.ca.generations import CAGeneration, first_generation, issuing_generation
from engine.ca.pmap import PMap
from engine.folds import FoldTable
from engine.machines import ca_request
from engine.machines.ca_request import REQUESTS
from events.audit import AuditKeyCreated
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

RequestStatus = ca_request.RequestStatus  # its home is the machine; importers find it here too


@dataclass(frozen=True, slots=True)
class Request:
    transaction_id: str
    message_type: int
    subject: bytes
    subject_text: str
    public_key: bytes
    requested_extensions: bytes
    signer_certificate: bytes
    authorization: str
    renewal_of: str | None
    received_at: int
    status: RequestStatus = REQUESTS.initial  # born pending
    decided_by: str = ""
    reject_reason: str = ""
    serial: str | None = None
    signer_key_sha256: bytes = b""  # which key signed the pkiMessage (RequestReceived v2)
    ca_generation: int = 1  # the CA certificate it was enveloped to (RequestReceived v3)


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    serial: str
    transaction_id: str
    certificate: bytes
    subject_text: str
    not_before: int
    not_after: int
    revoked_at: int | None = None
    revocation_reason: str | None = None
    renewed_by: str | None = None  # serial of the first certificate issued on its strength
    ca_generation: int = 1  # the CA certificate that issued it (engine/ca/generations.py)
    # Serial of the certificate issued on its strength under a later CA certificate (a
    # device's shadow enrollment during a rollover): once, like `renewed_by` under its own.
    rolled_over_by: str | None = None


@dataclass(frozen=True, slots=True)
class Challenge:
    digest_hex: str
    expires_at: int
    consumed_by: str | None = None


@dataclass(frozen=True, slots=True)
class CRL:
    number: int
    der: bytes
    this_update: int
    next_update: int


@dataclass(frozen=True, slots=True)
class CAState:
    initialized: bool = False
    subject: str = ""
    key_algorithm: str = ""
    ca_certificate: bytes = b""
    ra_signing_certificate: bytes | None = None
    ra_encryption_certificate: bytes | None = None
    certificate_days: int = 0
    crl_lifetime_seconds: int = 0
    requests: PMap[Request] = field(default_factory=PMap)  # the latest per transaction ID
    # Requests a later one with the same transaction ID replaced in `requests` (a renewal that
    # reuses a finished transaction's ID), oldest first: `ca requests --all` lists them too.
    earlier_requests: tuple[Request, ...] = ()
    certificates: PMap[IssuedCertificate] = field(default_factory=PMap)
    challenges: PMap[Challenge] = field(default_factory=PMap)
    revoked: tuple[str, ...] = ()  # serials, in revocation order (the CRL's entries)
    crl: CRL | None = None
    # The CA certificates, oldest first: `ca init`'s, then one per `ca rollover`
    # (engine/ca/generations.py says which one issues when).
    generations: tuple[CAGeneration, ...] = ()
    last_at: int = 0  # `at` of the last event folded in
    audit_key: AuditKey | None = None  # the log's audit key (engine/audit/), once made

    @property
    def ra_mode(self) -> bool:
        return self.ra_signing_certificate is not None


def evolve(state: CAState, ev: Event, at: int, seq: int = 0) -> CAState:
    """The state after `ev`, recorded at `at` (microseconds); `state` is left unchanged.
    Each fold sets `last_at` in its one `replace` (a second one would copy the state
    again: replay and every command run this per event). A type the table does not fold
    raises `UnfoldedEvent` naming it (and `seq`, the event's place in the log)."""
    return CA_FOLDS.fold(state, ev, at, seq)


def _initialized(state: CAState, ev: CAInitialized, at: int) -> CAState:
    return replace(state, initialized=True, subject=ev.subject, key_algorithm=ev.key_algorithm,
                   ca_certificate=ev.ca_certificate,
                   ra_signing_certificate=ev.ra_signing_certificate,
                   ra_encryption_certificate=ev.ra_encryption_certificate,
                   certificate_days=ev.certificate_days,
                   crl_lifetime_seconds=ev.crl_lifetime_seconds,
                   generations=(first_generation(ev.ca_certificate),), last_at=at)


def _challenge_minted(state: CAState, ev: ChallengeMinted, at: int) -> CAState:
    key = ev.challenge_sha256.hex()
    return replace(state, challenges=state.challenges.set(key, Challenge(key, ev.expires_at)),
                   last_at=at)


def _challenge_consumed(state: CAState, ev: ChallengeConsumed, at: int) -> CAState:
    key = ev.challenge_sha256.hex()
    ch = replace(state.challenges[key], consumed_by=ev.transaction_id)
    return replace(state, challenges=state.challenges.set(key, ch), last_at=at)


def _request_received(state: CAState, ev: RequestReceived, at: int) -> CAState:
    req = Request(ev.transaction_id, ev.message_type, ev.subject, ev.subject_text, ev.public_key,
                  ev.requested_extensions, ev.signer_certificate, ev.authorization,
                  ev.renewal_of, at, signer_key_sha256=ev.signer_key_sha256,
                  ca_generation=ev.ca_generation)
    replaced = state.requests.get(ev.transaction_id)
    if replaced is not None:  # a renewal under a finished transaction's ID: a new request
        req = replace(req, status=REQUESTS.destination(replaced.status, "renew_anew"))
    earlier = (state.earlier_requests if replaced is None
               else (*state.earlier_requests, replaced))
    return replace(state, requests=state.requests.set(ev.transaction_id, req),
                   earlier_requests=earlier, last_at=at)


def _request_approved(state: CAState, ev: RequestApproved, at: int) -> CAState:
    req = state.requests[ev.transaction_id]
    req = replace(req, status=REQUESTS.destination(req.status, "approve"),
                  decided_by=ev.approved_by)
    return replace(state, requests=state.requests.set(ev.transaction_id, req), last_at=at)


def _request_rejected(state: CAState, ev: RequestRejected, at: int) -> CAState:
    req = state.requests[ev.transaction_id]
    req = replace(req, status=REQUESTS.destination(req.status, "reject"),
                  reject_reason=ev.reason)
    return replace(state, requests=state.requests.set(ev.transaction_id, req), last_at=at)


def _certificate_issued(state: CAState, ev: CertificateIssued, at: int) -> CAState:
    req = state.requests[ev.transaction_id]
    generation = issuing_generation(state.generations, req.ca_generation, at)
    cert = IssuedCertificate(ev.serial, ev.transaction_id, ev.certificate, ev.subject_text,
                             ev.not_before, ev.not_after, ca_generation=generation)
    req = replace(req, status=REQUESTS.destination(req.status, "issue"), serial=ev.serial)
    certificates = state.certificates.set(ev.serial, cert)
    # The link a renewal leaves (derived from RequestReceived.renewal_of, so older logs carry
    # it too): the renewed certificate cannot renew again, except once enveloped to a later
    # CA certificate than its own (see decide_enrollment).
    renewed = certificates.get(req.renewal_of) if req.renewal_of is not None else None
    if renewed is not None and req.ca_generation > renewed.ca_generation:
        if renewed.rolled_over_by is None:
            certificates = certificates.set(renewed.serial,
                                            replace(renewed, rolled_over_by=ev.serial))
    elif renewed is not None and renewed.renewed_by is None:
        certificates = certificates.set(renewed.serial, replace(renewed, renewed_by=ev.serial))
    return replace(state, certificates=certificates,
                   requests=state.requests.set(ev.transaction_id, req), last_at=at)


def _certificate_revoked(state: CAState, ev: CertificateRevoked, at: int) -> CAState:
    cert = replace(state.certificates[ev.serial], revoked_at=ev.revoked_at,
                   revocation_reason=ev.reason)
    return replace(state, certificates=state.certificates.set(ev.serial, cert),
                   revoked=(*state.revoked, ev.serial), last_at=at)


def _crl_issued(state: CAState, ev: CRLIssued, at: int) -> CAState:
    return replace(state, crl=CRL(ev.crl_number, ev.crl, ev.this_update, ev.next_update),
                   last_at=at)


def _rolled_over(state: CAState, ev: CARolledOver, at: int) -> CAState:
    generation = CAGeneration(ev.generation, ev.ca_certificate, ev.key_file, ev.not_before,
                              ev.not_after)
    return replace(state, generations=(*state.generations, generation), last_at=at)


def _audit_key(state: CAState, ev: AuditKeyCreated, at: int) -> CAState:
    return replace(state, audit_key=AuditKey.from_event(ev, at), last_at=at)


CA_FOLDS: FoldTable[CAState] = FoldTable("CA", {
    CAInitialized: (_initialized,),
    ChallengeMinted: (_challenge_minted,),
    ChallengeConsumed: (_challenge_consumed,),
    RequestReceived: (_request_received,),
    RequestApproved: (_request_approved,),
    RequestRejected: (_request_rejected,),
    CertificateIssued: (_certificate_issued,),
    CertificateRevoked: (_certificate_revoked,),
    CRLIssued: (_crl_issued,),
    AuditKeyCreated: (_audit_key,),
    CARolledOver: (_rolled_over,),
})
