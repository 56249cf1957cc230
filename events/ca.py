"""Events of the built-in CA (its own log, stream `ca`).

Everything the CA decided or signed is here, so replaying the log rebuilds its state without a
key, a clock or a network. What never enters the log: the CA and RA private keys (files beside
the log, mode 0600), challenge passwords in clear (only SHA-256 digests of one-time challenges;
the static `--challenge` is not recorded at all), and the raw PKCS#10 (it carries the
challengePassword attribute; only its subject, public key and requested extensions are kept).

Times are microseconds since the epoch (UTC). Serial numbers are lowercase hex strings (they are
64+ bits, wider than a msgpack integer may be).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from events.registry import Event, event, upcaster

STREAM = "ca"


@event("CAInitialized", version=1)
@dataclass(frozen=True, slots=True)
class CAInitialized(Event):
    subject: str  # RFC 4514 text of the CA's subject
    key_algorithm: str  # "rsa:2048" | "rsa:4096" | "ecdsa:p256"
    ca_certificate: bytes  # DER, self-signed
    ra_signing_certificate: bytes | None  # DER, issued by the CA (--ra)
    ra_encryption_certificate: bytes | None  # DER, issued by the CA (--ra)
    certificate_days: int  # validity of issued certificates
    crl_lifetime_seconds: int  # nextUpdate - thisUpdate of each CRL


@event("ChallengeMinted", version=1)
@dataclass(frozen=True, slots=True)
class ChallengeMinted(Event):
    challenge_sha256: bytes  # digest of the one-time password; the password itself is not kept
    expires_at: int


@event("ChallengeConsumed", version=1)
@dataclass(frozen=True, slots=True)
class ChallengeConsumed(Event):
    challenge_sha256: bytes
    transaction_id: str


@event("RequestReceived", version=3)
@dataclass(frozen=True, slots=True)
class RequestReceived(Event):
    transaction_id: str
    message_type: int  # SCEP messageType: 19 PKCSReq, 17 RenewalReq; 0 offline (`ca sign`)
    subject: bytes  # DER Name from the PKCS#10
    subject_text: str  # RFC 4514, for listings
    public_key: bytes  # DER SubjectPublicKeyInfo from the PKCS#10
    requested_extensions: bytes  # DER Extensions from the extensionRequest attribute, or b""
    signer_certificate: bytes  # DER of the certificate that signed the pkiMessage (b"" offline)
    authorization: str  # "challenge:static" | "challenge:one-time" | "renewal" | "none" |
    #                     "offline" (carried to the CA by the operator, `ca sign`)
    renewal_of: str | None  # serial of our certificate that signed a renewal
    signer_key_sha256: bytes  # v2: SHA-256 of the pkiMessage signer's SubjectPublicKeyInfo;
    #                           equals SHA-256(public_key) when the request's own key signed
    #                           (RFC 8894 §2.3 SHOULD), differs for a throwaway identity key;
    #                           b"" offline, and for v1 renewals (not recorded then)
    ca_generation: int = 1  # v3: which CA certificate the request was enveloped to (1: the
    #                         one `ca init` made, 2: the first `ca rollover`'s, ...)


@upcaster("RequestReceived", from_version=1)
def _request_received_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """v1 had no signer_key_sha256. Version 1 refused a first request not signed with the
    requested key, so for those the signer key is the request's; a v1 renewal was signed by
    the certificate it renews, whose key v1 did not record (b"", as offline requests)."""
    signed_by_own_key = payload.get("authorization") not in ("renewal", "offline")
    key = payload.get("public_key", b"")
    digest = hashlib.sha256(key).digest() if signed_by_own_key and key else b""
    return {**payload, "signer_key_sha256": digest}


@upcaster("RequestReceived", from_version=2)
def _request_received_v2_to_v3(payload: dict[str, Any]) -> dict[str, Any]:
    """v2 had no ca_generation: before `ca rollover` existed, every request went to the CA
    certificate of `ca init`."""
    return {**payload, "ca_generation": 1}


@event("RequestApproved", version=1)
@dataclass(frozen=True, slots=True)
class RequestApproved(Event):
    transaction_id: str
    approved_by: str  # "auto" | "operator"


@event("RequestRejected", version=1)
@dataclass(frozen=True, slots=True)
class RequestRejected(Event):
    transaction_id: str
    reason: str


@event("CertificateIssued", version=1)
@dataclass(frozen=True, slots=True)
class CertificateIssued(Event):
    transaction_id: str
    serial: str
    certificate: bytes  # DER
    subject_text: str
    not_before: int
    not_after: int


@event("CertificateRevoked", version=1)
@dataclass(frozen=True, slots=True)
class CertificateRevoked(Event):
    serial: str
    reason: str  # RFC 5280 CRLReason name, e.g. "keyCompromise"
    revoked_at: int


@event("CRLIssued", version=1)
@dataclass(frozen=True, slots=True)
class CRLIssued(Event):
    crl_number: int
    crl: bytes  # DER
    this_update: int
    next_update: int


@event("CARolledOver", version=1)
@dataclass(frozen=True, slots=True)
class CARolledOver(Event):
    """`ca rollover`: the CA's next key pair and certificate (same subject). The key is a file
    beside the log like DIR/ca.key (`key_file`, mode 0600), never in it. The new certificate
    takes over issuance when the one before it expires (engine/ca/generations.py)."""

    generation: int  # 2 for the first rollover (1 is the certificate of `ca init`)
    key_algorithm: str  # "rsa:2048" | "rsa:4096" | "ecdsa:p256", as the current key's
    key_file: str  # its name in the CA directory, e.g. "ca-2.key"
    ca_certificate: bytes  # DER, self-signed
    not_before: int  # µs, as the certificate states it
    not_after: int


CA_EVENTS: tuple[type[Event], ...] = (
    CAInitialized, ChallengeMinted, ChallengeConsumed, RequestReceived, RequestApproved,
    RequestRejected, CertificateIssued, CertificateRevoked, CRLIssued, CARolledOver,
)
