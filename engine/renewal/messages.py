"""The `%PKI` messages of renewal and expiry alerts, derived from their events (as
engine/messages.py's are): the job prints them, the logging fold keeps the same lines for
`show logging`. Names follow IOS's (`CERTRENEWAUTO`, `CERT_RENEW_FAIL`,
`CERT_EXPIRY_WARNING`, `CERT_EXPIRY_ALERT`); each names the trustpoint, and an expiry
notification the certificate type, serial, issuer and days left.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine.certids import ios_name, ios_serial
from engine.effects import Outcome
from engine.messages import poll_failed

if TYPE_CHECKING:
    from events.renewal import (
        CertificateExpiryWarned,
        NextCertificateActivated,
        RenewalCertificateReceived,
        RenewalFailed,
        RenewalRequested,
    )

USAGE = {"general": "General Purpose", "signature": "Signature", "encryption": "Encryption"}
_TYPES = {"pkcsreq": "PKCSReq", "renewalreq": "RenewalReq"}


def iso(us: int) -> str:
    """`2027-01-01T00:00:00Z`: an instant in messages and `show crypto ca timers`."""
    return f"{dt.datetime.fromtimestamp(us // 1_000_000, dt.UTC):%Y-%m-%dT%H:%M:%SZ}"


@functools.lru_cache(maxsize=512)
def certificate_facts(der: bytes) -> tuple[int, int, str, str]:
    """(notBefore µs, notAfter µs, serial, issuer) of a DER certificate, as the router prints
    them (cached: the timers ask on every tick)."""
    from cryptography import x509  # when a status holds a certificate

    cert = x509.load_der_x509_certificate(der)
    return (int(cert.not_valid_before_utc.timestamp()) * 1_000_000,
            int(cert.not_valid_after_utc.timestamp()) * 1_000_000,
            ios_serial(cert), ios_name(cert.issuer))


def _certificate(usage: str, der: bytes) -> str:
    return f"router certificate ({USAGE.get(usage, usage)}, serial {certificate_facts(der)[2]})"


def requested(ev: RenewalRequested) -> str:
    what = "the shadow router certificate" if ev.purpose == "shadow" else \
        "the router certificate"
    return (f"%PKI-6-CERTRENEWAUTO: Renewing {what} of trustpoint {ev.trustpoint} "
            f"({_TYPES.get(ev.message_type, ev.message_type)} signed by the current "
            "certificate)")


def received(ev: RenewalCertificateReceived, at: int) -> str:
    """Installed now, or held until its validity begins."""
    what = _certificate(ev.usage, ev.certificate)
    if ev.purpose == "shadow":
        return (f"%PKI-6-CERT_RENEW_HELD: Trustpoint {ev.trustpoint}: shadow {what} held "
                "until the CA's next certificate takes over")
    if ev.not_before > at:
        return (f"%PKI-6-CERT_RENEW_HELD: Trustpoint {ev.trustpoint}: renewed {what} held "
                f"until its validity begins ({iso(ev.not_before)})")
    return (f"%PKI-6-CERT_RENEWED: Trustpoint {ev.trustpoint}: renewed {what} installed, "
            f"valid until {iso(certificate_facts(ev.certificate)[1])}")


def failed(ev: RenewalFailed) -> str:
    why = f"{ev.fail_info}: {ev.detail}" if ev.fail_info else ev.detail
    then = (f"next attempt at {iso(ev.next_attempt_at)}" if ev.next_attempt_at else
            f"no attempt is left before it expires (enter 'crypto ca enroll "
            f"{ev.trustpoint}' to enroll again)")
    return (f"%PKI-3-CERT_RENEW_FAIL: Certificate renewal for trustpoint {ev.trustpoint} "
            f"failed: {why.rstrip('.')}. The current certificate stays in use; {then}.")


def activated(ev: NextCertificateActivated) -> str:
    return (f"%PKI-6-CERT_RENEW_ACTIVE: Trustpoint {ev.trustpoint}: the held router "
            f"certificate ({USAGE.get(ev.usage, ev.usage)}, serial {ev.serial}) is now in use")


def expiry(ev: CertificateExpiryWarned, at: int) -> str:
    """`%PKI-4-CERT_EXPIRY_WARNING` while more than a week remains, then
    `%PKI-1-CERT_EXPIRY_ALERT`; a notice that comes late, after the certificate's end (the
    device was down, or a `clock set` walk stopped at its job limit), says it has expired."""
    head = ("%PKI-4-CERT_EXPIRY_WARNING" if ev.days_left > 7 else "%PKI-1-CERT_EXPIRY_ALERT")
    kind = ("CA certificate" if ev.certificate_type == "CA" else
            f"Router certificate ({USAGE.get(ev.certificate_type, ev.certificate_type)})")
    days = "1 day" if ev.days_left == 1 else f"{ev.days_left} days"
    when = (f"expired at {iso(ev.not_after)}" if at >= ev.not_after else
            f"expires in {days} ({iso(ev.not_after)})")
    return (f"{head}: Trustpoint {ev.trustpoint}: {kind} serial {ev.serial} issued by "
            f"{ev.issuer} {when}; auto-enroll {'on' if ev.auto_enroll else 'off'}")


def message_of(ev: Any, at: int) -> str | None:
    """The message an event of events/renewal.py leaves (None: it leaves none)."""
    from events.renewal import (  # event modules load when used (events.registry)
        CertificateExpiryWarned,
        NextCertificateActivated,
        RenewalCertificateReceived,
        RenewalFailed,
        RenewalPending,
        RenewalRequested,
    )

    match ev:
        case RenewalRequested():
            return requested(ev)
        case RenewalCertificateReceived():
            return received(ev, at)
        case RenewalFailed():
            return failed(ev)
        case RenewalPending() if ev.poll_error:
            return poll_failed(ev.trustpoint, ev.poll_error)
        case NextCertificateActivated():
            return activated(ev)
        case CertificateExpiryWarned():
            return expiry(ev, at)
    return None


def said(events: list[Any], now: int,
         message_of: Callable[[Any, int], str | None] = message_of) -> Outcome:
    """A job's outcome: its events, and the lines they leave (those the logging fold keeps)."""
    lines = [m for ev in events if (m := message_of(ev, now)) is not None]
    return Outcome(events=events, output="\n".join(lines))
