"""The `%PKI` messages of a CA rollover, derived from its events (as engine/messages.py's
are): the job prints them, the logging fold keeps the same lines for `show logging`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.renewal.messages import USAGE, certificate_facts, iso

if TYPE_CHECKING:
    from events.rollover import (
        ShadowCAAccepted,
        ShadowCAActivated,
        ShadowCAFetchFailed,
        ShadowCANotOffered,
        ShadowCertificateActivated,
    )


def accepted(ev: ShadowCAAccepted) -> str:
    _, not_after, serial, _ = certificate_facts(ev.ca_certificate)
    return (f"%PKI-6-SHADOW_CA_RECEIVED: Trustpoint {ev.trustpoint}: the CA's next certificate "
            f"(serial {serial}, valid until {iso(not_after)}) verified with the current CA "
            f"certificate; held as the shadow CA certificate until {iso(ev.current_not_after)}")


def fetch_failed(ev: ShadowCAFetchFailed) -> str:
    return (f"%PKI-3-SHADOW_CA_FAIL: Trustpoint {ev.trustpoint}: GetNextCACert failed: "
            f"{ev.detail.rstrip('.')}. Next attempt at {iso(ev.next_attempt_at)}.")


def not_offered(ev: ShadowCANotOffered) -> str:
    return (f"%PKI-4-CA_ROLLOVER_UNSUPPORTED: Trustpoint {ev.trustpoint}: the CA does not "
            "offer GetNextCACert, so its next certificate cannot be fetched; re-authenticate "
            "the trustpoint (remove it, add it again, crypto ca authenticate "
            f"{ev.trustpoint}) before the CA certificate expires at {iso(ev.ca_not_after)}")


def ca_activated(ev: ShadowCAActivated) -> str:
    return (f"%PKI-6-SHADOW_CA_ACTIVE: Trustpoint {ev.trustpoint}: the CA certificate (serial "
            f"{ev.old_serial}) expired; the shadow CA certificate (serial {ev.serial}) is now "
            "the CA certificate")


def certificate_activated(ev: ShadowCertificateActivated) -> str:
    return (f"%PKI-6-SHADOW_CERT_ACTIVE: Trustpoint {ev.trustpoint}: the shadow router "
            f"certificate ({USAGE.get(ev.usage, ev.usage)}, serial {ev.serial}) is now in use")


def message_of(ev: Any, at: int) -> str | None:
    """The message an event of events/rollover.py leaves (None: it leaves none)."""
    from events.rollover import (  # event modules load when used (events.registry)
        ShadowCAAccepted,
        ShadowCAActivated,
        ShadowCAFetchFailed,
        ShadowCANotOffered,
        ShadowCertificateActivated,
    )

    match ev:
        case ShadowCAAccepted():
            return accepted(ev)
        case ShadowCAFetchFailed():
            return fetch_failed(ev)
        case ShadowCANotOffered():
            return not_offered(ev)
        case ShadowCAActivated():
            return ca_activated(ev)
        case ShadowCertificateActivated():
            return certificate_activated(ev)
    return None
