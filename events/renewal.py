"""Events of automatic renewal (stream `device`): a trustpoint renewing its router
certificate on its own clock (`auto-enroll`), and the expiry alerts of its certificates.

A renewal is recorded apart from an operator's enrollment (events/trustpoint.py): while it
runs the trustpoint stays enrolled with its current certificate, and a renewal's answers never
move the trustpoint's lifecycle. `purpose` says which enrollment it is: "renew" (the router
certificate under the current CA) or "shadow" (a router certificate under the CA's next
certificate, CA rollover). As for an enrollment, no challenge password is ever recorded (a
renewal sends none: the current certificate's signature is its authorization).
"""

from __future__ import annotations

from dataclasses import dataclass

from events.registry import Event, event


@event("RenewalRequested", version=1)
@dataclass(frozen=True, slots=True)
class RenewalRequested(Event):
    """One renewal attempt: a request per key pair, signed by its current certificate, was
    sent to the CA (its answer follows in the same batch)."""

    trustpoint: str
    purpose: str  # "renew" | "shadow"
    key_ids: tuple[str, ...]  # the current key pairs (a renewal keeps them)
    usages: tuple[str, ...]
    transaction_ids: tuple[str, ...]
    subject: str  # RFC 4514, the current certificate's subject
    message_type: str  # "pkcsreq" | "renewalreq"
    retry_period: int  # minutes between polls and between attempts (from the trustpoint)
    retry_count: int  # polls of a PENDING request before the attempt counts as failed


@event("RenewalPending", version=1)
@dataclass(frozen=True, slots=True)
class RenewalPending(Event):
    """The CA holds the renewal request (PENDING), or a poll of it got no answer
    (`poll_error`); the next poll is due at `next_poll_at`."""

    trustpoint: str
    purpose: str
    transaction_id: str
    polls: int  # CertPolls made so far in this attempt
    next_poll_at: int  # µs since the epoch
    poll_error: str = ""


@event("RenewalCertificateReceived", version=1)
@dataclass(frozen=True, slots=True)
class RenewalCertificateReceived(Event):
    """A renewed certificate for one key pair, checked (ours, from the trustpoint's CA, not
    expired). It replaces the current one at once when its validity has begun (`not_before`
    at or before the event's time), else it is held as the next certificate until then."""

    trustpoint: str
    purpose: str
    key_id: str
    usage: str
    certificate: bytes  # DER
    transaction_id: str
    not_before: int  # µs since the epoch, from the certificate


@event("RenewalFailed", version=1)
@dataclass(frozen=True, slots=True)
class RenewalFailed(Event):
    """A renewal attempt ended without a certificate: the CA refused (FAILURE), could not be
    reached, or left the request PENDING past the retry count. The current certificate stays;
    the next attempt is due at `next_attempt_at`."""

    trustpoint: str
    purpose: str
    transaction_id: str  # "" when no request reached the CA
    reason: str  # "failure" | "timeout" | "peer"
    fail_info: str  # SCEP failInfo name when the CA said FAILURE, else ""
    detail: str
    next_attempt_at: int  # µs since the epoch; 0: none is left before the certificate ends


@event("NextCertificateActivated", version=1)
@dataclass(frozen=True, slots=True)
class NextCertificateActivated(Event):
    """A held renewed certificate's validity began: it replaces the current certificate of
    its key usage."""

    trustpoint: str
    key_id: str
    usage: str
    serial: str  # as the router prints it


@event("CertificateExpiryWarned", version=1)
@dataclass(frozen=True, slots=True)
class CertificateExpiryWarned(Event):
    """An expiry notification for one certificate of a trustpoint: 60 days before its end,
    then weekly, then daily in the last week (`%PKI-4-CERT_EXPIRY_WARNING` while more than a
    week remains, `%PKI-1-CERT_EXPIRY_ALERT` after)."""

    trustpoint: str
    certificate_type: str  # "CA" | "general" | "signature" | "encryption"
    serial: str  # as the router prints it
    issuer: str  # as the router prints it
    not_after: int  # µs since the epoch
    days_left: int
    auto_enroll: bool  # whether the trustpoint renews it (router certificates)
