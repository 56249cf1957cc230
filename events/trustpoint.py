"""Events of trustpoints (stream `device`): CA authentication and enrollment.

Nothing here ever holds the challenge password: it goes into the PKCS#10 request and nowhere
else, and the request itself (which carries it in clear) is not recorded — only its subject,
transaction ID and fingerprint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from events.registry import Event, event, upcaster


@event("CACertificateAccepted", version=1)
@dataclass(frozen=True, slots=True)
class CACertificateAccepted(Event):
    """The operator accepted the CA certificate shown by `crypto ca authenticate`."""

    trustpoint: str
    ca_certificate: bytes  # DER
    ra_certificates: tuple[bytes, ...]  # DER: RA signing and/or encryption certificates
    capabilities: tuple[str, ...]  # GetCACaps keywords as the CA sent them
    source: str  # "scep" (GetCACert from the enrollment URL) | "terminal" (pasted)


@event("CACertificateRefused", version=1)
@dataclass(frozen=True, slots=True)
class CACertificateRefused(Event):
    """The operator said no to the fingerprint: nothing is trusted, the refusal is on record."""

    trustpoint: str
    sha256_fingerprint: str
    subject: str


@event("EnrollmentRequested", version=1)
@dataclass(frozen=True, slots=True)
class EnrollmentRequested(Event):
    """`crypto ca enroll`: one PKCS#10 request per key pair was sent (or printed)."""

    trustpoint: str
    key_ids: tuple[str, ...]
    usages: tuple[str, ...]  # per request: "general" | "signature" | "encryption"
    transaction_ids: tuple[str, ...]
    subject: str  # RFC 4514 string of the requested subject
    request_fingerprints: tuple[str, ...]  # MD5 of each request, as shown to the operator
    method: str  # "scep" | "terminal"
    retry_period: int  # minutes between polls (from the trustpoint at the time)
    retry_count: int  # polls before giving up


@event("EnrollmentPending", version=2)
@dataclass(frozen=True, slots=True)
class EnrollmentPending(Event):
    """The CA holds the request (PENDING), or this poll could not reach it (`poll_error`, the
    reason shown in `%PKI-4-POLL_FAILED`); the next poll is due at `next_poll_at`."""

    trustpoint: str
    transaction_id: str
    polls: int  # CertPolls made so far for this enrollment
    next_poll_at: int  # µs since the epoch
    poll_error: str = ""  # v2: why this poll got no answer ("" when the CA said PENDING)


@upcaster("EnrollmentPending", from_version=1)
def _pending_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    return {**payload, "poll_error": ""}  # v1 did not record failed polls' reasons


@event("CertificateReceived", version=1)
@dataclass(frozen=True, slots=True)
class CertificateReceived(Event):
    """A router certificate for one of the trustpoint's key pairs, checked and installed."""

    trustpoint: str
    key_id: str
    usage: str
    certificate: bytes  # DER
    transaction_id: str


@event("EnrollmentFailed", version=1)
@dataclass(frozen=True, slots=True)
class EnrollmentFailed(Event):
    """The CA refused (FAILURE), the exchange failed, or the polls ran out."""

    trustpoint: str
    transaction_id: str
    reason: str  # "failure" | "timeout" | "cancelled" | "peer"
    fail_info: str  # SCEP failInfo name when the CA said FAILURE, else ""
    detail: str


@event("TrustpointCertificatesRemoved", version=1)
@dataclass(frozen=True, slots=True)
class TrustpointCertificatesRemoved(Event):
    """A commit or rollback removed an enrolled trustpoint, after the operator said yes: its
    CA, RA and router certificates are destroyed with it. Appended in the same batch as, and
    just before, the `ConfigurationCommitted` that removes the trustpoint's configuration, so
    `log show` and an auditor see which certificates went, and why."""

    trustpoint: str
    reason: str  # "commit" | "rollback"
    commit_id: int  # the commit that removes the trustpoint
    kinds: tuple[str, ...]  # per certificate: "ca" | "ra" | "general" | "signature" | ...
    serials: tuple[str, ...]  # as the router prints them (upper-case hex, whole bytes)
    fingerprints: tuple[str, ...]  # SHA-256 of the DER, upper-case hex


@event("RouterCertificateRevoked", version=1)
@dataclass(frozen=True, slots=True)
class RouterCertificateRevoked(Event):
    """One of the trustpoint's router certificates is on a CRL its CA issued (found when that
    CRL was fetched): the trustpoint is revoked until it enrolls again."""

    trustpoint: str
    key_id: str  # the key pair whose certificate it is
    serial: str  # as the router prints it (upper-case hex, whole bytes)
    revoked_at: int  # µs: the CRL entry's revocationDate
    reason: str  # RFC 5280 §5.3.1 reason name ("unspecified" when the entry has none)
    crl_sha256: str  # hex: the stored CRL that says so (engine/revocation/store.py)
